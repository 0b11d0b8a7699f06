package agitest_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dialgate/dialgate/agi"
	"github.com/dialgate/dialgate/agi/agitest"
)

// serve runs handler behind an agi.Server on loopback until the test ends.
func serve(t *testing.T, handler agi.HandlerFunc) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &agi.Server{Handler: handler, ReadTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		srv.Serve(ctx, l)
		close(done)
	}()
	t.Cleanup(func() {
		// Let handlers finish their checks before the test ends.
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		cancel()
		<-done
	})
	return l.Addr().String()
}

func dial(t *testing.T, addr string, call agitest.Call) agitest.Transcript {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := agitest.Dial(ctx, addr, call)
	if err != nil {
		t.Fatalf("Dial: %v (transcript %q)", err, tr.Commands)
	}
	return tr
}

func TestAuthorizeFlow(t *testing.T) {
	var got struct {
		sync.Mutex
		digits   string
		timedOut bool
		peer     string
	}
	addr := serve(t, func(ctx context.Context, s *agi.Session) {
		if err := s.Answer(ctx); err != nil {
			t.Errorf("Answer: %v", err)
		}
		peer, _, err := s.GetFullVariable(ctx, "${CHANNEL(peerip)}")
		if err != nil {
			t.Errorf("GetFullVariable: %v", err)
		}
		digits, timedOut, err := s.GetData(ctx, "enter-passcode", 5*time.Second, 8)
		if err != nil {
			t.Errorf("GetData: %v", err)
		}
		got.Lock()
		got.digits, got.timedOut, got.peer = digits, timedOut, peer
		got.Unlock()
		for _, err := range []error{
			s.SayDigits(ctx, "203*0*113*7", ""),
			s.SayNumber(ctx, 8, ""),
			func() error { _, err := s.StreamFile(ctx, "hours", "#"); return err }(),
			s.SetVariable(ctx, "DIALGATE_RESULT", "granted for 8 hours"),
			s.Verbose(ctx, "granted", 3),
			s.Hangup(ctx),
		} {
			if err != nil {
				t.Error(err)
			}
		}
	})
	tr := dial(t, addr, agitest.Call{
		Script:    "authorize",
		Digits:    []string{"1234#"},
		Variables: map[string]string{"CHANNEL(peerip)": "203.0.113.7"},
	})
	want := []string{
		"ANSWER",
		"GET FULL VARIABLE ${CHANNEL(peerip)}",
		"GET DATA enter-passcode 5000 8",
		`SAY DIGITS 203*0*113*7 ""`,
		`SAY NUMBER 8 ""`,
		"STREAM FILE hours #",
		`SET VARIABLE DIALGATE_RESULT "granted for 8 hours"`,
		`VERBOSE "granted" 3`,
		"HANGUP",
	}
	if !reflect.DeepEqual(tr.Commands, want) {
		t.Errorf("transcript:\n%q\nwant\n%q", tr.Commands, want)
	}
	got.Lock()
	defer got.Unlock()
	if got.digits != "1234" || got.timedOut || got.peer != "203.0.113.7" {
		t.Errorf("handler saw digits %q timedOut %v peer %q", got.digits, got.timedOut, got.peer)
	}
}

// The caller hangs up while the prompt plays, as in the recordings.
func TestHangupDuringGetData(t *testing.T) {
	addr := serve(t, func(ctx context.Context, s *agi.Session) {
		s.Answer(ctx)
		if _, _, err := s.GetData(ctx, "beep", 10*time.Second, 6); !errors.Is(err, agi.ErrHangup) {
			t.Errorf("GetData: err = %v, want ErrHangup", err)
		}
		if v, ok, err := s.GetVariable(ctx, "CHANNEL"); err != nil || !ok || v != s.Env.Channel {
			t.Errorf("GetVariable on dead channel = %q, %v, %v", v, ok, err)
		}
		if !s.HungUp() {
			t.Error("HANGUP notice not seen")
		}
		if _, err := s.StreamFile(ctx, "beep", ""); !errors.Is(err, agi.ErrNotPermitted) {
			t.Errorf("StreamFile: err = %v, want ErrNotPermitted", err)
		}
		if err := s.SetVariable(ctx, "DIALGATE_RESULT", "late"); err != nil {
			t.Errorf("SetVariable: %v", err)
		}
		if err := s.Hangup(ctx); !errors.Is(err, agi.ErrHangup) {
			t.Errorf("Hangup: err = %v, want ErrHangup", err)
		}
	})
	tr := dial(t, addr, agitest.Call{Script: "x", HangupAfter: 2})
	want := []string{"ANSWER", "GET DATA beep 10000 6", "GET VARIABLE CHANNEL", `STREAM FILE beep ""`,
		"SET VARIABLE DIALGATE_RESULT late", "HANGUP"}
	if !reflect.DeepEqual(tr.Commands, want) {
		t.Errorf("transcript %q, want %q", tr.Commands, want)
	}
}

