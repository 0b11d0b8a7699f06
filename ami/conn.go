package ami

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// conn is one logged-in (or logging-in) TCP session with Asterisk. Its
// reader goroutine routes every message: answers to the action waiting
// for them, by ActionID, and events to the Client's subscribers. Writes
// are serialised per action, so concurrent actions never interleave on
// the wire.
type conn struct {
	nc      net.Conn
	client  *Client
	log     *slog.Logger
	version string

	wmu sync.Mutex // serialises writes

	mu      sync.Mutex
	pending map[string]*pending // by ActionID
	err     error               // why the connection ended; set before done closes
	done    chan struct{}       // closed once the connection has ended
}

// pending is one action waiting for its answer.
type pending struct {
	action string // name, for errors and logs
	list   bool   // ActionList: the answer ends with a "...Complete" event

	// Guarded by conn.mu.
	resp      Message
	gotResp   bool
	events    []Message
	size      int           // listEventSize of events, summed
	err       error         // the list went over a bound (ErrListTooLarge)
	abandoned bool          // the caller gave up or err is set; drop what still comes
	done      chan struct{} // closed when the answer is complete, or err set
}

// Estimated memory costs of a list event beyond its keys and values, for
// Config.MaxListBytes: a Message, a Header (two string headers) and a
// string header on a 64-bit platform.
const (
	messageOverhead = 48
	headerOverhead  = 32
	stringOverhead  = 16
)

// listEventSize estimates the memory m holds, as Config.MaxListBytes
// counts it.
func listEventSize(m Message) int {
	n := messageOverhead
	for _, h := range m.Headers {
		n += headerOverhead + len(h.Key) + len(h.Value)
	}
	for _, l := range m.Body {
		n += stringOverhead + len(l)
	}
	return n
}

func newConn(nc net.Conn, c *Client, version string) *conn {
	return &conn{
		nc:      nc,
		client:  c,
		log:     c.log.With("addr", c.cfg.Addr),
		version: version,
		pending: make(map[string]*pending),
		done:    make(chan struct{}),
	}
}

// fail ends the connection with err, once; later calls keep the first
// cause. Waiting actions see done close and report ErrConnectionLost.
func (cn *conn) fail(err error) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.err != nil {
		return
	}
	cn.err = err
	cn.nc.Close()
	close(cn.done)
}

// failure returns why the connection ended, or nil while it is up.
func (cn *conn) failure() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err
}

// readLoop reads and routes messages until the connection fails.
func (cn *conn) readLoop(r *reader) {
	for {
		m, err := r.readMessage()
		if err != nil {
			if prev := cn.failure(); prev != nil {
				return // we closed it; the read error is only the echo
			}
			cn.fail(fmt.Errorf("ami: reading from %s: %w", cn.client.cfg.Addr, err))
			return
		}
		cn.route(m)
	}
}

// route delivers one message. It never blocks: the reader must keep
// draining the socket, or Asterisk would stall every other session's
// events behind ours.
func (cn *conn) route(m Message) {
	id, hasID := m.Lookup("ActionID")
	if m.IsEvent() {
		if hasID && cn.routeListEvent(id, m) {
			return
		}
		// Events without an ActionID, and events with one that no list is
		// waiting for (OriginateResponse arrives long after Originate's
		// own response), are for subscribers.
		cn.client.publish(m)
		return
	}
	if _, ok := m.Lookup("Response"); !ok {
		cn.log.Debug("ami: dropping message that is neither response nor event", "keys", len(m.Headers))
		return
	}
	cn.mu.Lock()
	p, ok := cn.pending[id]
	if !ok {
		cn.mu.Unlock()
		// Not the answer to anything we sent: every action we send has
		// an ActionID, and an abandoned one stays registered.
		cn.log.Debug("ami: dropping response with unknown ActionID", "actionid", id, "response", m.Response())
		return
	}
	p.resp, p.gotResp = m, true
	if !p.list || !strings.EqualFold(m.Get("EventList"), "start") {
		// An error, or a plain answer: nothing more will come.
		cn.finish(id, p)
	}
	abandoned := p.abandoned
	cn.mu.Unlock()
	msg := "ami: response"
	if abandoned {
		msg = "ami: dropping late response"
	}
	cn.log.Debug(msg, "action", p.action, "actionid", id, "response", m.Response())
}

// routeListEvent hands an event to the list action it belongs to and
// reports whether there was one.
func (cn *conn) routeListEvent(id string, m Message) bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	p, ok := cn.pending[id]
	if !ok || !p.list {
		return false
	}
	if strings.EqualFold(m.Get("EventList"), "Complete") {
		cn.finish(id, p)
		return true
	}
	if p.abandoned {
		return true
	}
	cfg := &cn.client.cfg
	size := listEventSize(m)
	switch {
	case len(p.events) >= cfg.MaxListEvents:
		cn.tooLarge(id, p, fmt.Errorf("ami: %s: %w: more than %d events (Config.MaxListEvents)",
			p.action, ErrListTooLarge, cfg.MaxListEvents))
	case size > cfg.MaxListBytes-p.size:
		cn.tooLarge(id, p, fmt.Errorf("ami: %s: %w: more than %d bytes (Config.MaxListBytes)",
			p.action, ErrListTooLarge, cfg.MaxListBytes))
	default:
		p.events = append(p.events, m)
		p.size += size
	}
	return true
}

