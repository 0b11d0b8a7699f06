package ami

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// State is the connection state of a Client.
type State int32

const (
	// Disconnected: no connection; calls fail with ErrNotConnected.
	Disconnected State = iota
	// Connecting: dialling, reading the banner or logging in.
	Connecting
	// Connected: logged in; actions are sent.
	Connected
)

func (s State) String() string {
	switch s {
	case Disconnected:
		return "disconnected"
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// A Client is a connection to Asterisk's manager interface, safe for
// concurrent use. Each action gets its own ActionID and its answer is
// matched by it, so any number of actions may be in flight at once.
//
// A Client from Dial has one connection; when it ends, calls fail with
// ErrNotConnected and subscriptions are closed. A Client from New is
// connected by Run, which keeps it connected until its context ends.
type Client struct {
	cfg    Config
	cfgErr error
	log    *slog.Logger

	idPrefix string
	idSeq    atomic.Uint64

	mu       sync.Mutex
	cur      *conn // logged in, nil when not
	version  string
	lastErr  error // why the last connection or attempt ended
	running  bool  // Run is active
	dialed   bool  // from Dial: never reconnects
	closing  bool  // Logoff or Close: do not reconnect
	closed   bool
	closedCh chan struct{}

	cancelRun context.CancelFunc // ends Run's connection attempts

	state     atomic.Int32
	notifyMu  sync.Mutex
	notifyQ   []stateChange // changes not yet reported to OnStateChange
	notifying bool          // a goroutine is draining notifyQ

	pubMu   sync.Mutex
	subMu   sync.RWMutex
	subs    map[*subscription]struct{} // nil once closed
	dropped atomic.Uint64
}

// New returns a Client that Run connects. Configuration errors are
// reported by Run.
func New(cfg Config) *Client {
	c := &Client{closedCh: make(chan struct{}), subs: make(map[*subscription]struct{})}
	c.cfg, c.cfgErr = cfg.withDefaults()
	c.log = c.cfg.Logger
	if c.log == nil {
		c.log = slog.Default()
	}
	var b [4]byte
	rand.Read(b[:])
	// A per-client prefix keeps IDs apart in Asterisk's logs when
	// several clients share a manager user.
	c.idPrefix = "dialgate-" + hex.EncodeToString(b[:]) + "-"
	return c
}

// Dial connects to Asterisk, reads the banner and logs in. Wrong
// credentials give an error matching ErrAuth. The Client does not
// reconnect: once the connection ends, calls fail with ErrNotConnected.
// Use New and Run for a client that stays connected.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	c := New(cfg)
	if c.cfgErr != nil {
		return nil, c.cfgErr
	}
	c.mu.Lock()
	c.dialed = true
	c.mu.Unlock()
	cn, err := c.connect(ctx)
	if err != nil {
		c.Close()
		return nil, err
	}
	go func() {
		<-cn.done
		c.lose(cn)
		// No connection will ever follow: end the subscriptions so that
		// their readers stop waiting.
		c.closeSubscriptions()
	}()
	return c, nil
}

// Run connects and keeps the Client connected until ctx is done or Close
// is called, then closes the Client. A lost connection is re-established,
// and the login repeated, after a backoff (Config.BackoffMin and
// BackoffMax). While there is no connection, calls fail fast with
// ErrNotConnected; subscriptions stay open across reconnections.
//
// Run returns an error matching ErrClosed (and ctx's error, if that ended
// it), or the configuration error. It may be called once.
func (c *Client) Run(ctx context.Context) error {
	if c.cfgErr != nil {
		return c.cfgErr
	}
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrClosed
	case c.running || c.dialed:
		c.mu.Unlock()
		return errors.New("ami: Run called twice, or on a Client from Dial")
	}
	parent := ctx
	// Close must also abort a connection attempt in progress.
	ctx, cancel := context.WithCancel(ctx)
	c.cancelRun = cancel
	c.running = true
	c.mu.Unlock()
	defer c.Close()

	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	backoff := c.cfg.BackoffMin
	for {
		cn, err := c.connect(ctx)
		if err == nil {
			start := time.Now()
			<-cn.done
			c.lose(cn)
			if time.Since(start) > c.cfg.BackoffMax {
				// It was up long enough to count as healthy; a flapping
				// server keeps backing off instead.
				backoff = c.cfg.BackoffMin
			}
		}
		if c.isClosing() || ctx.Err() != nil {
			if parent.Err() != nil {
				return fmt.Errorf("%w: %w", ErrClosed, context.Cause(parent))
			}
			return ErrClosed
		}
		wait := backoff
		if errors.Is(err, ErrAuth) {
			wait = c.cfg.BackoffMax
		}
		// Half fixed, half random: never hammer, never in step.
		wait = wait/2 + mrand.N(wait/2+1)
		c.log.Info("ami: reconnecting", "addr", c.cfg.Addr, "in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.closedCh:
			t.Stop()
		}
		backoff = min(2*backoff, c.cfg.BackoffMax)
	}
}

