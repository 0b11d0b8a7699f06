package agi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Session is one FastAGI connection: the call's environment and the
// command channel to Asterisk. Commands are strictly request/reply, so a
// Session runs one at a time; it is safe to call from several goroutines,
// which then take turns.
//
// A command that fails with an I/O error, a protocol error, ErrLineTooLong
// or a cancelled context leaves the connection at an unknown point of the
// conversation; the Session closes it, and every later command returns the
// same error. Errors from Asterisk itself (*ReplyError) leave the Session
// usable.
type Session struct {
	// Env is the call's environment, read before the handler runs.
	Env Env

	conn        net.Conn
	lr          *lineReader
	readTimeout time.Duration
	log         *slog.Logger

	mu sync.Mutex // serialises commands

	hungUp atomic.Bool

	failMu  sync.Mutex
	failErr error // first fatal error; set once, then the conn is closed
}

func newSession(conn net.Conn, readTimeout time.Duration, maxLine int, log *slog.Logger) *Session {
	return &Session{
		conn:        conn,
		lr:          newLineReader(conn, maxLine),
		readTimeout: readTimeout,
		log:         log,
	}
}

// RemoteAddr returns the address of the Asterisk server on the other end.
func (s *Session) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

// HungUp reports whether Asterisk has said the channel is gone: it sent
// its HANGUP notice, answered 511, or our own Hangup succeeded. The notice
// arrives unsolicited and is only seen while a command waits for its
// reply, so HungUp can lag the caller by one command.
func (s *Session) HungUp() bool { return s.hungUp.Load() }

// Logger returns the session's logger, which carries the call's unique ID
// and request path.
func (s *Session) Logger() *slog.Logger { return s.log }

// readEnv reads the environment block under one overall deadline, so a
// peer that trickles bytes cannot hold the connection open.
func (s *Session) readEnv() error {
	if err := s.conn.SetReadDeadline(time.Now().Add(s.readTimeout)); err != nil {
		return fmt.Errorf("agi: reading env: %w", err)
	}
	env, err := readEnv(s.lr)
	if err != nil {
		return err
	}
	s.Env = env
	return nil
}

// fail records the first fatal error and closes the connection, which also
// unblocks a command waiting on it.
func (s *Session) fail(err error) {
	s.failMu.Lock()
	if s.failErr == nil {
		s.failErr = err
	}
	s.failMu.Unlock()
	s.conn.Close()
}

func (s *Session) failure() error {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	return s.failErr
}

// close ends the session once its handler has returned.
func (s *Session) close() { s.fail(net.ErrClosed) }

// command is one AGI command ready to send.
type command struct {
	verb string // for errors and logs, e.g. "GET DATA"; never arguments
	line string // the full line, without LF
	// wait is how long Asterisk itself may take before it replies (a
	// prompt's digit timeout); it extends the read deadline.
	wait time.Duration
	// secret marks replies that carry digits the caller typed; they are
	// never logged.
	secret bool
}

