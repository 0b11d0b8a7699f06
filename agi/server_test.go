package agi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// countingListener records whether the server ever read from a connection.
type countingListener struct {
	net.Listener
	reads atomic.Int64
}

type countingConn struct {
	net.Conn
	reads *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, reads: &l.reads}, nil
}

func (c countingConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

// expectClosed waits for the server to close conn without sending anything.
func expectClosed(t *testing.T, conn net.Conn, within time.Duration) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(within))
	b, err := io.ReadAll(conn)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		// A reset is a close too: the server closed with our bytes unread.
		t.Errorf("connection not closed within %v: %v", within, err)
	}
	if len(b) > 0 {
		t.Errorf("server sent %q", b)
	}
}

func TestAllowFromRejectsBeforeReading(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: l}
	log, logs := testLogger(t)
	var called atomic.Bool
	srv := &Server{
		Handler:   HandlerFunc(func(context.Context, *Session) { called.Store(true) }),
		AllowFrom: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		Logger:    log,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, cl) }()
	defer func() { cancel(); <-done }()

	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte(sessionEnv))
	expectClosed(t, conn, 2*time.Second)
	if n := cl.reads.Load(); n != 0 {
		t.Errorf("server read %d times from a refused connection", n)
	}
	if called.Load() {
		t.Error("handler ran for a refused connection")
	}
	if !strings.Contains(logs.String(), "AllowFrom") {
		t.Errorf("refusal not logged:\n%s", logs)
	}
}

func TestAllowFromAdmits(t *testing.T) {
	chunks := []chunk{agiSends("ANSWER\n"), astSays("200 result=0\n")}
	srv := &Server{AllowFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	runExchange(t, srv, chunks, func(ctx context.Context, s *Session) {
		if err := s.Answer(ctx); err != nil {
			t.Error(err)
		}
		if !strings.HasPrefix(s.RemoteAddr().String(), "127.0.0.1:") {
			t.Errorf("RemoteAddr = %v", s.RemoteAddr())
		}
	})
}

func TestAddrIP(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 4573}, "192.0.2.1"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 4573}, "192.0.2.1"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 4573}, "2001:db8::1"},
		{&net.UDPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}, "192.0.2.7"},
		{&net.UnixAddr{Name: "/run/agi.sock", Net: "unix"}, ""},
		{&net.TCPAddr{}, ""},
		{nil, ""},
	}
	for _, tt := range tests {
		ip, ok := addrIP(tt.addr)
		if got := ip.String(); ok != (tt.want != "") || (ok && got != tt.want) {
			t.Errorf("addrIP(%v) = %v, %v; want %q", tt.addr, ip, ok, tt.want)
		}
	}
	srv := &Server{AllowFrom: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}
	if srv.allowed(&net.UnixAddr{Name: "/run/agi.sock", Net: "unix"}) {
		t.Error("unix socket admitted although AllowFrom cannot check it")
	}
	if !(&Server{}).allowed(&net.UnixAddr{Name: "/run/agi.sock", Net: "unix"}) {
		t.Error("empty AllowFrom must admit everything")
	}
}

func TestMaxSessions(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	srv := &Server{
		MaxSessions: 1,
		Handler: HandlerFunc(func(ctx context.Context, s *Session) {
			started <- struct{}{}
			<-release
		}),
	}
	addr := startServer(t, srv)
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	first.Write([]byte(sessionEnv))
	<-started

	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	expectClosed(t, second, 2*time.Second)
	close(release)
	expectClosed(t, first, 2*time.Second)

	// With the first session gone there is room again. The slot frees
	// just after the connection closes, so allow a retry or two.
	deadline := time.Now().Add(2 * time.Second)
	for {
		third, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer third.Close()
		third.Write([]byte(sessionEnv))
		select {
		case <-started:
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no session after the first one ended")
		}
	}
}