// connect dials, reads the banner, logs in and makes the connection
// current.
func (c *Client) connect(ctx context.Context) (*conn, error) {
	if err := c.closedErr(); err != nil {
		return nil, err
	}
	c.setState(Connecting, nil)
	cn, err := c.dialAndLogin(ctx)
	if err == nil {
		c.mu.Lock()
		if c.closing {
			err = ErrClosed
		} else {
			c.cur, c.version, c.lastErr = cn, cn.version, nil
		}
		c.mu.Unlock()
		if err != nil {
			cn.fail(err)
		}
	}
	if err != nil {
		c.mu.Lock()
		c.lastErr = err
		c.mu.Unlock()
		level := slog.LevelWarn
		if errors.Is(err, ErrAuth) {
			level = slog.LevelError
		}
		if !errors.Is(err, ErrClosed) && ctx.Err() == nil {
			c.log.Log(ctx, level, "ami: connect failed", "addr", c.cfg.Addr, "user", c.cfg.Username, "err", err)
		}
		c.setState(Disconnected, err)
		return nil, err
	}
	c.log.Info("ami: connected", "addr", c.cfg.Addr, "user", c.cfg.Username, "version", cn.version)
	c.setState(Connected, nil)
	if c.cfg.PingInterval > 0 {
		go c.keepalive(cn)
	}
	return cn, nil
}

func (c *Client) dialAndLogin(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	var (
		nc  net.Conn
		err error
	)
	if c.cfg.TLS != nil {
		d := &tls.Dialer{Config: c.cfg.TLS}
		nc, err = d.DialContext(ctx, "tcp", c.cfg.Addr)
	} else {
		var d net.Dialer
		nc, err = d.DialContext(ctx, "tcp", c.cfg.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("ami: %w", err)
	}
	// Until the login is done, ctx bounds every read and write.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	if d, ok := ctx.Deadline(); ok {
		nc.SetDeadline(d)
	}

	r := newReader(nc, c.cfg.MaxMessageBytes)
	version, err := r.readBanner()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("ami: reading banner from %s: %w", c.cfg.Addr, withCause(ctx, err))
	}
	cn := newConn(nc, c, version)
	go cn.readLoop(r)
	if err := c.login(ctx, cn); err != nil {
		cn.fail(err)
		return nil, withCause(ctx, err)
	}
	if !stop() {
		// ctx ended just as the login succeeded: the deadline it set
		// would break the connection at the first read.
		err := fmt.Errorf("ami: logging in: %w", context.Cause(ctx))
		cn.fail(err)
		return nil, err
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		cn.fail(err)
		return nil, fmt.Errorf("ami: %w", err)
	}
	return cn, nil
}

// withCause makes an error that ctx caused say so. The socket deadline
// set from ctx's can fire a moment before ctx itself is done, so a
// timeout counts as ctx's deadline too.
func withCause(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil && errors.Is(err, context.Cause(ctx)):
		return err
	case ctx.Err() != nil:
		return fmt.Errorf("%w (%w)", context.Cause(ctx), err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
	}
	return err
}

// login sends Login, after a Challenge when MD5 is set. The secret and
// the key derived from it appear in no log and no error.
func (c *Client) login(ctx context.Context, cn *conn) error {
	hs := []Header{{Key: "Username", Value: c.cfg.Username}}
	if c.cfg.MD5 {
		resp, _, err := cn.do(ctx, c.nextID(), "Challenge", []Header{{Key: "AuthType", Value: "MD5"}}, false)
		if err != nil {
			return fmt.Errorf("ami: MD5 login as %q: %w", c.cfg.Username, err)
		}
		challenge := resp.Get("Challenge")
		if challenge == "" {
			return fmt.Errorf("ami: MD5 login as %q: %w: no Challenge in the response", c.cfg.Username, ErrProtocol)
		}
		sum := md5.Sum([]byte(challenge + c.cfg.Secret))
		hs = append(hs, Header{Key: "AuthType", Value: "MD5"}, Header{Key: "Key", Value: hex.EncodeToString(sum[:])})
	} else {
		hs = append(hs, Header{Key: "Secret", Value: c.cfg.Secret})
	}
	hs = append(hs, Header{Key: "Events", Value: c.cfg.Events})
	if _, _, err := cn.do(ctx, c.nextID(), "Login", hs, false); err != nil {
		return fmt.Errorf("ami: login as %q at %s: %w", c.cfg.Username, c.cfg.Addr, err)
	}
	return nil
}

// keepalive pings cn every PingInterval and ends it when a Pong does not
// come back within ActionTimeout: a half-open TCP connection (Asterisk
// host gone, NAT entry expired) would otherwise look alive for hours.
func (c *Client) keepalive(cn *conn) {
	t := time.NewTicker(c.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-cn.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ActionTimeout)
		_, _, err := cn.do(ctx, c.nextID(), "Ping", nil, false)
		cancel()
		var ae *ActionError
		if err != nil && !errors.As(err, &ae) {
			// An error response still proves the peer alive.
			cn.fail(fmt.Errorf("ami: keepalive: %w", err))
			return
		}
	}
}