// do sends one command and reads its reply. Replies other than 200 come
// back as a *ReplyError along with the Reply.
func (s *Session) do(ctx context.Context, c command) (Reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	if err := s.failure(); err != nil {
		return Reply{}, s.wrap(c, err)
	}
	if err := ctx.Err(); err != nil {
		return Reply{}, fmt.Errorf("agi: %s: %w", c.verb, context.Cause(ctx))
	}
	// A reply that arrives after we gave up would be read as the answer
	// to the next command, so cancellation has to end the connection.
	stop := context.AfterFunc(ctx, func() { s.fail(context.Cause(ctx)) })
	defer stop()

	s.log.LogAttrs(ctx, slog.LevelDebug, "agi command", slog.String("command", c.line))

	now := time.Now()
	if err := s.conn.SetWriteDeadline(now.Add(s.readTimeout)); err != nil {
		return Reply{}, s.fatal(c, err)
	}
	if _, err := io.WriteString(s.conn, c.line+"\n"); err != nil {
		return Reply{}, s.fatal(c, err)
	}
	deadline := now.Add(s.readTimeout + c.wait)
	if d, ok := ctx.Deadline(); ok && d.After(deadline) {
		// The caller allowed this command longer (EXEC Dial, a long
		// prompt): honour it; the read still has a deadline.
		deadline = d
	}
	if err := s.conn.SetReadDeadline(deadline); err != nil {
		return Reply{}, s.fatal(c, err)
	}

	rep, hangup, err := readReply(s.lr)
	if hangup {
		s.hungUp.Store(true)
	}
	if err == nil {
		err = s.lr.checkIdle()
	}
	if err != nil {
		return Reply{}, s.fatal(c, err)
	}
	if rep.Code == 511 {
		s.hungUp.Store(true)
	}
	if c.secret {
		s.log.LogAttrs(ctx, slog.LevelDebug, "agi reply", slog.String("command", c.verb), slog.Int("code", rep.Code))
	} else {
		s.log.LogAttrs(ctx, slog.LevelDebug, "agi reply", slog.String("command", c.verb), slog.Int("code", rep.Code),
			slog.String("result", rep.RawResult), slog.String("data", rep.Data))
	}
	if rep.Code != 200 {
		return rep, &ReplyError{Reply: rep, Command: c.verb}
	}
	return rep, nil
}

// fatal closes the session after an error that desynchronises it and
// returns the error to report. If the session was already failed, by a
// cancelled context or Shutdown, that cause is the better explanation
// than the "use of closed connection" the read saw.
func (s *Session) fatal(c command, err error) error {
	if prev := s.failure(); prev != nil {
		err = prev
	} else {
		s.fail(err)
	}
	return s.wrap(c, err)
}

func (s *Session) wrap(c command, err error) error {
	if s.hungUp.Load() && !errors.Is(err, ErrHangup) &&
		(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
			errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET)) {
		// Asterisk told us the caller left, then the line went away.
		return fmt.Errorf("agi: %s: %w: %w", c.verb, ErrHangup, err)
	}
	return fmt.Errorf("agi: %s: %w", c.verb, err)
}

// run builds and sends a command from a verb and arguments.
func (s *Session) run(ctx context.Context, verb string, wait time.Duration, secret bool, args ...arg) (Reply, error) {
	line, err := buildCommand(verb, args...)
	if err != nil {
		return Reply{}, fmt.Errorf("agi: %s: %w", verb, err)
	}
	return s.do(ctx, command{verb: verb, line: line, wait: wait, secret: secret})
}

// Command sends one raw command line, which must not contain CR, LF or
// NUL, and returns Asterisk's reply. It is the escape hatch for commands
// without a method; the caller interprets the result. Replies other than
// 200 are returned together with a *ReplyError. The read deadline is
// Server.ReadTimeout, or ctx's deadline if that is later. Replies to
// commands that collect digits are not logged.
func (s *Session) Command(ctx context.Context, cmd string) (Reply, error) {
	verb := verbOf(cmd)
	if err := checkLine(cmd); err != nil {
		return Reply{}, fmt.Errorf("agi: %s: %w", verb, err)
	}
	return s.do(ctx, command{verb: verb, line: cmd, secret: collectsDigits(verb)})
}

// verbOf extracts the command name of a raw line for logs and errors,
// leaving out the arguments, which may be secret. Asterisk matches
// command words case-insensitively and ignores repeated spaces, and so
// does this.
func verbOf(line string) string {
	f := strings.Fields(strings.ToUpper(line))
	best := ""
	for _, v := range knownVerbs {
		w := strings.Fields(v)
		if len(w) <= len(f) && len(v) > len(best) && slices.Equal(w, f[:len(w)]) {
			best = v
		}
	}
	if best == "" {
		return "unknown command"
	}
	return best
}