func TestHandlerPanicClosesOnlyThatSession(t *testing.T) {
	log, logs := testLogger(t)
	calm := make(chan struct{})
	mux := NewServeMux()
	mux.HandleFunc("/panic", func(context.Context, *Session) { panic("boom") })
	mux.HandleFunc("/test", func(ctx context.Context, s *Session) {
		<-calm // stays live while the other session panics
		if err := s.Answer(ctx); err != nil {
			t.Errorf("Answer in the surviving session: %v", err)
		}
	})
	addr := startServer(t, &Server{Handler: mux, Logger: log})

	calmDone := make(chan error, 1)
	go func() {
		calmDone <- fakeAsterisk(addr, []chunk{astSays(sessionEnv), agiSends("ANSWER\n"), astSays("200 result=0\n")})
	}()

	env := strings.ReplaceAll(sessionEnv, "test", "panic")
	if err := fakeAsterisk(addr, []chunk{astSays(env)}); err != nil {
		t.Errorf("panicking session: %v", err)
	}
	close(calm)
	if err := <-calmDone; err != nil {
		t.Errorf("surviving session: %v", err)
	}
	if l := logs.String(); !strings.Contains(l, "handler panic") || !strings.Contains(l, "boom") {
		t.Errorf("panic not logged:\n%s", l)
	}
	// The server still accepts sessions.
	if err := fakeAsterisk(addr, []chunk{astSays(env)}); err != nil {
		t.Errorf("after the panic: %v", err)
	}
}

func TestShutdownWaitsThenForces(t *testing.T) {
	handlerCtxDone := make(chan struct{})
	entered := make(chan struct{})
	srv := &Server{Handler: HandlerFunc(func(ctx context.Context, s *Session) {
		close(entered)
		// A live call: waiting for the caller to type.
		_, _, err := s.GetData(ctx, "beep", 10*time.Second, 4)
		if !errors.Is(err, ErrServerClosed) {
			t.Errorf("GetData during forced shutdown: err = %v, want ErrServerClosed", err)
		}
		<-ctx.Done()
		close(handlerCtxDone)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Logger, _ = testLogger(t)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(context.Background(), l) }()

	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte(sessionEnv))
	<-entered

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = srv.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("Shutdown returned after %v, before its deadline", d)
	}
	if err := <-serveErr; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
	select {
	case <-handlerCtxDone:
	case <-time.After(2 * time.Second):
		t.Error("handler's context not cancelled by the forced shutdown")
	}
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, _ := io.ReadAll(conn)
	if string(b) != "GET DATA beep 10000 4\n" {
		t.Errorf("client saw %q before the close", b)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Error("listener still accepting after Shutdown")
	}
	if err := srv.Serve(context.Background(), mustListen(t)); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v", err)
	}
}

