package agi

import (
	"bytes"
	"errors"
	"io"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadEnvFixtures(t *testing.T) {
	for name, chunks := range rawFixtures(t) {
		t.Run(name, func(t *testing.T) {
			raw := envBytes(chunks)
			// Fact: the env block arrives in more than one recv().
			if chunks[0].fromAsterisk && bytes.HasSuffix(chunks[0].data, []byte("\n\n")) {
				t.Errorf("env block arrived in one chunk; the recordings show two")
			}
			e, err := readEnv(newLineReader(bytes.NewReader(raw), DefaultMaxLineBytes))
			if err != nil {
				t.Fatal(err)
			}
			wantKeys := 22 + len(e.Args)
			if len(e.Raw) != wantKeys {
				t.Errorf("%d keys, want %d", len(e.Raw), wantKeys)
			}
			if !e.Network || e.Version != "20.20.1" || e.Language != "en" || e.Priority != "2" || e.Enhanced != "0.0" {
				t.Errorf("env = %+v", e)
			}
			if e.AccountCode != "" || e.Raw["agi_accountcode"] != "" {
				t.Errorf("empty agi_accountcode parsed as %q", e.AccountCode)
			}
			if e.RDNIS != "unknown" {
				t.Errorf("RDNIS = %q, want the literal \"unknown\"", e.RDNIS)
			}
			if !strings.HasPrefix(e.Request, "agi://127.0.0.1:4573/") || !strings.HasSuffix(e.Request, e.NetworkScript) {
				t.Errorf("Request %q, NetworkScript %q", e.Request, e.NetworkScript)
			}
			if e.Path() != "/"+strings.SplitN(e.NetworkScript, "?", 2)[0] {
				t.Errorf("Path() = %q for script %q", e.Path(), e.NetworkScript)
			}
			if e.Channel == "" || e.UniqueID == "" || e.Context != "dialgate-test" || e.ThreadID == "" {
				t.Errorf("env = %+v", e)
			}
			if name != "conn21-quirks.raw" && !reflect.DeepEqual(e.Args, []string{"arg1"}) {
				t.Errorf("Args = %q", e.Args)
			}
		})
	}
}

// The quirks recording: AGI(agi://127.0.0.1:4573/quirks?x=1&y=2,arg one,"arg,two",,last).
func TestReadEnvQuirks(t *testing.T) {
	raw := envBytes(rawFixtures(t)["conn21-quirks.raw"])
	e, err := readEnv(newLineReader(bytes.NewReader(raw), DefaultMaxLineBytes))
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Raw) != 26 {
		t.Errorf("%d keys, want 26", len(e.Raw))
	}
	// Fact: the query stays in agi_network_script.
	if e.NetworkScript != "quirks?x=1&y=2" {
		t.Errorf("NetworkScript = %q", e.NetworkScript)
	}
	if got := e.Path(); got != "/quirks" {
		t.Errorf("Path() = %q", got)
	}
	if got, want := e.Query(), (url.Values{"x": {"1"}, "y": {"2"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("Query() = %v, want %v", got, want)
	}
	// Fact: an empty dialplan argument still arrives, as "agi_arg_3: ".
	if want := []string{"arg one", "arg,two", "", "last"}; !reflect.DeepEqual(e.Args, want) {
		t.Errorf("Args = %q, want %q", e.Args, want)
	}
	if v, ok := e.Raw["agi_arg_3"]; !ok || v != "" {
		t.Errorf("Raw[agi_arg_3] = %q, %v", v, ok)
	}
	if !bytes.Contains(raw, []byte("agi_arg_3: \n")) {
		t.Error("recording lacks the empty argument line")
	}
}

// Fact: the env block may arrive in several reads; one byte per read is
// the extreme case.
func TestReadEnvOneByteReads(t *testing.T) {
	raw := envBytes(rawFixtures(t)["conn01-authorize.raw"])
	want, err := readEnv(newLineReader(bytes.NewReader(raw), DefaultMaxLineBytes))
	if err != nil {
		t.Fatal(err)
	}
	got, err := readEnv(newLineReader(iotest.OneByteReader(bytes.NewReader(raw)), DefaultMaxLineBytes))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("one-byte reads: %+v\nwant %+v", got, want)
	}
}

// Asterisk never sends CR (see TestFixtureLFOnly), but a hand-written peer
// might; the parse must come out the same.
func TestReadEnvCRLFTolerated(t *testing.T) {
	raw := envBytes(rawFixtures(t)["conn21-quirks.raw"])
	want, _ := readEnv(newLineReader(bytes.NewReader(raw), DefaultMaxLineBytes))
	crlf := bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
	got, err := readEnv(newLineReader(bytes.NewReader(crlf), DefaultMaxLineBytes))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CRLF env: %+v\nwant %+v", got, want)
	}
}

func TestReadEnvErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"no colon", "agi_network yes\n\n", ErrProtocol},
		{"empty key", ": yes\n\n", ErrProtocol},
		{"space in key", "agi network: yes\n\n", ErrProtocol},
		{"bad arg index", "agi_arg_x: 1\n\n", ErrProtocol},
		{"zero arg index", "agi_arg_0: 1\n\n", ErrProtocol},
		{"huge arg index", "agi_arg_999999999: 1\n\n", ErrProtocol},
		{"eof before blank line", "agi_network: yes\n", io.EOF},
		{"eof mid line", "agi_network: y", io.ErrUnexpectedEOF},
		{"empty input", "", io.EOF},
		{"too many lines", strings.Repeat("agi_x: y\n", maxEnvLines+2) + "\n", ErrProtocol},
		{"line too long", "agi_x: " + strings.Repeat("y", 100) + "\n\n", ErrLineTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readEnv(newLineReader(strings.NewReader(tt.in), 64))
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReadEnvArgsGap(t *testing.T) {
	e, err := readEnv(newLineReader(strings.NewReader("agi_arg_2: b\nagi_arg_1: a\nagi_arg_4: d\nx_custom: v\n\n"), 64))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "", "d"}; !reflect.DeepEqual(e.Args, want) {
		t.Errorf("Args = %q, want %q", e.Args, want)
	}
	if e.Raw["x_custom"] != "v" {
		t.Errorf("unknown key not kept in Raw: %v", e.Raw)
	}
	if e.Network {
		t.Error("Network without agi_network: yes")
	}
}

func TestEnvPathQuery(t *testing.T) {
	tests := []struct {
		env   Env
		path  string
		query url.Values
	}{
		{Env{NetworkScript: "authorize"}, "/authorize", url.Values{}},
		{Env{NetworkScript: "authorize?x=y"}, "/authorize", url.Values{"x": {"y"}}},
		{Env{NetworkScript: "a/b/c?k=1&k=2"}, "/a/b/c", url.Values{"k": {"1", "2"}}},
		{Env{NetworkScript: ""}, "/", url.Values{}},
		{Env{Request: "agi://host:4573/authorize?x=y"}, "/authorize", url.Values{"x": {"y"}}},
		{Env{Request: "agi://host:4573"}, "/", url.Values{}},
		{Env{Request: "hagi://pbx.example.com/authorize"}, "/authorize", url.Values{}},
		// agi_network_script wins over agi_request.
		{Env{NetworkScript: "one", Request: "agi://h/two"}, "/one", url.Values{}},
		{Env{NetworkScript: "q?bad=%zz&ok=1"}, "/q", url.Values{"ok": {"1"}}},
	}
	for _, tt := range tests {
		if got := tt.env.Path(); got != tt.path {
			t.Errorf("%+v.Path() = %q, want %q", tt.env, got, tt.path)
		}
		if got := tt.env.Query(); !reflect.DeepEqual(got, tt.query) {
			t.Errorf("%+v.Query() = %v, want %v", tt.env, got, tt.query)
		}
	}
}

// Fact: Asterisk ends every line with LF, never CRLF; the one CR in the
// recordings is the quirk command the AGI side sent on purpose.
func TestFixtureLFOnly(t *testing.T) {
	for name, chunks := range rawFixtures(t) {
		for i, c := range chunks {
			if c.fromAsterisk && bytes.IndexByte(c.data, '\r') >= 0 {
				t.Errorf("%s chunk %d: Asterisk sent a CR: %v", name, i, c)
			}
			if !c.fromAsterisk && bytes.Contains(c.data, []byte("\r\n")) && name != "conn21-quirks.raw" {
				t.Errorf("%s chunk %d: unexpected CRLF command: %v", name, i, c)
			}
		}
	}
}
