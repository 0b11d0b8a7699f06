package agi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"
)

// A Handler serves one FastAGI session. ServeAGI should return when the
// call is done; the Server then closes the connection, which Asterisk
// takes as the end of the AGI() application. ctx is cancelled when
// Shutdown runs out of time, which also closes the session.
//
// If ServeAGI panics, the Server logs the panic and closes that session
// only.
type Handler interface {
	ServeAGI(ctx context.Context, s *Session)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, s *Session)

// ServeAGI calls f(ctx, s).
func (f HandlerFunc) ServeAGI(ctx context.Context, s *Session) { f(ctx, s) }

// Defaults for the zero Server fields.
const (
	DefaultReadTimeout  = 30 * time.Second
	DefaultMaxLineBytes = 8 << 10
)

// A Server accepts FastAGI connections from Asterisk and runs a Handler
// for each. The zero value of every field but Handler is usable. Fields
// must not change once Serve has been called.
type Server struct {
	// Handler serves every session; a *ServeMux routes by request path.
	Handler Handler

	// ReadTimeout bounds each wait for Asterisk: the whole env block, and
	// each command's reply. Commands with a timeout of their own (GET
	// DATA, WAIT FOR DIGIT) add it, and a command's ctx deadline may
	// extend it further. Writing a command gets the same limit. Default
	// DefaultReadTimeout.
	ReadTimeout time.Duration

	// MaxLineBytes is the longest line accepted from Asterisk; a longer
	// one fails with ErrLineTooLong and closes the session. Default
	// DefaultMaxLineBytes.
	MaxLineBytes int

	// AllowFrom, when non-empty, lists the networks Asterisk may connect
	// from. FastAGI has no authentication, so anything else is closed
	// before a byte is read; so are connections whose remote address is
	// not IP (a unix socket), since they cannot be checked.
	AllowFrom []netip.Prefix

	// Logger receives connection and session events; nil means
	// slog.Default(). Command lines are logged at Debug only, and digits
	// the caller typed never.
	Logger *slog.Logger

	// MaxSessions caps concurrent sessions; connections beyond it are
	// closed at once. 0 means no limit.
	MaxSessions int

	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	conns     map[*serverConn]struct{}
	closed    bool
	wg        sync.WaitGroup
}

// serverConn is a connection being served, tracked for Shutdown.
type serverConn struct {
	conn   net.Conn
	cancel context.CancelCauseFunc
}

// Serve serves the handler on l until l fails or ctx is done. It is
// shorthand for (&Server{Handler: h}).Serve(ctx, l).
func Serve(ctx context.Context, l net.Listener, h Handler) error {
	srv := &Server{Handler: h}
	return srv.Serve(ctx, l)
}

func (srv *Server) readTimeout() time.Duration {
	if srv.ReadTimeout > 0 {
		return srv.ReadTimeout
	}
	return DefaultReadTimeout
}

func (srv *Server) maxLineBytes() int {
	if srv.MaxLineBytes > 0 {
		return srv.MaxLineBytes
	}
	return DefaultMaxLineBytes
}

func (srv *Server) logger() *slog.Logger {
	if srv.Logger != nil {
		return srv.Logger
	}
	return slog.Default()
}

// Serve accepts connections on l and serves each in its own goroutine.
// It always returns a non-nil error and closes l. After Shutdown, or once
// ctx is done, the error matches ErrServerClosed (and, in the second case,
// ctx's error too).
//
// Calls in progress outlive Serve: a caller halfway through typing a code
// should not be cut off because the daemon is restarting. Sessions' contexts
// carry ctx's values but not its cancellation; Shutdown waits for them and
// bounds how long they may take. Without Shutdown each session still ends,
// at the latest when a read times out.
func (srv *Server) Serve(ctx context.Context, l net.Listener) error {
	if srv.Handler == nil {
		l.Close()
		return errors.New("agi: Server.Handler is nil")
	}
	if !srv.trackListener(&l, true) {
		l.Close()
		return ErrServerClosed
	}
	defer srv.trackListener(&l, false)
	defer l.Close()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()

	log := srv.logger()
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if srv.shuttingDown() {
				return ErrServerClosed
			}
			if ctx.Err() != nil {
				return fmt.Errorf("%w: %w", ErrServerClosed, context.Cause(ctx))
			}
			// Running out of file descriptors is worth waiting out
			// rather than ending the server, as net/http does.
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				log.Warn("agi: accept failed, retrying", "err", err, "delay", backoff)
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
				}
				continue
			}
			return fmt.Errorf("agi: accept: %w", err)
		}
		backoff = 0
		srv.accept(ctx, c, log)
	}
}

