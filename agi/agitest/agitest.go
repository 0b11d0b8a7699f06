// Package agitest plays Asterisk's side of a FastAGI connection, for
// tests and for dialing a FastAGI server by hand: it connects, sends the
// agi_* environment block of a call, and answers each command the way
// Asterisk 20 does in recorded sessions (see agi/testdata), including the
// unsolicited HANGUP notice and the 511 replies of a dead channel.
//
// It is deliberately independent of package agi, so that each checks the
// other.
//
//	t, err := agitest.Dial(ctx, "127.0.0.1:4573", agitest.Call{
//		Script: "authorize",
//		Digits: []string{"1234#"},
//	})
//	// t.Commands: ["ANSWER", "GET DATA beep 3000 6", ...]
package agitest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Call describes the call Asterisk hands to the FastAGI server.
type Call struct {
	// Script is the part of the AGI URL after host:port/, query included:
	// "authorize" or "authorize?x=1". It sets agi_network_script and
	// agi_request.
	Script string

	// Env overrides or adds environment keys, written with or without
	// the "agi_" prefix: {"callerid": "5551234"}.
	Env map[string]string

	// Args become agi_arg_1, agi_arg_2, ...; empty ones are sent too.
	Args []string

	// Digits answer successive GET DATA commands, as keyed by the caller:
	// "1234#" ends with the terminator and yields result=1234; "1234"
	// without '#' and shorter than the command's max digits yields
	// "1234 (timeout)"; digits beyond the max are cut, as Asterisk stops
	// listening there. GET DATA beyond the list times out with nothing.
	Digits []string

	// Variables answer GET VARIABLE (by name) and GET FULL VARIABLE (by the
	// whole expression, e.g. "${CHANNEL(peerip)}", or else by each
	// ${NAME} in it). SET VARIABLE adds to them. CHANNEL, UNIQUEID,
	// CONTEXT and EXTEN default to the env values, as on a real channel.
	Variables map[string]string

	// HangupAfter makes the caller hang up during the Nth command
	// (1-based); 0 never. If that command plays media (GET DATA, STREAM
	// FILE, SAY ..., WAIT FOR DIGIT) it is interrupted: "200 result=-1",
	// then the HANGUP notice, as Asterisk does. Otherwise the notice comes
	// first and the command gets the reply a dead channel gets. From then
	// on only variable, database, EXEC, NOOP and VERBOSE commands work;
	// the rest get 511.
	HangupAfter int

	// WaitDigits answer successive WAIT FOR DIGIT commands with the digit
	// pressed; beyond the list, or for a zero rune, the wait times out.
	WaitDigits []rune

	// AfterDigits, if set, is called right after the reply to the Nth
	// GET DATA (1-based) has been written: the moment the caller's last
	// digit reaches the server. Benchmarks time from here.
	AfterDigits func(n int)
}

// Transcript is what the FastAGI server did.
type Transcript struct {
	// Commands are the command lines received, in order, without the LF.
	Commands []string
	// Variables are the channel variables at the end of the call, those
	// the server set included (DIALGATE_RESULT, say).
	Variables map[string]string
}

// maxLine is how much agitest reads as one command. Asterisk reads 2047
// bytes and would take the rest as another command; agitest fails the
// call instead, since a correct server never sends that.
const maxLine = 2047

// Dial connects to the FastAGI server at addr (host:port) and plays call.
// It returns when the server closes the connection, which is not an
// error, when the server sends HANGUP (agitest answers, then closes, as
// the caller is gone), or when ctx is done. The transcript holds the
// commands received so far in every case.
func Dial(ctx context.Context, addr string, call Call) (Transcript, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Transcript{}, fmt.Errorf("agitest: %w", err)
	}
	return Run(ctx, conn, call)
}

// Run plays call over an established connection and closes it.
func Run(ctx context.Context, conn net.Conn, call Call) (Transcript, error) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	p := newPeer(conn, call)
	err := p.run()
	if err != nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	if err != nil {
		err = fmt.Errorf("agitest: %w", err)
	}
	return Transcript{Commands: p.commands, Variables: p.vars}, err
}

