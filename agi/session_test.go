package agi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// pipeSession returns a Session on one end of a loopback TCP connection
// and the other end, which the test drives as Asterisk. (net.Pipe would
// do, but it has no buffering and may report a completed write as failed
// when the peer closes right after reading.)
func pipeSession(t *testing.T, readTimeout time.Duration, maxLine int) (*Session, *bufio.Reader, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	theirs, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ours, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ours.Close(); theirs.Close() })
	log, _ := testLogger(t)
	return newSession(ours, readTimeout, maxLine, log), bufio.NewReader(theirs), theirs
}

// expectLine reads one command line on Asterisk's side.
func expectLine(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	got, err := r.ReadString('\n')
	if err != nil || got != want+"\n" {
		t.Errorf("Asterisk read %q, %v; want %q", got, err, want+"\n")
	}
}

func TestGetDataReplies(t *testing.T) {
	tests := []struct {
		name     string
		reply    string
		digits   string
		timedOut bool
		err      []error
		hungUp   bool
	}{
		{name: "digits", reply: "200 result=1234\n", digits: "1234"},
		{name: "leading zeros kept", reply: "200 result=0042\n", digits: "0042"},
		{name: "star and letters", reply: "200 result=1*A\n", digits: "1*A"},
		{name: "timeout with digits", reply: "200 result=12 (timeout)\n", digits: "12", timedOut: true},
		{name: "timeout without digits", reply: "200 result= (timeout)\n", timedOut: true},
		{name: "hangup", reply: "200 result=-1\n", err: []error{ErrHangup}},
		{name: "dead channel", reply: "HANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n",
			err: []error{ErrHangup, ErrNotPermitted}, hungUp: true},
		{name: "not digits", reply: "200 result=12x\n", err: []error{ErrProtocol}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunks := []chunk{agiSends("GET DATA beep 3000 6\n"), astSays(tt.reply)}
			runExchange(t, &Server{}, chunks, func(ctx context.Context, s *Session) {
				d, to, err := s.GetData(ctx, "beep", 3*time.Second, 6)
				for _, want := range tt.err {
					if !errors.Is(err, want) {
						t.Errorf("err = %v, want %v", err, want)
					}
				}
				if tt.err == nil && err != nil {
					t.Errorf("err = %v", err)
				}
				if d != tt.digits || to != tt.timedOut {
					t.Errorf("GetData = %q, %v; want %q, %v", d, to, tt.digits, tt.timedOut)
				}
				if s.HungUp() != tt.hungUp {
					t.Errorf("HungUp = %v, want %v", s.HungUp(), tt.hungUp)
				}
			})
		})
	}
}

func TestDigitCommands(t *testing.T) {
	chunks := []chunk{
		agiSends("STREAM FILE welcome #*\n"), astSays("200 result=35 endpos=1000\n"),
		agiSends("STREAM FILE welcome 0123456789\n"), astSays("200 result=-1 endpos=0\n"),
		agiSends("WAIT FOR DIGIT 5000\n"), astSays("200 result=49\n"),
		agiSends("WAIT FOR DIGIT 1\n"), astSays("200 result=0\n"),
		agiSends("SAY DIGITS 10*0*0*1 \"\"\n"), astSays("200 result=0\n"),
		agiSends("SAY NUMBER 8 #\n"), astSays("200 result=35\n"),
		agiSends("SAY NUMBER -3 \"\"\n"), astSays("200 result=-1\n"),
		agiSends("WAIT FOR DIGIT 100\n"), astSays("200 result=120\n"),
	}
	runExchange(t, &Server{}, chunks, func(ctx context.Context, s *Session) {
		if d, err := s.StreamFile(ctx, "welcome", "#*"); err != nil || d != '#' {
			t.Errorf("StreamFile = %q, %v; want '#'", d, err)
		}
		if _, err := s.StreamFile(ctx, "welcome", "0123456789"); !errors.Is(err, ErrHangup) {
			t.Errorf("StreamFile result=-1: err = %v, want ErrHangup", err)
		}
		if d, err := s.WaitForDigit(ctx, 5*time.Second); err != nil || d != '1' {
			t.Errorf("WaitForDigit = %q, %v; want '1'", d, err)
		}
		if d, err := s.WaitForDigit(ctx, time.Microsecond); err != nil || d != 0 {
			t.Errorf("WaitForDigit = %q, %v; want none", d, err)
		}
		if err := s.SayDigits(ctx, "10*0*0*1", ""); err != nil {
			t.Errorf("SayDigits: %v", err)
		}
		if err := s.SayNumber(ctx, 8, "#"); err != nil {
			t.Errorf("SayNumber interrupted by a digit: %v", err)
		}
		if err := s.SayNumber(ctx, -3, ""); !errors.Is(err, ErrHangup) {
			t.Errorf("SayNumber result=-1: err = %v, want ErrHangup", err)
		}
		if _, err := s.WaitForDigit(ctx, 100*time.Millisecond); !errors.Is(err, ErrProtocol) {
			t.Errorf("WaitForDigit result 'x': err = %v, want ErrProtocol", err)
		}
	})
}