// A hangup during a non-media command: the notice comes first.
func TestHangupBeforeReply(t *testing.T) {
	addr := serve(t, func(ctx context.Context, s *agi.Session) {
		if err := s.SetVariable(ctx, "A", "1"); err != nil {
			t.Errorf("SetVariable: %v", err)
		}
		if !s.HungUp() {
			t.Error("HungUp false after the notice")
		}
		if err := s.Answer(ctx); !errors.Is(err, agi.ErrHangup) {
			t.Errorf("Answer on dead channel: %v", err)
		}
	})
	dial(t, addr, agitest.Call{HangupAfter: 1})
}

func TestGetDataAnswers(t *testing.T) {
	type result struct {
		digits   string
		timedOut bool
	}
	var mu sync.Mutex
	var got []result
	addr := serve(t, func(ctx context.Context, s *agi.Session) {
		for range 5 {
			d, to, err := s.GetData(ctx, "beep", time.Second, 6)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			got = append(got, result{d, to})
			mu.Unlock()
		}
	})
	dial(t, addr, agitest.Call{Digits: []string{"12", "", "123456789", "0042#"}})
	want := []result{{"12", true}, {"", true}, {"123456", false}, {"0042", false}, {"", true}}
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestRepliesLikeAsterisk(t *testing.T) {
	addr := serve(t, func(ctx context.Context, s *agi.Session) {
		if _, err := s.Command(ctx, "FOO BAR baz"); !errors.Is(err, agi.ErrInvalidCommand) {
			t.Errorf("unknown command: %v", err)
		}
		if rep, err := s.Command(ctx, "GET DATA"); !errors.Is(err, agi.ErrUsage) || !strings.Contains(rep.Text, "GET DATA") {
			t.Errorf("GET DATA without args = %+v, %v", rep, err)
		}
		if err := s.SayNumber(ctx, 5, ""); err != nil {
			t.Errorf("SayNumber: %v", err)
		}
		if rep, err := s.Command(ctx, `SAY NUMBER abc ""`); !errors.Is(err, agi.ErrUsage) {
			t.Errorf("SAY NUMBER abc = %+v, %v", rep, err)
		}
		// GOSUB answers "100 Trying" first; the Session skips it.
		if rep, err := s.Command(ctx, "GOSUB sub s 1"); err != nil || rep.Text != "Gosub complete" {
			t.Errorf("GOSUB = %+v, %v", rep, err)
		}
		if v, ok, err := s.GetVariable(ctx, "UNSET"); err != nil || ok || v != "" {
			t.Errorf("unset variable = %q, %v, %v", v, ok, err)
		}
		s.SetVariable(ctx, "A", "x y")
		s.SetVariable(ctx, "EMPTY", "")
		if v, ok, err := s.GetVariable(ctx, "EMPTY"); err != nil || !ok || v != "" {
			t.Errorf("empty variable = %q, %v, %v", v, ok, err)
		}
		if v, ok, err := s.GetFullVariable(ctx, "${A}-${CHANNEL}-${NOPE}"); err != nil || !ok || v != "x y-SIP/agitest-00000001-" {
			t.Errorf("GetFullVariable = %q, %v, %v", v, ok, err)
		}
		if res, err := s.Exec(ctx, "NoOp", "a", "b"); err != nil || res != 0 {
			t.Errorf("Exec = %d, %v", res, err)
		}
		if rep, err := s.Command(ctx, "channel   status"); err != nil || rep.Result != 6 {
			t.Errorf("CHANNEL STATUS = %+v, %v", rep, err)
		}
		if d, err := s.WaitForDigit(ctx, 10*time.Millisecond); err != nil || d != 0 {
			t.Errorf("WaitForDigit = %q, %v", d, err)
		}
	})
	tr := dial(t, addr, agitest.Call{})
	if n := len(tr.Commands); n != 13 {
		t.Errorf("%d commands: %q", n, tr.Commands)
	}
}

func TestEnvBlock(t *testing.T) {
	var mu sync.Mutex
	var env agi.Env
	addr := serve(t, func(ctx context.Context, s *agi.Session) {
		mu.Lock()
		env = s.Env
		mu.Unlock()
	})
	tr := dial(t, addr, agitest.Call{
		Script: "authorize?x=1&y=2",
		Env:    map[string]string{"callerid": "5551234", "agi_type": "Local", "agi_custom": "v"},
		Args:   []string{"arg one", "arg,two", "", "last"},
	})
	if len(tr.Commands) != 0 {
		t.Errorf("commands %q", tr.Commands)
	}
	mu.Lock()
	defer mu.Unlock()
	if env.Path() != "/authorize" || !reflect.DeepEqual(env.Query(), url.Values{"x": {"1"}, "y": {"2"}}) {
		t.Errorf("path %q query %v", env.Path(), env.Query())
	}
	if !strings.HasPrefix(env.Request, "agi://127.0.0.1:") || !strings.HasSuffix(env.Request, "/authorize?x=1&y=2") {
		t.Errorf("Request = %q", env.Request)
	}
	if env.CallerID != "5551234" || env.Type != "Local" || env.Raw["agi_custom"] != "v" || !env.Network || env.Version != "20.20.1" {
		t.Errorf("env = %+v", env)
	}
	if want := []string{"arg one", "arg,two", "", "last"}; !reflect.DeepEqual(env.Args, want) {
		t.Errorf("Args = %q, want %q", env.Args, want)
	}
	if len(env.Raw) != 22+1+4 {
		t.Errorf("%d keys", len(env.Raw))
	}
}

func TestDialContextAndErrors(t *testing.T) {
	block := make(chan struct{})
	addr := serve(t, func(ctx context.Context, s *agi.Session) {
		s.Answer(ctx)
		<-block
	})
	t.Cleanup(func() { close(block) }) // before serve's cleanup waits
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	tr, err := agitest.Dial(ctx, addr, agitest.Call{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
	if !reflect.DeepEqual(tr.Commands, []string{"ANSWER"}) {
		t.Errorf("partial transcript %q", tr.Commands)
	}

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	if _, err := agitest.Dial(context.Background(), dead, agitest.Call{}); err == nil {
		t.Error("Dial to a closed port succeeded")
	}
}

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		line string
		want []string
	}{
		{"ANSWER", []string{"ANSWER"}},
		{"GET  VARIABLE   CHANNEL", []string{"GET", "VARIABLE", "CHANNEL"}},
		{"STREAM FILE silence/1 \"\"", []string{"STREAM", "FILE", "silence/1", ""}},
		{`SET VARIABLE QUIRK "a b (c) d"`, []string{"SET", "VARIABLE", "QUIRK", "a b (c) d"}},
		{`VERBOSE "hello" 1`, []string{"VERBOSE", "hello", "1"}},
		{`X "a \"q\" \\ b"`, []string{"X", `a "q" \ b`}},
		{`X a\ b`, []string{"X", "a b"}},
		{`X ab"c d"e`, []string{"X", "abc de"}},
		{"X\ttab", []string{"X", "tab"}},
		// The CR quirk: a command sent with CRLF keeps the CR.
		{"GET VARIABLE CHANNEL\r", []string{"GET", "VARIABLE", "CHANNEL\r"}},
		{"", nil},
		{"   ", nil},
	}
	for _, tt := range tests {
		if got := agitest.SplitCommand(tt.line); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitCommand(%q) = %q, want %q", tt.line, got, tt.want)
		}
	}
}