// lose retires a connection that has ended.
func (c *Client) lose(cn *conn) {
	err := cn.failure()
	c.mu.Lock()
	if c.cur == cn {
		c.cur = nil
	}
	closing := c.closing
	c.lastErr = err
	c.mu.Unlock()
	if closing || errors.Is(err, ErrClosed) {
		c.setState(Disconnected, nil)
		return
	}
	c.log.Warn("ami: connection lost", "addr", c.cfg.Addr, "err", err)
	c.setState(Disconnected, err)
}

type stateChange struct {
	s   State
	err error
}

// setState records a state change and reports it to OnStateChange. The
// callback runs without locks held, so that it may call the Client; a
// change it causes is queued and reported once it returns, keeping the
// calls serial and in order.
func (c *Client) setState(s State, err error) {
	c.notifyMu.Lock()
	if State(c.state.Swap(int32(s))) == s || c.cfg.OnStateChange == nil {
		c.notifyMu.Unlock()
		return
	}
	c.notifyQ = append(c.notifyQ, stateChange{s, err})
	if c.notifying {
		c.notifyMu.Unlock()
		return
	}
	c.notifying = true
	for len(c.notifyQ) > 0 {
		ch := c.notifyQ[0]
		c.notifyQ = c.notifyQ[1:]
		c.notifyMu.Unlock()
		c.cfg.OnStateChange(ch.s, ch.err)
		c.notifyMu.Lock()
	}
	c.notifying = false
	c.notifyMu.Unlock()
}

// State returns the current connection state.
func (c *Client) State() State { return State(c.state.Load()) }

// Connected reports whether the Client is logged in right now.
func (c *Client) Connected() bool { return c.State() == Connected }

// Version returns the AMI protocol version from the banner of the
// current or last connection ("9.0.0" for Asterisk 20), or "".
func (c *Client) Version() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

// Close closes the connection and ends Run. Actions in flight fail with
// ErrClosed, subscription channels are closed, and later calls return
// ErrClosed. Close does not log off; see Logoff.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed, c.closing = true, true
	close(c.closedCh)
	cn := c.cur
	c.cur = nil
	if c.cancelRun != nil {
		c.cancelRun()
	}
	c.mu.Unlock()
	if cn != nil {
		cn.fail(ErrClosed)
	}
	c.closeSubscriptions()
	c.setState(Disconnected, nil)
	return nil
}

func (c *Client) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

func (c *Client) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return ErrClosed
	}
	return nil
}

// current returns the logged-in connection, or the error to fail with.
func (c *Client) current() (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return nil, ErrClosed
	case c.cur != nil:
		return c.cur, nil
	case c.cfgErr != nil:
		return nil, fmt.Errorf("%w: %w", ErrNotConnected, c.cfgErr)
	case c.lastErr != nil:
		return nil, fmt.Errorf("%w: %w", ErrNotConnected, c.lastErr)
	}
	return nil, ErrNotConnected
}

func (c *Client) nextID() string {
	return c.idPrefix + strconv.FormatUint(c.idSeq.Add(1), 10)
}

// actionContext applies ActionTimeout unless ctx allows longer.
func (c *Client) actionContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) > c.cfg.ActionTimeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.cfg.ActionTimeout)
}

// Action sends an action and returns Asterisk's response. The client
// adds the Action and ActionID headers; headers must not set them, and no
// key or value may hold CR, LF or NUL (ErrInvalidHeader, nothing sent).
//
// A "Response: Error" is returned as a *ActionError, along with the
// response. The wait is bounded by Config.ActionTimeout, or by ctx's
// deadline if that is later. A cancelled action is not withdrawn from
// Asterisk: its late answer is recognised and dropped.
//
// For actions that answer with an event list, use ActionList.
func (c *Client) Action(ctx context.Context, name string, headers ...Header) (Message, error) {
	resp, _, err := c.do(ctx, name, headers, false)
	return resp, err
}

// ActionList sends an action that answers with an event list
// ("EventList: start", one event per item, then a "...Complete" event)
// and returns the response and the item events, without the closing
// one. If the connection ends before the list is complete the error
// matches ErrConnectionLost and no events are returned: a partial list
// would pass for a short one.
//
// The list is bounded by Config.MaxListEvents and Config.MaxListBytes: a
// longer one fails at once with an error matching ErrListTooLarge and no
// events, and the rest of it is dropped as it arrives.
//
// An action whose successful response does not start a list returns at
// once with no events.
func (c *Client) ActionList(ctx context.Context, name string, headers ...Header) (resp Message, events []Message, err error) {
	return c.do(ctx, name, headers, true)
}

func (c *Client) do(ctx context.Context, name string, headers []Header, list bool) (Message, []Message, error) {
	cn, err := c.current()
	if err != nil {
		return Message{}, nil, fmt.Errorf("ami: %s: %w", name, err)
	}
	ctx, cancel := c.actionContext(ctx)
	defer cancel()
	return cn.do(ctx, c.nextID(), name, headers, list)
}