func TestShutdownGraceful(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	finished := make(chan struct{})
	srv := &Server{Handler: HandlerFunc(func(ctx context.Context, s *Session) {
		close(entered)
		<-release
		if err := s.Answer(ctx); err != nil {
			t.Errorf("Answer during graceful shutdown: %v", err)
		}
		close(finished)
	})}
	addr := startServer(t, srv)
	fake := make(chan error, 1)
	go func() {
		fake <- fakeAsterisk(addr, []chunk{astSays(sessionEnv), agiSends("ANSWER\n"), astSays("200 result=0\n")})
	}()
	<-entered
	time.AfterFunc(100*time.Millisecond, func() { close(release) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	select {
	case <-finished:
	default:
		t.Error("Shutdown returned before the session finished")
	}
	if err := <-fake; err != nil {
		t.Error(err)
	}
}

// Cancelling Serve's ctx stops accepting but leaves calls in progress to
// Shutdown, so a restart does not cut a caller off mid-code.
func TestServeStopsOnContext(t *testing.T) {
	sessionCtx := make(chan context.Context, 1)
	srv := &Server{Handler: HandlerFunc(func(ctx context.Context, s *Session) {
		sessionCtx <- ctx
		<-ctx.Done()
	})}
	srv.Logger, _ = testLogger(t)
	l := mustListen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte(sessionEnv))
	sctx := <-sessionCtx
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, ErrServerClosed) || !errors.Is(err, context.Canceled) {
			t.Errorf("Serve = %v, want ErrServerClosed and context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Error("still accepting after ctx was cancelled")
	}
	select {
	case <-sctx.Done():
		t.Fatal("cancelling Serve's ctx cancelled a call in progress")
	case <-time.After(100 * time.Millisecond):
	}
	shutCtx, shutCancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer shutCancel()
	if err := srv.Shutdown(shutCtx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v", err)
	}
	<-sctx.Done()
	if cause := context.Cause(sctx); !errors.Is(cause, ErrServerClosed) {
		t.Errorf("session cancelled with %v, want ErrServerClosed", cause)
	}
	expectClosed(t, conn, 2*time.Second)
}

func TestServeNilHandler(t *testing.T) {
	if err := (&Server{}).Serve(context.Background(), mustListen(t)); err == nil {
		t.Error("Serve with nil Handler succeeded")
	}
}

// A client trickling the env block stays within every per-read timeout
// but must still be cut off by the overall env deadline.
func TestSlowLorisEnv(t *testing.T) {
	var called atomic.Bool
	srv := &Server{
		ReadTimeout: 300 * time.Millisecond,
		Handler:     HandlerFunc(func(context.Context, *Session) { called.Store(true) }),
	}
	addr := startServer(t, srv)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		io.Copy(io.Discard, conn)
		closed <- time.Since(start)
	}()
	for i := 0; i < len(sessionEnv); i++ {
		if _, err := conn.Write([]byte{sessionEnv[i]}); err != nil {
			break
		}
		select {
		case d := <-closed:
			if d > 2*time.Second {
				t.Errorf("slow client cut after %v", d)
			}
			if called.Load() {
				t.Error("handler ran for a trickled env block")
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("server read the whole trickled env block (%v)", time.Since(start))
}

func TestOversizedLines(t *testing.T) {
	t.Run("env", func(t *testing.T) {
		var called atomic.Bool
		srv := &Server{MaxLineBytes: 64, Handler: HandlerFunc(func(context.Context, *Session) { called.Store(true) })}
		addr := startServer(t, srv)
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write([]byte("agi_network: yes\nagi_channel: " + strings.Repeat("x", 100) + "\n\n"))
		expectClosed(t, conn, 2*time.Second)
		if called.Load() {
			t.Error("handler ran despite an oversized env line")
		}
	})
	t.Run("reply", func(t *testing.T) {
		chunks := []chunk{
			agiSends("GET VARIABLE X\n"),
			astSays("200 result=1 (" + strings.Repeat("x", 100) + ")\n"),
		}
		runExchange(t, &Server{MaxLineBytes: 64}, chunks, func(ctx context.Context, s *Session) {
			if _, _, err := s.GetVariable(ctx, "X"); !errors.Is(err, ErrLineTooLong) {
				t.Errorf("err = %v, want ErrLineTooLong", err)
			}
			if err := s.Answer(ctx); !errors.Is(err, ErrLineTooLong) {
				t.Errorf("next command: err = %v, want the sticky ErrLineTooLong", err)
			}
		})
	})
}

func TestMuxRouting(t *testing.T) {
	var mu sync.Mutex
	var got []string
	record := func(name string) HandlerFunc {
		return func(ctx context.Context, s *Session) {
			mu.Lock()
			got = append(got, name+" "+s.Env.Path())
			mu.Unlock()
		}
	}
	mux := NewServeMux()
	mux.Handle("/authorize", record("authorize"))
	mux.Handle("/admin/", record("admin"))
	mux.Handle("/admin/users/", record("users"))
	log, logs := testLogger(t)
	addr := startServer(t, &Server{Handler: mux, Logger: log})

	for _, script := range []string{"authorize?x=y", "admin/x", "admin/users/7", "admin/", "nothing-here?secret=1"} {
		env := strings.ReplaceAll(sessionEnv, "test", script)
		// Every session closes without a command, routed or not.
		if err := fakeAsterisk(addr, []chunk{astSays(env)}); err != nil {
			t.Errorf("%s: %v", script, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"authorize /authorize", "admin /admin/x", "users /admin/users/7", "admin /admin/"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("routed %q, want %q", got, want)
	}
	l := logs.String()
	if !strings.Contains(l, "no handler") || !strings.Contains(l, "/nothing-here") {
		t.Errorf("unknown path not logged:\n%s", l)
	}
	if strings.Contains(l, "secret=1") {
		t.Errorf("query logged:\n%s", l)
	}
	if h, p := mux.Handler("/admin"); h != nil {
		t.Errorf("/admin matched %q", p)
	}
}

func TestServeMuxHandlePanics(t *testing.T) {
	h := HandlerFunc(func(context.Context, *Session) {})
	for name, f := range map[string]func(m *ServeMux){
		"empty":     func(m *ServeMux) { m.Handle("", h) },
		"relative":  func(m *ServeMux) { m.Handle("authorize", h) },
		"query":     func(m *ServeMux) { m.Handle("/a?x=1", h) },
		"nil":       func(m *ServeMux) { m.Handle("/a", nil) },
		"duplicate": func(m *ServeMux) { m.Handle("/a", h); m.Handle("/a", h) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f(NewServeMux())
		}()
	}
}

func TestBadEnvClosesWithoutHandler(t *testing.T) {
	var called atomic.Bool
	addr := startServer(t, &Server{Handler: HandlerFunc(func(context.Context, *Session) { called.Store(true) })})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	expectClosed(t, conn, 2*time.Second)
	if called.Load() {
		t.Error("handler ran for an HTTP request")
	}
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}