// A server that gives up as soon as GET DATA fails leaves the HANGUP
// notice unread; its close is still a normal end of the call.
func TestServerLeavesAfterHangup(t *testing.T) {
	addr := serve(t, func(ctx context.Context, s *agi.Session) {
		if _, _, err := s.GetData(ctx, "beep", time.Second, 4); !errors.Is(err, agi.ErrHangup) {
			t.Errorf("GetData: err = %v, want ErrHangup", err)
		}
	})
	tr := dial(t, addr, agitest.Call{HangupAfter: 1})
	if !reflect.DeepEqual(tr.Commands, []string{"GET DATA beep 1000 4"}) {
		t.Errorf("transcript %q", tr.Commands)
	}
}

func TestWaitDigitsVariablesAndAfterDigits(t *testing.T) {
	var seen []int
	srv := &agi.Server{Handler: agi.HandlerFunc(func(ctx context.Context, s *agi.Session) {
		if _, _, err := s.GetData(ctx, "beep", time.Second, 4); err != nil {
			t.Error(err)
		}
		d, err := s.WaitForDigit(ctx, time.Second)
		if err != nil || d != '#' {
			t.Errorf("WaitForDigit = %q, %v; want '#'", d, err)
		}
		if d, err := s.WaitForDigit(ctx, time.Second); err != nil || d != 0 {
			t.Errorf("second WaitForDigit = %q, %v; want a timeout", d, err)
		}
		if err := s.SetVariable(ctx, "RESULT", "granted"); err != nil {
			t.Error(err)
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx, ln)
	tr, err := agitest.Dial(ctx, ln.Addr().String(), agitest.Call{
		Digits: []string{"12#"}, WaitDigits: []rune{'#'},
		AfterDigits: func(n int) { seen = append(seen, n) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Variables["RESULT"] != "granted" {
		t.Errorf("variables: %v", tr.Variables)
	}
	if len(seen) != 1 || seen[0] != 1 {
		t.Errorf("AfterDigits calls: %v", seen)
	}
}