// Arguments that would break the protocol are refused before anything is
// sent: the fake Asterisk sees only the final ANSWER.
func TestBadArgumentsSendNothing(t *testing.T) {
	chunks := []chunk{agiSends("ANSWER\n"), astSays("200 result=0\n")}
	runExchange(t, &Server{}, chunks, func(ctx context.Context, s *Session) {
		calls := map[string]func() error{
			"GetData timeout 0":      func() error { _, _, err := s.GetData(ctx, "beep", 0, 4); return err },
			"GetData maxDigits 0":    func() error { _, _, err := s.GetData(ctx, "beep", time.Second, 0); return err },
			"GetData maxDigits 2000": func() error { _, _, err := s.GetData(ctx, "beep", time.Second, 2000); return err },
			"GetData file LF":        func() error { _, _, err := s.GetData(ctx, "beep\nHANGUP", time.Second, 4); return err },
			"StreamFile escape":      func() error { _, err := s.StreamFile(ctx, "beep", "1 2"); return err },
			"StreamFile file CR":     func() error { _, err := s.StreamFile(ctx, "beep\r", ""); return err },
			"SayDigits letters":      func() error { return s.SayDigits(ctx, "abc", "") },
			"SayDigits leading star": func() error { return s.SayDigits(ctx, "*1", "") },
			"SayDigits empty":        func() error { return s.SayDigits(ctx, "", "") },
			"SayNumber too big":      func() error { return s.SayNumber(ctx, 1<<40, "") },
			"SayNumber escape":       func() error { return s.SayNumber(ctx, 1, "\n") },
			"WaitForDigit forever":   func() error { _, err := s.WaitForDigit(ctx, -1); return err },
			"Exec empty":             func() error { _, err := s.Exec(ctx, ""); return err },
			"Exec space":             func() error { _, err := s.Exec(ctx, "No Op"); return err },
			"Exec arg LF":            func() error { _, err := s.Exec(ctx, "NoOp", "a\nHANGUP"); return err },
			"GetVariable empty":      func() error { _, _, err := s.GetVariable(ctx, ""); return err },
			"GetFullVariable NUL":    func() error { _, _, err := s.GetFullVariable(ctx, "${X}\x00"); return err },
			"SetVariable empty":      func() error { return s.SetVariable(ctx, "", "x") },
			"SetVariable value LF":   func() error { return s.SetVariable(ctx, "X", "a\nHANGUP") },
			"Verbose CRLF":           func() error { return s.Verbose(ctx, "a\r\nHANGUP", 1) },
			"Command empty":          func() error { _, err := s.Command(ctx, ""); return err },
			"Command two lines":      func() error { _, err := s.Command(ctx, "ANSWER\nHANGUP"); return err },
			"Command too long":       func() error { _, err := s.Command(ctx, "NOOP "+strings.Repeat("x", 3000)); return err },
		}
		for name, call := range calls {
			if err := call(); !errors.Is(err, ErrBadArgument) {
				t.Errorf("%s: err = %v, want ErrBadArgument", name, err)
			}
		}
		if err := s.Answer(ctx); err != nil {
			t.Errorf("Answer after refused commands: %v", err)
		}
	})
}

