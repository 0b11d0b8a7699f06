package agi

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Env is the agi_* environment block Asterisk sends when a call reaches
// AGI(), before any command. Values are verbatim; Asterisk writes the
// literal "unknown" for unknown caller data.
type Env struct {
	Request       string // agi_request: the full URL, agi://host:port/script?query
	Channel       string // agi_channel, e.g. SIP/traveler-00000001
	Language      string // agi_language
	Type          string // agi_type: channel technology, e.g. SIP, PJSIP, Local
	UniqueID      string // agi_uniqueid
	Version       string // agi_version: Asterisk's version
	CallerID      string // agi_callerid
	CallerIDName  string // agi_calleridname
	CallingPres   string // agi_callingpres
	CallingANI2   string // agi_callingani2
	CallingTON    string // agi_callington
	CallingTNS    string // agi_callingtns
	DNID          string // agi_dnid
	RDNIS         string // agi_rdnis
	Context       string // agi_context
	Extension     string // agi_extension
	Priority      string // agi_priority
	Enhanced      string // agi_enhanced: "1.0" under EAGI
	AccountCode   string // agi_accountcode
	ThreadID      string // agi_threadid
	NetworkScript string // agi_network_script: URL path without its leading slash, query kept
	Network       bool   // agi_network: "yes" for FastAGI

	// Args are agi_arg_1, agi_arg_2, ... in order. The dialplan's empty
	// arguments are present as empty strings.
	Args []string

	// Raw holds every line of the block keyed as sent ("agi_channel"),
	// including keys this struct does not know.
	Raw map[string]string
}

// maxEnvLines bounds the env block. Asterisk sends 22 fixed keys plus at
// most 127 arguments (its MAX_ARGS is 128 including the script).
const maxEnvLines = 512

// readEnv reads the env block up to and including its terminating empty line.
func readEnv(r *lineReader) (Env, error) {
	e := Env{Raw: make(map[string]string)}
	var args map[int]string
	maxArg := 0
	for n := 0; ; n++ {
		if n > maxEnvLines {
			return Env{}, fmt.Errorf("%w: env block longer than %d lines", ErrProtocol, maxEnvLines)
		}
		line, err := r.readLine()
		if err != nil {
			return Env{}, fmt.Errorf("agi: reading env: %w", err)
		}
		if line == "" {
			break
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			return Env{}, fmt.Errorf("%w: env line %d is not \"key: value\"", ErrProtocol, n+1)
		}
		// Asterisk writes "key: value"; an empty value leaves "key: ".
		val = strings.TrimPrefix(val, " ")
		e.Raw[key] = val
		if s, ok := strings.CutPrefix(key, "agi_arg_"); ok {
			i, err := strconv.Atoi(s)
			if err != nil || i < 1 || i > maxEnvLines {
				return Env{}, fmt.Errorf("%w: bad argument key %q", ErrProtocol, key)
			}
			if args == nil {
				args = make(map[int]string)
			}
			args[i] = val
			maxArg = max(maxArg, i)
			continue
		}
		if p := e.field(key); p != nil {
			*p = val
		}
	}
	e.Network = e.Raw["agi_network"] == "yes"
	if maxArg > 0 {
		e.Args = make([]string, maxArg)
		for i, v := range args {
			e.Args[i-1] = v
		}
	}
	return e, nil
}

func (e *Env) field(key string) *string {
	switch key {
	case "agi_request":
		return &e.Request
	case "agi_channel":
		return &e.Channel
	case "agi_language":
		return &e.Language
	case "agi_type":
		return &e.Type
	case "agi_uniqueid":
		return &e.UniqueID
	case "agi_version":
		return &e.Version
	case "agi_callerid":
		return &e.CallerID
	case "agi_calleridname":
		return &e.CallerIDName
	case "agi_callingpres":
		return &e.CallingPres
	case "agi_callingani2":
		return &e.CallingANI2
	case "agi_callington":
		return &e.CallingTON
	case "agi_callingtns":
		return &e.CallingTNS
	case "agi_dnid":
		return &e.DNID
	case "agi_rdnis":
		return &e.RDNIS
	case "agi_context":
		return &e.Context
	case "agi_extension":
		return &e.Extension
	case "agi_priority":
		return &e.Priority
	case "agi_enhanced":
		return &e.Enhanced
	case "agi_accountcode":
		return &e.AccountCode
	case "agi_threadid":
		return &e.ThreadID
	case "agi_network_script":
		return &e.NetworkScript
	}
	return nil
}

// script returns the part of the AGI URL after host:port/, query included.
// agi_network_script is exactly that; agi_request is the fallback for
// peers that omit it.
func (e Env) script() string {
	if e.NetworkScript != "" {
		return e.NetworkScript
	}
	s := e.Request
	if _, rest, ok := strings.Cut(s, "://"); ok {
		_, s, ok = strings.Cut(rest, "/")
		if !ok {
			return ""
		}
	}
	return strings.TrimPrefix(s, "/")
}

// Path returns the request path without its query, with a leading slash:
// "agi://127.0.0.1:4573/authorize?x=1" gives "/authorize". ServeMux routes
// on it.
func (e Env) Path() string {
	p, _, _ := strings.Cut(e.script(), "?")
	return "/" + p
}

// Query returns the parsed query of the AGI URL: Asterisk keeps
// "?x=1&y=2" in agi_network_script. Malformed pairs are dropped, as
// url.URL.Query does.
func (e Env) Query() url.Values {
	_, q, _ := strings.Cut(e.script(), "?")
	v, _ := url.ParseQuery(q)
	return v
}