// knownVerbs are the commands of Asterisk 20's res_agi.
var knownVerbs = []string{
	"ANSWER", "ASYNCAGI BREAK", "CHANNEL STATUS", "CONTROL STREAM FILE",
	"DATABASE DEL", "DATABASE DELTREE", "DATABASE GET", "DATABASE PUT",
	"EXEC", "GET DATA", "GET FULL VARIABLE", "GET OPTION", "GET VARIABLE",
	"GOSUB", "HANGUP", "NOOP", "RECEIVE CHAR", "RECEIVE TEXT", "RECORD FILE",
	"SAY ALPHA", "SAY DIGITS", "SAY NUMBER", "SAY PHONETIC", "SAY DATE",
	"SAY TIME", "SAY DATETIME", "SEND IMAGE", "SEND TEXT", "SET AUTOHANGUP",
	"SET CALLERID", "SET CONTEXT", "SET EXTENSION", "SET MUSIC", "SET PRIORITY",
	"SET VARIABLE", "STREAM FILE", "TDD MODE", "VERBOSE", "WAIT FOR DIGIT",
	"SPEECH CREATE", "SPEECH SET", "SPEECH DESTROY", "SPEECH LOAD GRAMMAR",
	"SPEECH UNLOAD GRAMMAR", "SPEECH ACTIVATE GRAMMAR", "SPEECH DEACTIVATE GRAMMAR",
	"SPEECH RECOGNIZE",
}

// collectsDigits reports whether a command's reply can carry DTMF the
// caller typed.
func collectsDigits(verb string) bool {
	switch verb {
	case "GET DATA", "GET OPTION", "WAIT FOR DIGIT", "STREAM FILE", "CONTROL STREAM FILE",
		"RECORD FILE", "RECEIVE CHAR", "RECEIVE TEXT", "SPEECH RECOGNIZE":
		return true
	}
	return strings.HasPrefix(verb, "SAY ")
}

// millis renders a timeout in the milliseconds Asterisk expects, rounding
// a positive sub-millisecond value up: 0 means "default" to Asterisk.
func millis(d time.Duration) string {
	ms := d.Milliseconds()
	if ms == 0 && d > 0 {
		ms = 1
	}
	return strconv.FormatInt(ms, 10)
}

// maxTimeout is the largest timeout Asterisk parses (a C int of
// milliseconds).
const maxTimeout = time.Duration(math.MaxInt32) * time.Millisecond

// Answer answers the channel if it is not up yet.
func (s *Session) Answer(ctx context.Context) error {
	rep, err := s.run(ctx, "ANSWER", 0, false)
	if err != nil {
		return err
	}
	if rep.Result < 0 {
		return &ReplyError{Reply: rep, Command: "ANSWER"}
	}
	return nil
}

// Hangup hangs up the channel. Asterisk keeps the connection open
// afterwards and still serves variable commands, so a handler may record
// its outcome after hanging up. On a channel that is already gone the
// error matches ErrHangup.
func (s *Session) Hangup(ctx context.Context) error {
	rep, err := s.run(ctx, "HANGUP", 0, false)
	if err != nil {
		return err
	}
	if rep.Result != 1 {
		return &ReplyError{Reply: rep, Command: "HANGUP"}
	}
	s.hungUp.Store(true)
	return nil
}

// GetData plays the prompt file (name without extension) and collects up
// to maxDigits DTMF digits; '#' ends input early and is not returned.
// timeout is how long Asterisk waits for each digit once the prompt has
// played. timedOut reports that input ended by timeout rather than by '#'
// or maxDigits; digits typed before it are still returned. If the caller
// hangs up, the digits are lost and err matches ErrHangup.
//
// The digits are never logged.
func (s *Session) GetData(ctx context.Context, file string, timeout time.Duration, maxDigits int) (digits string, timedOut bool, err error) {
	const verb = "GET DATA"
	if timeout <= 0 || timeout > maxTimeout {
		return "", false, fmt.Errorf("agi: %s: %w: timeout %v out of range (0, %v]", verb, ErrBadArgument, timeout, maxTimeout)
	}
	// Asterisk's digit buffer is 1024 bytes.
	if maxDigits < 1 || maxDigits > 1024 {
		return "", false, fmt.Errorf("agi: %s: %w: maxDigits %d out of range [1, 1024]", verb, ErrBadArgument, maxDigits)
	}
	// Asterisk restarts the timeout with every digit, so a slow typist
	// can take maxDigits timeouts after the prompt.
	wait := timeout * time.Duration(maxDigits)
	rep, err := s.run(ctx, verb, wait, true, plain(file), plain(millis(timeout)), plain(strconv.Itoa(maxDigits)))
	if err != nil {
		return "", false, err
	}
	if rep.RawResult == "-1" {
		return "", false, &ReplyError{Reply: rep, Command: verb}
	}
	if !isDTMF(rep.RawResult) {
		return "", false, fmt.Errorf("agi: %s: %w: result is not DTMF digits", verb, ErrProtocol)
	}
	return rep.RawResult, rep.Data == "timeout", nil
}