// Fact: after the HANGUP notice the connection may end; that is a hangup,
// not a mysterious EOF.
func TestEOFAfterHangupNotice(t *testing.T) {
	s, r, theirs := pipeSession(t, time.Second, 1024)
	go func() {
		r.ReadString('\n')
		io.WriteString(theirs, "HANGUP\n")
		theirs.Close()
	}()
	_, _, err := s.GetVariable(context.Background(), "X")
	if !errors.Is(err, ErrHangup) || !errors.Is(err, io.EOF) {
		t.Errorf("err = %v, want ErrHangup wrapping EOF", err)
	}
	if !s.HungUp() {
		t.Error("HungUp false")
	}
}

func TestEOFWithoutHangupIsNotHangup(t *testing.T) {
	s, r, theirs := pipeSession(t, time.Second, 1024)
	go func() {
		r.ReadString('\n')
		theirs.Close()
	}()
	err := s.Answer(context.Background())
	if !errors.Is(err, io.EOF) || errors.Is(err, ErrHangup) {
		t.Errorf("err = %v, want EOF and not ErrHangup", err)
	}
}

// After a protocol error the stream position is unknown: the session is
// closed and every later command fails without sending.
func TestProtocolErrorIsSticky(t *testing.T) {
	s, r, theirs := pipeSession(t, time.Second, 1024)
	go func() {
		r.ReadString('\n')
		io.WriteString(theirs, "garbage\n")
	}()
	ctx := context.Background()
	if err := s.Answer(ctx); !errors.Is(err, ErrProtocol) {
		t.Fatalf("err = %v, want ErrProtocol", err)
	}
	if _, _, err := s.GetVariable(ctx, "X"); !errors.Is(err, ErrProtocol) {
		t.Errorf("next command: err = %v, want the sticky ErrProtocol", err)
	}
	if n, err := r.ReadByte(); err == nil {
		t.Errorf("Asterisk received %q after the protocol error", n)
	}
}

func TestLineTooLongClosesSession(t *testing.T) {
	s, r, theirs := pipeSession(t, time.Second, 64)
	go func() {
		r.ReadString('\n')
		io.WriteString(theirs, "200 result=1 ("+strings.Repeat("x", 100)+")\n")
	}()
	_, _, err := s.GetVariable(context.Background(), "X")
	if !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("err = %v, want ErrLineTooLong", err)
	}
	if _, err := r.ReadByte(); err == nil {
		t.Error("connection still open after ErrLineTooLong")
	}
}

func TestContextCancelClosesSession(t *testing.T) {
	s, r, _ := pipeSession(t, 10*time.Second, 1024)
	go r.ReadString('\n') // Asterisk reads the command and never answers
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, _, err := s.GetData(ctx, "beep", 5*time.Second, 4)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancellation took %v", d)
	}
	if err := s.Answer(context.Background()); !errors.Is(err, context.Canceled) {
		t.Errorf("next command: err = %v, want the sticky context.Canceled", err)
	}
}

func TestCancelledContextSendsNothing(t *testing.T) {
	s, r, theirs := pipeSession(t, time.Second, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Answer(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	// Nothing was sent, so the session is still in step.
	go func() {
		expectLine(t, r, "ANSWER")
		io.WriteString(theirs, "200 result=0\n")
	}()
	if err := s.Answer(context.Background()); err != nil {
		t.Errorf("Answer after a refused call: %v", err)
	}
}

func TestReadTimeout(t *testing.T) {
	s, r, _ := pipeSession(t, 100*time.Millisecond, 1024)
	go r.ReadString('\n')
	start := time.Now()
	err := s.Answer(context.Background())
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 3*time.Second {
		t.Errorf("timed out after %v", d)
	}
}

// Commands that wait for the caller get their own timeout on top of
// ReadTimeout; a ctx deadline can extend it further.
func TestDeadlineExtensions(t *testing.T) {
	tests := []struct {
		name string
		call func(ctx context.Context, s *Session) error
		ctx  time.Duration
	}{
		{"WaitForDigit", func(ctx context.Context, s *Session) error {
			_, err := s.WaitForDigit(ctx, 400*time.Millisecond)
			return err
		}, 0},
		{"GetData per digit", func(ctx context.Context, s *Session) error {
			_, _, err := s.GetData(ctx, "beep", 200*time.Millisecond, 2)
			return err
		}, 0},
		{"ctx deadline", func(ctx context.Context, s *Session) error {
			_, err := s.Exec(ctx, "Playback", "long-prompt")
			return err
		}, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, r, theirs := pipeSession(t, 100*time.Millisecond, 1024)
			go func() {
				r.ReadString('\n')
				time.Sleep(300 * time.Millisecond) // longer than ReadTimeout
				io.WriteString(theirs, "200 result=0\n")
			}()
			ctx := context.Background()
			if tt.ctx > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctx)
				defer cancel()
			}
			if err := tt.call(ctx, s); err != nil {
				t.Errorf("err = %v", err)
			}
		})
	}
}