// tooLarge fails a list that went over a bound: its caller gets err at
// once and the events collected are released. p stays registered, as an
// abandoned action does, so that the rest of the list (same ActionID, up
// to its Complete event) is recognised and dropped without being stored,
// rather than handed to subscribers. Resynchronising is safe: messages
// are framed and bounded by the reader whatever the list does, so
// dropping a list's events by ActionID leaves the stream in step, and
// other actions' answers keep being routed. A peer that never completes
// the list costs that one entry until the connection ends. cn.mu must be
// held.
func (cn *conn) tooLarge(id string, p *pending, err error) {
	cn.log.Warn("ami: event list too large, dropping the rest of it",
		"action", p.action, "actionid", id, "events", len(p.events), "bytes", p.size, "err", err)
	p.err = err
	p.abandoned = true
	p.events, p.size = nil, 0
	select {
	case <-p.done:
	default:
		close(p.done)
	}
}

// finish completes p; cn.mu must be held.
func (cn *conn) finish(id string, p *pending) {
	delete(cn.pending, id)
	select {
	case <-p.done:
	default:
		close(p.done)
	}
}

// do sends one action and waits for its answer: the response, and for a
// list the events up to the "...Complete" one. A "Response: Error" comes
// back as a *ActionError along with the response.
func (cn *conn) do(ctx context.Context, id, name string, headers []Header, list bool) (Message, []Message, error) {
	b, err := encodeAction(name, id, headers)
	if err != nil {
		return Message{}, nil, fmt.Errorf("ami: %s: %w", name, err)
	}
	p := &pending{action: name, list: list, done: make(chan struct{})}
	cn.mu.Lock()
	if cn.err != nil {
		err := cn.err
		cn.mu.Unlock()
		return Message{}, nil, fmt.Errorf("ami: %s: %w: %w", name, ErrNotConnected, err)
	}
	cn.pending[id] = p
	cn.mu.Unlock()

	cn.log.Debug("ami: action", "action", name, "actionid", id)
	if err := cn.write(ctx, b); err != nil {
		cn.abandon(id)
		return Message{}, nil, fmt.Errorf("ami: %s: %w", name, err)
	}

	select {
	case <-p.done:
	case <-cn.done:
		select {
		case <-p.done: // the answer made it in before the end
		default:
			return Message{}, nil, fmt.Errorf("ami: %s: %w", name, cn.lost())
		}
	case <-ctx.Done():
		cn.abandon(id)
		return Message{}, nil, fmt.Errorf("ami: %s: no answer: %w", name, context.Cause(ctx))
	}
	cn.mu.Lock()
	resp, events, gotResp, listErr := p.resp, p.events, p.gotResp, p.err
	cn.mu.Unlock()
	if listErr != nil {
		return resp, nil, listErr
	}
	if !gotResp {
		// A "Complete" event without a response before it.
		return resp, events, fmt.Errorf("ami: %s: %w: list ended without a response", name, ErrProtocol)
	}
	if strings.EqualFold(resp.Response(), "Error") {
		return resp, nil, &ActionError{Action: name, Response: resp}
	}
	return resp, events, nil
}

// lost explains why an action got no answer: ErrClosed after Close,
// else ErrConnectionLost with the cause.
func (cn *conn) lost() error {
	err := cn.failure()
	if errors.Is(err, ErrClosed) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrConnectionLost, err)
}

// abandon marks an action whose caller gave up. It stays registered so
// that the rest of its answer, notably a long event list, is recognised
// and dropped rather than flooding subscribers.
func (cn *conn) abandon(id string) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if p, ok := cn.pending[id]; ok {
		p.abandoned = true
		p.events = nil
	}
}

// write sends one encoded action. Deadlines bound it; a write that fails
// or stops halfway leaves the stream desynchronised, so it ends the
// connection.
func (cn *conn) write(ctx context.Context, b []byte) error {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	deadline := time.Now().Add(cn.client.cfg.ActionTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := cn.nc.SetWriteDeadline(deadline); err != nil {
		cn.fail(fmt.Errorf("ami: writing to %s: %w", cn.client.cfg.Addr, err))
		return cn.lost()
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		cn.nc.SetWriteDeadline(time.Now())
		close(fired)
	})
	_, err := cn.nc.Write(b)
	if !stop() {
		// Let it finish before the next writer sets its own deadline.
		<-fired
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", context.Cause(ctx), err)
		}
		// If the connection had already ended, fail keeps that cause,
		// which explains more than "use of closed network connection".
		cn.fail(fmt.Errorf("ami: writing to %s: %w", cn.client.cfg.Addr, err))
		return cn.lost()
	}
	return nil
}
