package agi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer collects log output from server goroutines.
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
			t.Logf("server log:\n%s", buf)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// startServer serves srv on a loopback port until the test ends.
func startServer(t *testing.T, srv *Server) string {
	t.Helper()
	if srv.Logger == nil {
		srv.Logger, _ = testLogger(t)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return l.Addr().String()
}

// fakeAsterisk plays the Asterisk side of chunks byte for byte against the
// server at addr: it writes Asterisk's chunks and checks that the server
// sends exactly the recorded bytes in between. After the last chunk it
// expects the server to close the connection.
func fakeAsterisk(addr string, chunks []chunk) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	prevAsterisk := false
	for i, c := range chunks {
		if c.fromAsterisk {
			if prevAsterisk {
				// Keep recorded segmentation visible to the reader.
				time.Sleep(2 * time.Millisecond)
			}
			if _, err := conn.Write(c.data); err != nil {
				return fmt.Errorf("chunk %d: write: %w", i, err)
			}
			prevAsterisk = true
			continue
		}
		prevAsterisk = false
		got := make([]byte, len(c.data))
		n, err := io.ReadFull(conn, got)
		if err != nil {
			return fmt.Errorf("chunk %d: want %q, read %q: %w", i, c.data, got[:n], err)
		}
		if !bytes.Equal(got, c.data) {
			return fmt.Errorf("chunk %d: server sent %q, recording has %q", i, got, c.data)
		}
	}
	extra, err := io.ReadAll(conn)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		// A reset is a close too: the server closed with bytes unread.
		return fmt.Errorf("after the recording: %w", err)
	}
	if len(extra) > 0 {
		return fmt.Errorf("server sent %q after the recording ended", extra)
	}
	return nil
}

// sessionEnv is a minimal env block for hand-written exchanges.
const sessionEnv = "agi_network: yes\nagi_network_script: test\nagi_request: agi://127.0.0.1:4573/test\n" +
	"agi_channel: SIP/traveler-00000001\nagi_uniqueid: 1795963700.13\nagi_arg_1: arg1\n\n"

// astSays and agiSends build chunks for hand-written exchanges.
func astSays(s string) chunk  { return chunk{fromAsterisk: true, data: []byte(s)} }
func agiSends(s string) chunk { return chunk{data: []byte(s)} }

// runExchange runs handler against a fake Asterisk that plays chunks,
// after sessionEnv, and fails the test on any mismatch. It returns once the
// handler has returned and the connection is closed.
func runExchange(t *testing.T, srv *Server, chunks []chunk, handler func(ctx context.Context, s *Session)) {
	t.Helper()
	done := make(chan struct{})
	srv.Handler = HandlerFunc(func(ctx context.Context, s *Session) {
		defer close(done)
		handler(ctx, s)
	})
	addr := startServer(t, srv)
	if err := fakeAsterisk(addr, append([]chunk{astSays(sessionEnv)}, chunks...)); err != nil {
		t.Error(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("handler did not return")
	}
}