// accept vets a new connection and starts serving it.
func (srv *Server) accept(ctx context.Context, c net.Conn, log *slog.Logger) {
	remote := c.RemoteAddr()
	if !srv.allowed(remote) {
		log.Warn("agi: connection refused", "reason", "remote not in AllowFrom", "remote", remote.String())
		c.Close()
		return
	}
	sctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	sc := &serverConn{conn: c, cancel: cancel}
	if ok, why := srv.trackConn(sc); !ok {
		cancel(nil)
		log.Warn("agi: connection refused", "reason", why, "remote", remote.String())
		c.Close()
		return
	}
	go srv.serveConn(sctx, sc, log)
}

// allowed applies AllowFrom.
func (srv *Server) allowed(a net.Addr) bool {
	if len(srv.AllowFrom) == 0 {
		return true
	}
	ip, ok := addrIP(a)
	if !ok {
		return false
	}
	for _, p := range srv.AllowFrom {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// addrIP extracts the IP of a remote address, unmapping IPv4-in-IPv6 so
// that 10.0.0.0/8 matches a dual-stack listener's ::ffff:10.0.0.1.
func addrIP(a net.Addr) (netip.Addr, bool) {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip = a.AddrPort().Addr()
	case nil:
		return netip.Addr{}, false
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Addr{}, false
		}
		ip = ap.Addr()
	}
	if !ip.IsValid() {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

func (srv *Server) serveConn(ctx context.Context, sc *serverConn, log *slog.Logger) {
	defer srv.untrackConn(sc)
	defer sc.cancel(nil)

	start := time.Now()
	log = log.With("remote", sc.conn.RemoteAddr().String())
	s := newSession(sc.conn, srv.readTimeout(), srv.maxLineBytes(), log)
	defer s.close()
	// A forced Shutdown ends the session by closing its connection.
	stop := context.AfterFunc(ctx, func() { s.fail(context.Cause(ctx)) })
	defer stop()

	if err := s.readEnv(); err != nil {
		level := slog.LevelWarn
		if errors.Is(err, io.EOF) {
			// Closed before sending anything: a port probe, not a call.
			level = slog.LevelDebug
		}
		log.Log(ctx, level, "agi: bad session start", "err", err)
		return
	}
	s.log = log.With("uniqueid", s.Env.UniqueID, "path", s.Env.Path())
	s.log.Debug("agi: session start", "channel", s.Env.Channel)

	defer func() {
		if r := recover(); r != nil {
			s.log.Error("agi: handler panic", "panic", r, "stack", string(debug.Stack()))
		}
		s.log.Debug("agi: session end", "duration", time.Since(start), "hungup", s.HungUp())
	}()
	srv.Handler.ServeAGI(ctx, s)
}

// Shutdown stops accepting connections, which makes Serve return
// ErrServerClosed, and waits for active sessions to finish. If ctx is done
// first, it closes the remaining sessions, cancelling their contexts, and
// returns ctx's error without waiting for their handlers to return. A
// Server cannot be restarted.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.mu.Lock()
	srv.closed = true
	for l := range srv.listeners {
		(*l).Close()
	}
	srv.mu.Unlock()

	done := make(chan struct{})
	go func() {
		srv.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	srv.mu.Lock()
	for sc := range srv.conns {
		sc.cancel(ErrServerClosed)
	}
	srv.mu.Unlock()
	return ctx.Err()
}

func (srv *Server) shuttingDown() bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.closed
}

func (srv *Server) trackListener(l *net.Listener, add bool) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if !add {
		delete(srv.listeners, l)
		return true
	}
	if srv.closed {
		return false
	}
	if srv.listeners == nil {
		srv.listeners = make(map[*net.Listener]struct{})
	}
	srv.listeners[l] = struct{}{}
	return true
}

// trackConn registers a connection, refusing it when the server is
// shutting down or full. wg.Add happens under mu while closed is false,
// so it never races with Shutdown's Wait.
func (srv *Server) trackConn(sc *serverConn) (ok bool, why string) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.closed {
		return false, "server shutting down"
	}
	if srv.MaxSessions > 0 && len(srv.conns) >= srv.MaxSessions {
		return false, "MaxSessions reached"
	}
	if srv.conns == nil {
		srv.conns = make(map[*serverConn]struct{})
	}
	srv.conns[sc] = struct{}{}
	srv.wg.Add(1)
	return true, ""
}

func (srv *Server) untrackConn(sc *serverConn) {
	srv.mu.Lock()
	delete(srv.conns, sc)
	srv.mu.Unlock()
	srv.wg.Done()
}