type peer struct {
	conn     net.Conn
	call     Call
	env      map[string]string
	vars     map[string]string
	db       map[string]string
	commands []string
	digits   int  // next Call.Digits entry
	waits    int  // next Call.WaitDigits entry
	dead     bool // the caller has hung up
}

func newPeer(conn net.Conn, call Call) *peer {
	p := &peer{conn: conn, call: call, db: make(map[string]string)}
	p.vars = maps.Clone(call.Variables)
	if p.vars == nil {
		p.vars = make(map[string]string)
	}
	return p
}

// envOrder is the order Asterisk 20 writes the fixed keys in.
var envOrder = []string{
	"agi_network", "agi_network_script", "agi_request", "agi_channel",
	"agi_language", "agi_type", "agi_uniqueid", "agi_version", "agi_callerid",
	"agi_calleridname", "agi_callingpres", "agi_callingani2", "agi_callington",
	"agi_callingtns", "agi_dnid", "agi_rdnis", "agi_context", "agi_extension",
	"agi_priority", "agi_enhanced", "agi_accountcode", "agi_threadid",
}

func (p *peer) envBlock() string {
	addr := "127.0.0.1:4573"
	if a := p.conn.RemoteAddr(); a != nil && a.Network() == "tcp" {
		addr = a.String()
	}
	env := map[string]string{
		"agi_network":        "yes",
		"agi_network_script": p.call.Script,
		"agi_request":        "agi://" + addr + "/" + p.call.Script,
		"agi_channel":        "SIP/agitest-00000001",
		"agi_language":       "en",
		"agi_type":           "SIP",
		"agi_uniqueid":       "1700000000.1",
		"agi_version":        "20.20.1",
		"agi_callerid":       "unknown",
		"agi_calleridname":   "unknown",
		"agi_callingpres":    "0",
		"agi_callingani2":    "0",
		"agi_callington":     "0",
		"agi_callingtns":     "0",
		"agi_dnid":           "unknown",
		"agi_rdnis":          "unknown",
		"agi_context":        "default",
		"agi_extension":      "s",
		"agi_priority":       "1",
		"agi_enhanced":       "0.0",
		"agi_accountcode":    "",
		"agi_threadid":       "140000000000000",
	}
	for k, v := range p.call.Env {
		if !strings.HasPrefix(k, "agi_") {
			k = "agi_" + k
		}
		env[k] = v
	}
	p.env = env

	var b strings.Builder
	keys := slices.Clone(envOrder)
	var extra []string
	for k := range env {
		if !slices.Contains(envOrder, k) {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	for _, k := range append(keys, extra...) {
		fmt.Fprintf(&b, "%s: %s\n", k, env[k])
	}
	for i, a := range p.call.Args {
		fmt.Fprintf(&b, "agi_arg_%d: %s\n", i+1, a)
	}
	b.WriteString("\n")
	return b.String()
}

func (p *peer) write(s string) error {
	_, err := io.WriteString(p.conn, s)
	return err
}

var errClosedByUs = errors.New("closed after HANGUP")

// serverClosed reports whether err means the server closed the
// connection. A close with our bytes still unread (a HANGUP notice the
// server never read) arrives as a reset rather than EOF.
func serverClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (p *peer) run() error {
	if err := p.write(p.envBlock()); err != nil {
		return err
	}
	br := bufio.NewReaderSize(p.conn, maxLine+1)
	for n := 1; ; n++ {
		b, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return fmt.Errorf("command %d longer than the %d bytes Asterisk reads as one command", n, maxLine)
		case serverClosed(err):
			// The server ended the session, maybe mid-command: Asterisk
			// drops a partial command and continues the dialplan.
			return nil
		case err != nil:
			return err
		}
		line := string(b[:len(b)-1])
		p.commands = append(p.commands, line)
		if err := p.serve(n, line); err != nil {
			if errors.Is(err, errClosedByUs) || serverClosed(err) {
				return nil
			}
			return err
		}
	}
}

// serve answers command number n.
func (p *peer) serve(n int, line string) error {
	words := SplitCommand(line)
	c, args := lookup(words)
	if n == p.call.HangupAfter && !p.dead {
		p.dead = true
		if c != nil && c.media && c.argsOK(len(args)) {
			// The caller leaves while the prompt plays: the command
			// fails, and Asterisk notices the hangup a moment later.
			if err := p.write("200 result=-1\n"); err != nil {
				return err
			}
			return p.write("HANGUP\n")
		}
		if err := p.write("HANGUP\n"); err != nil {
			return err
		}
	}
	switch {
	case c == nil:
		return p.write("510 Invalid or unknown command\n")
	case p.dead && !c.dead:
		return p.write("511 Command Not Permitted on a dead channel or intercept routine\n")
	case !c.argsOK(len(args)) || c.numeric && !startsNumeric(args[0]):
		return p.write("520-Invalid command syntax.  Proper usage follows:\n" + c.usage + "\n520 End of proper usage.\n")
	}
	return c.reply(p, args)
}

// spec is one command Asterisk knows.
type spec struct {
	words   []string
	minArgs int
	maxArgs int  // -1: any
	dead    bool // allowed on a dead channel
	media   bool // plays to the caller; a hangup interrupts it
	numeric bool // the first argument must parse as a number
	usage   string
	reply   func(p *peer, args []string) error
}

func (c *spec) argsOK(n int) bool {
	return n >= c.minArgs && (c.maxArgs < 0 || n <= c.maxArgs)
}

func fixed(reply string) func(*peer, []string) error {
	return func(p *peer, _ []string) error { return p.write(reply + "\n") }
}

// commands answer as Asterisk 20 does in the recorded sessions.
var commands = []*spec{
	{words: []string{"ANSWER"}, maxArgs: 0, usage: "Usage: ANSWER", reply: fixed("200 result=0")},
	{words: []string{"HANGUP"}, maxArgs: 1, usage: "Usage: HANGUP [channel]", reply: (*peer).hangup},
	{words: []string{"GET", "DATA"}, minArgs: 1, maxArgs: 3, media: true,
		usage: "Usage: GET DATA <file> [timeout ms] [max digits]", reply: (*peer).getData},
	{words: []string{"STREAM", "FILE"}, minArgs: 2, maxArgs: 3, media: true,
		usage: "Usage: STREAM FILE <file> <escape digits> [offset]", reply: fixed("200 result=0 endpos=8000")},
	{words: []string{"GET", "OPTION"}, minArgs: 2, maxArgs: 3, media: true,
		usage: "Usage: GET OPTION <file> <escape digits> [timeout ms]", reply: fixed("200 result=0 endpos=8000")},
	{words: []string{"SAY", "DIGITS"}, minArgs: 2, maxArgs: 2, media: true,
		numeric: true,
		usage:   "Usage: SAY DIGITS <digits> <escape digits>", reply: fixed("200 result=0")},
	{words: []string{"SAY", "NUMBER"}, minArgs: 2, maxArgs: 3, media: true,
		numeric: true,
		usage:   "Usage: SAY NUMBER <number> <escape digits> [gender]", reply: fixed("200 result=0")},
	{words: []string{"SAY", "ALPHA"}, minArgs: 2, maxArgs: 2, media: true,
		usage: "Usage: SAY ALPHA <text> <escape digits>", reply: fixed("200 result=0")},
	{words: []string{"WAIT", "FOR", "DIGIT"}, minArgs: 1, maxArgs: 1, media: true,
		usage: "Usage: WAIT FOR DIGIT <timeout ms>", reply: (*peer).waitForDigit},
	{words: []string{"GET", "VARIABLE"}, minArgs: 1, maxArgs: 1, dead: true,
		usage: "Usage: GET VARIABLE <name>", reply: (*peer).getVariable},
	{words: []string{"GET", "FULL", "VARIABLE"}, minArgs: 1, maxArgs: 2, dead: true,
		usage: "Usage: GET FULL VARIABLE <expression> [channel]", reply: (*peer).getFullVariable},
	{words: []string{"SET", "VARIABLE"}, minArgs: 2, maxArgs: 2, dead: true,
		usage: "Usage: SET VARIABLE <name> <value>", reply: (*peer).setVariable},
	{words: []string{"VERBOSE"}, minArgs: 1, maxArgs: 2, dead: true,
		usage: "Usage: VERBOSE <message> [level]", reply: fixed("200 result=1")},
	{words: []string{"EXEC"}, minArgs: 1, maxArgs: -1, dead: true,
		usage: "Usage: EXEC <application> [options]", reply: fixed("200 result=0")},
	{words: []string{"NOOP"}, maxArgs: -1, dead: true, usage: "Usage: NOOP", reply: fixed("200 result=0")},
	{words: []string{"CHANNEL", "STATUS"}, maxArgs: 1, usage: "Usage: CHANNEL STATUS [channel]", reply: fixed("200 result=6")},
	{words: []string{"SET", "CONTEXT"}, minArgs: 1, maxArgs: 1, usage: "Usage: SET CONTEXT <context>", reply: fixed("200 result=0")},
	{words: []string{"SET", "EXTENSION"}, minArgs: 1, maxArgs: 1, usage: "Usage: SET EXTENSION <extension>", reply: fixed("200 result=0")},
	{words: []string{"SET", "PRIORITY"}, minArgs: 1, maxArgs: 1, usage: "Usage: SET PRIORITY <priority>", reply: fixed("200 result=0")},
	{words: []string{"DATABASE", "PUT"}, minArgs: 3, maxArgs: 3, dead: true,
		usage: "Usage: DATABASE PUT <family> <key> <value>", reply: (*peer).dbPut},
	{words: []string{"DATABASE", "GET"}, minArgs: 2, maxArgs: 2, dead: true,
		usage: "Usage: DATABASE GET <family> <key>", reply: (*peer).dbGet},
	{words: []string{"DATABASE", "DEL"}, minArgs: 2, maxArgs: 2, dead: true,
		usage: "Usage: DATABASE DEL <family> <key>", reply: (*peer).dbDel},
	{words: []string{"GOSUB"}, minArgs: 1, maxArgs: 4,
		usage: "Usage: GOSUB <context> <extension> <priority> [arguments]",
		reply: fixed("100 result=0 Trying...\n200 result=0 Gosub complete")},
}

// lookup finds the command the words start with, as Asterisk does:
// words compared case-insensitively, the longest command wins, and the
// remaining words are its arguments.
func lookup(words []string) (*spec, []string) {
	var best *spec
	for _, c := range commands {
		if len(c.words) > len(words) || (best != nil && len(c.words) <= len(best.words)) {
			continue
		}
		ok := true
		for i, w := range c.words {
			if !strings.EqualFold(w, words[i]) {
				ok = false
				break
			}
		}
		if ok {
			best = c
		}
	}
	if best == nil {
		return nil, nil
	}
	return best, words[len(best.words):]
}

func (p *peer) hangup(_ []string) error {
	p.dead = true
	if err := p.write("200 result=1\n"); err != nil {
		return err
	}
	if err := p.write("HANGUP\n"); err != nil {
		return err
	}
	return errClosedByUs
}

func (p *peer) getData(args []string) error {
	if err := p.answerGetData(args); err != nil {
		return err
	}
	if p.call.AfterDigits != nil {
		p.call.AfterDigits(p.digits)
	}
	return nil
}

func (p *peer) waitForDigit(_ []string) error {
	var d rune
	if p.waits < len(p.call.WaitDigits) {
		d = p.call.WaitDigits[p.waits]
	}
	p.waits++
	return p.write("200 result=" + strconv.Itoa(int(d)) + "\n")
}

func (p *peer) answerGetData(args []string) error {
	maxDigits := 1024
	if len(args) >= 3 {
		if n, err := strconv.Atoi(args[2]); err == nil && n > 0 {
			maxDigits = n
		}
	}
	keyed := ""
	if p.digits < len(p.call.Digits) {
		keyed = p.call.Digits[p.digits]
	}
	p.digits++
	var got strings.Builder
	for _, r := range keyed {
		if r == '#' {
			return p.write("200 result=" + got.String() + "\n")
		}
		got.WriteRune(r)
		if got.Len() == maxDigits {
			return p.write("200 result=" + got.String() + "\n")
		}
	}
	return p.write("200 result=" + got.String() + " (timeout)\n")
}

// startsNumeric mirrors Asterisk's sscanf("%d") check of SAY NUMBER and
// SAY DIGITS.
func startsNumeric(s string) bool {
	s = strings.TrimLeft(s, " \t")
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	return s != "" && s[0] >= '0' && s[0] <= '9'
}

// variable returns a channel variable, with the built-ins a real channel has.
func (p *peer) variable(name string) (string, bool) {
	if v, ok := p.vars[name]; ok {
		return v, true
	}
	switch name {
	case "CHANNEL":
		return p.env["agi_channel"], true
	case "UNIQUEID":
		return p.env["agi_uniqueid"], true
	case "CONTEXT":
		return p.env["agi_context"], true
	case "EXTEN":
		return p.env["agi_extension"], true
	}
	return "", false
}

func (p *peer) getVariable(args []string) error {
	v, ok := p.variable(args[0])
	if !ok {
		return p.write("200 result=0\n")
	}
	return p.write("200 result=1 (" + v + ")\n")
}

// getFullVariable substitutes ${NAME} references; Asterisk answers
// result=1 for any expression, with whatever the substitution produced.
func (p *peer) getFullVariable(args []string) error {
	expr := args[0]
	if v, ok := p.vars[expr]; ok {
		return p.write("200 result=1 (" + v + ")\n")
	}
	var b strings.Builder
	for {
		i := strings.Index(expr, "${")
		if i < 0 {
			break
		}
		j := strings.IndexByte(expr[i:], '}')
		if j < 0 {
			break
		}
		b.WriteString(expr[:i])
		v, _ := p.variable(expr[i+2 : i+j])
		b.WriteString(v)
		expr = expr[i+j+1:]
	}
	b.WriteString(expr)
	return p.write("200 result=1 (" + b.String() + ")\n")
}

func (p *peer) setVariable(args []string) error {
	p.vars[args[0]] = args[1]
	return p.write("200 result=1\n")
}

func (p *peer) dbPut(args []string) error {
	p.db[args[0]+"/"+args[1]] = args[2]
	return p.write("200 result=1\n")
}

func (p *peer) dbGet(args []string) error {
	v, ok := p.db[args[0]+"/"+args[1]]
	if !ok {
		return p.write("200 result=0\n")
	}
	return p.write("200 result=1 (" + v + ")\n")
}

func (p *peer) dbDel(args []string) error {
	k := args[0] + "/" + args[1]
	_, ok := p.db[k]
	delete(p.db, k)
	if !ok {
		return p.write("200 result=0\n")
	}
	return p.write("200 result=1\n")
}

// SplitCommand splits a command line into words the way Asterisk's
// res_agi does: spaces and tabs separate words, double quotes group
// (and may start an empty word), and a backslash makes the next
// character literal. A CR is an ordinary character, which is why a
// command sent with CRLF reaches Asterisk with a CR in its last word.
func SplitCommand(line string) []string {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
		quoted bool
		escape bool
	)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case escape:
			cur.WriteByte(c)
			inWord, escape = true, false
		case c == '\\':
			escape = true
		case c == '"':
			quoted = !quoted
			inWord = true
		case (c == ' ' || c == '\t') && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}