// Digits typed by the caller are secrets: never logged, at any level.
func TestDigitsNeverLogged(t *testing.T) {
	s, r, theirs := pipeSession(t, time.Second, 1024)
	buf := &syncBuffer{}
	s.log = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
	go func() {
		for _, reply := range []string{"200 result=80417\n", "200 result=80418 (timeout)\n", "200 result=56\n", "200 result=55 endpos=9\n"} {
			r.ReadString('\n')
			io.WriteString(theirs, reply)
		}
	}()
	ctx := context.Background()
	if d, _, err := s.GetData(ctx, "beep", time.Second, 8); err != nil || d != "80417" {
		t.Fatalf("GetData = %q, %v", d, err)
	}
	if rep, err := s.Command(ctx, "get data beep 1000 8"); err != nil || rep.RawResult != "80418" {
		t.Fatalf("Command = %+v, %v", rep, err)
	}
	if d, err := s.WaitForDigit(ctx, time.Second); err != nil || d != '8' {
		t.Fatalf("WaitForDigit = %q, %v", d, err)
	}
	if d, err := s.StreamFile(ctx, "x", "7"); err != nil || d != '7' {
		t.Fatalf("StreamFile = %q, %v", d, err)
	}
	logs := buf.String()
	for _, secret := range []string{"80417", "80418", "=56", "=55", "result=8", "result=7"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, "agi command") {
		t.Errorf("Debug log lacks the commands:\n%s", logs)
	}
}

// Commands from several goroutines take turns; lines never interleave.
func TestConcurrentCommands(t *testing.T) {
	s, r, theirs := pipeSession(t, 5*time.Second, 1024)
	const n = 20
	go func() {
		for range n {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			name := strings.TrimSuffix(strings.TrimPrefix(line, "GET VARIABLE "), "\n")
			io.WriteString(theirs, "200 result=1 ("+name+")\n")
		}
	}()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			name := "V" + strings.Repeat("x", i)
			if v, _, err := s.GetVariable(context.Background(), name); err != nil || v != name {
				t.Errorf("GetVariable(%s) = %q, %v", name, v, err)
			}
		})
	}
	wg.Wait()
}

// A reply followed by more than the HANGUP notice means the stream is out
// of step (a value with a line break in it): the Session must not take
// the surplus for the next reply.
func TestSurplusAfterReply(t *testing.T) {
	for _, tt := range []struct {
		reply string
		err   error
	}{
		{"200 result=1 (a)\n200 result=1 (forged)\n", ErrProtocol},
		{"200 result=1 (a)\nHANGUP\nHANGUP\n", ErrProtocol},
		{"200 result=1 (a)\nHANGUP\n", nil},
		{"200 result=1 (a)\nHANG", nil},
	} {
		s, r, theirs := pipeSession(t, time.Second, 1024)
		go func() {
			r.ReadString('\n')
			io.WriteString(theirs, tt.reply) // one write, so it all arrives together
		}()
		_, _, err := s.GetVariable(context.Background(), "V")
		if !errors.Is(err, tt.err) && !(tt.err == nil && err == nil) {
			t.Errorf("reply %q: err = %v, want %v", tt.reply, err, tt.err)
		}
	}
}
