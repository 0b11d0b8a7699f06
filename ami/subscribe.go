package ami

import "sync"

// subscription is one Subscribe call's channel and filter.
type subscription struct {
	ch     chan Message
	filter func(Message) bool

	// dropping is set while the subscriber is behind, so that a slow
	// consumer is logged once per stall, not once per event. Guarded by
	// Client.pubMu.
	dropping bool
	dropped  uint64
	once     sync.Once
}

func (s *subscription) close() { s.once.Do(func() { close(s.ch) }) }

// Subscribe returns a channel of the events the filter accepts (all
// events if filter is nil) and a function that ends the subscription and
// closes the channel.
//
// Events are those Asterisk sends unprompted, which Config.Events
// selects, and events carrying the ActionID of an action that is not
// waiting for a list (OriginateResponse after an async Originate). List
// events go to their ActionList call only.
//
// The channel holds Config.EventBuffer events. Events that find it full
// are dropped, never waited for: one slow subscriber must not stall the
// answers to every action. DroppedEvents counts them. Subscriptions
// survive reconnections under Run; Close, and the end of a Dial client's
// connection, close the channel. Events are not kept for subscribers yet
// to come: subscribe before Run to see the login's own events
// (FullyBooted); a Dial client may miss them.
//
// filter runs on the goroutine that reads from Asterisk, so it must be
// quick and must not call the Client. The Messages delivered are shared
// and must not be modified.
func (c *Client) Subscribe(filter func(Message) bool) (events <-chan Message, cancel func()) {
	s := &subscription{ch: make(chan Message, c.cfg.EventBuffer), filter: filter}
	c.subMu.Lock()
	if c.subs == nil { // closed
		c.subMu.Unlock()
		s.close()
		return s.ch, func() {}
	}
	c.subs[s] = struct{}{}
	c.subMu.Unlock()
	return s.ch, func() {
		c.subMu.Lock()
		delete(c.subs, s)
		c.subMu.Unlock()
		s.close()
	}
}

// DroppedEvents returns how many events subscribers have missed because
// their channel was full.
func (c *Client) DroppedEvents() uint64 { return c.dropped.Load() }

// publish offers an event to every subscription. It never blocks.
func (c *Client) publish(m Message) {
	// Readers of an old and a new connection can overlap for a moment
	// after a reconnect; one publisher at a time keeps filters and
	// counters single-threaded.
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	c.subMu.RLock()
	defer c.subMu.RUnlock()
	for s := range c.subs {
		if s.filter != nil && !s.filter(m) {
			continue
		}
		select {
		case s.ch <- m:
			s.dropping = false
		default:
			s.dropped++
			c.dropped.Add(1)
			if !s.dropping {
				s.dropping = true
				c.log.Warn("ami: subscriber too slow, dropping events", "event", m.Event(), "dropped_so_far", s.dropped)
			}
		}
	}
}

// closeSubscriptions ends every subscription; later Subscribe calls get
// a closed channel.
func (c *Client) closeSubscriptions() {
	c.subMu.Lock()
	subs := c.subs
	c.subs = nil
	c.subMu.Unlock()
	for s := range subs {
		s.close()
	}
}