// StreamFile plays a sound file (name without extension). A caller
// pressing one of escapeDigits stops playback, and that digit is
// returned; 0 means playback ran to the end. Asterisk answers result=-1
// both when the caller hung up and when the file cannot be played; the
// error then matches ErrHangup, and HungUp tells the cases apart once the
// HANGUP notice has arrived.
func (s *Session) StreamFile(ctx context.Context, file, escapeDigits string) (digit rune, err error) {
	const verb = "STREAM FILE"
	if !isDTMF(escapeDigits) {
		return 0, fmt.Errorf("agi: %s: %w: escape digits must be DTMF characters", verb, ErrBadArgument)
	}
	rep, err := s.run(ctx, verb, 0, true, plain(file), plain(escapeDigits))
	if err != nil {
		return 0, err
	}
	return digitResult(verb, rep)
}

// SayDigits speaks a digit string ("123" as one, two, three); a caller
// pressing one of escape stops it early.
func (s *Session) SayDigits(ctx context.Context, digits, escape string) error {
	const verb = "SAY DIGITS"
	// Asterisk rejects a string that does not start with a number.
	if digits == "" || digits[0] < '0' || digits[0] > '9' || !isDTMF(digits) {
		// The digits stay out of the error: they may be a code read back.
		return fmt.Errorf("agi: %s: %w: not a digit string starting with 0-9", verb, ErrBadArgument)
	}
	if !isDTMF(escape) {
		return fmt.Errorf("agi: %s: %w: escape digits must be DTMF characters", verb, ErrBadArgument)
	}
	rep, err := s.run(ctx, verb, 0, true, plain(digits), plain(escape))
	if err != nil {
		return err
	}
	_, err = digitResult(verb, rep)
	return err
}

// SayNumber speaks a number ("123" as one hundred twenty-three); a caller
// pressing one of escape stops it early.
func (s *Session) SayNumber(ctx context.Context, n int, escape string) error {
	const verb = "SAY NUMBER"
	if n < math.MinInt32 || n > math.MaxInt32 {
		return fmt.Errorf("agi: %s: %w: %d does not fit Asterisk's int", verb, ErrBadArgument, n)
	}
	if !isDTMF(escape) {
		return fmt.Errorf("agi: %s: %w: escape digits must be DTMF characters", verb, ErrBadArgument)
	}
	rep, err := s.run(ctx, verb, 0, true, plain(strconv.Itoa(n)), plain(escape))
	if err != nil {
		return err
	}
	_, err = digitResult(verb, rep)
	return err
}

// WaitForDigit waits up to timeout for the caller to press a key and
// returns it, or 0 if none was pressed. Asterisk's "wait forever" (a
// negative timeout) is refused: every read of this package has a deadline.
func (s *Session) WaitForDigit(ctx context.Context, timeout time.Duration) (digit rune, err error) {
	const verb = "WAIT FOR DIGIT"
	if timeout < 0 || timeout > maxTimeout {
		return 0, fmt.Errorf("agi: %s: %w: timeout %v out of range [0, %v]", verb, ErrBadArgument, timeout, maxTimeout)
	}
	rep, err := s.run(ctx, verb, timeout, true, plain(millis(timeout)))
	if err != nil {
		return 0, err
	}
	return digitResult(verb, rep)
}

