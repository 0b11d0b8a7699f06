package ami

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/dialgate/dialgate/ami/amitest"
)

// syncBuffer collects log output from client goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testLogger logs at Debug into a buffer that is printed if the test fails.
func testLogger(t *testing.T) (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("client log:\n%s", buf)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// startFake starts a fake Asterisk for the test. Failed logins answer at
// once unless opts says otherwise.
func startFake(t *testing.T, opts amitest.Options) *amitest.Server {
	t.Helper()
	if opts.FailedLoginDelay == 0 {
		opts.FailedLoginDelay = -1
	}
	srv, err := amitest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// testConfig is a Config for srv with short timeouts and no keepalive.
func testConfig(t *testing.T, srv *amitest.Server) Config {
	log, _ := testLogger(t)
	return Config{
		Addr:          srv.Addr(),
		Username:      amitest.DefaultUsername,
		Secret:        amitest.DefaultSecret,
		DialTimeout:   5 * time.Second,
		ActionTimeout: 5 * time.Second,
		PingInterval:  -1,
		BackoffMin:    10 * time.Millisecond,
		BackoffMax:    50 * time.Millisecond,
		Logger:        log,
	}
}

// dial connects a Client that is closed when the test ends.
func dial(t *testing.T, cfg Config) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// run starts a supervised Client and waits until it is connected. The
// returned function waits for Run's result; the test's end cancels Run
// and checks it returned ErrClosed.
func run(t *testing.T, c *Client) (wait func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	wait = sync.OnceValue(func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("Run did not return")
		}
	})
	t.Cleanup(func() {
		cancel()
		if err := wait(); !errors.Is(err, ErrClosed) {
			t.Errorf("Run = %v, want ErrClosed", err)
		}
	})
	waitFor(t, "connected", c.Connected)
	return wait
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// ctxT is a context for one call in a test.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func h(key, value string) Header { return Header{Key: key, Value: value} }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