// digitResult decodes the result of commands that return the ASCII code
// of a pressed digit, 0 for none, or -1 on hangup or failure.
func digitResult(verb string, rep Reply) (rune, error) {
	if !isInt(rep.RawResult) {
		return 0, fmt.Errorf("agi: %s: %w: result is not a number", verb, ErrProtocol)
	}
	switch {
	case rep.Result < 0:
		return 0, &ReplyError{Reply: rep, Command: verb}
	case rep.Result == 0:
		return 0, nil
	case rep.Result > 0x7f || !isDTMF(string(rune(rep.Result))):
		return 0, fmt.Errorf("agi: %s: %w: result %d is not a DTMF digit", verb, ErrProtocol, rep.Result)
	}
	return rune(rep.Result), nil
}

// GetVariable returns a channel variable. set is false when the variable
// does not exist, as opposed to existing with an empty value.
func (s *Session) GetVariable(ctx context.Context, name string) (value string, set bool, err error) {
	return s.getVar(ctx, "GET VARIABLE", name)
}

// GetFullVariable evaluates an expression with Asterisk's variable and
// function substitution, e.g. "${CHANNEL(peerip)}". Asterisk answers
// "set" for any expression, with an empty value when nothing matched.
func (s *Session) GetFullVariable(ctx context.Context, expr string) (value string, set bool, err error) {
	return s.getVar(ctx, "GET FULL VARIABLE", expr)
}

func (s *Session) getVar(ctx context.Context, verb, name string) (string, bool, error) {
	if name == "" {
		return "", false, fmt.Errorf("agi: %s: %w: empty name", verb, ErrBadArgument)
	}
	rep, err := s.run(ctx, verb, 0, false, plain(name))
	if err != nil {
		return "", false, err
	}
	switch rep.Result {
	case 0:
		return "", false, nil
	case 1:
		return rep.Data, true, nil
	}
	return "", false, &ReplyError{Reply: rep, Command: verb}
}

// SetVariable sets a channel variable. It works on a dead channel too.
func (s *Session) SetVariable(ctx context.Context, name, value string) error {
	if name == "" {
		return fmt.Errorf("agi: SET VARIABLE: %w: empty name", ErrBadArgument)
	}
	_, err := s.run(ctx, "SET VARIABLE", 0, false, plain(name), plain(value))
	return err
}

// Verbose writes msg to Asterisk's verbose log at level (1-4).
func (s *Session) Verbose(ctx context.Context, msg string, level int) error {
	_, err := s.run(ctx, "VERBOSE", 0, false, quoted(msg), plain(strconv.Itoa(level)))
	return err
}

// Exec runs a dialplan application with args joined by commas, as the
// dialplan writes them, and returns the application's result. An
// application that does not exist gives an error matching ErrNoSuchApp.
//
// Applications such as Dial or Playback can run far longer than
// Server.ReadTimeout; give ctx a deadline to allow them that long.
func (s *Session) Exec(ctx context.Context, app string, args ...string) (result int, err error) {
	const verb = "EXEC"
	if app == "" || strings.ContainsAny(app, " \t\"\\") {
		return 0, fmt.Errorf("agi: %s: %w: bad application name %q", verb, ErrBadArgument, app)
	}
	a := []arg{plain(app)}
	if len(args) > 0 {
		a = append(a, plain(strings.Join(args, ",")))
	}
	rep, err := s.run(ctx, verb, 0, false, a...)
	if err != nil {
		return 0, err
	}
	if !isInt(rep.RawResult) {
		return 0, fmt.Errorf("agi: %s: %w: result is not a number", verb, ErrProtocol)
	}
	if rep.Result == -2 {
		return rep.Result, &ReplyError{Reply: rep, Command: verb}
	}
	return rep.Result, nil
}

// isDTMF reports whether s consists of DTMF characters only; empty is
// allowed.
func isDTMF(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c == '*', c == '#', c >= 'A' && c <= 'D':
		default:
			return false
		}
	}
	return true
}

func isInt(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}
