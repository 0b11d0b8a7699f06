package ami

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// floodPeer is a raw AMI peer on a loopback port, speaking the wire
// format byte for byte: it greets, accepts any login, answers Ping, and
// answers "Action: Flood" with an event list of Count FloodEntry events
// (Count -1: without end) carrying Pad bytes of padding each, then the
// FloodComplete event. It writes one message at a time, so other answers
// (a Ping, a second list) come in between a list's events, as from
// Asterisk.
type floodPeer struct {
	t  *testing.T
	l  net.Listener
	wg sync.WaitGroup

	sent atomic.Int64 // FloodEntry events written, all lists together

	mu    sync.Mutex
	conns []net.Conn
	ids   []string // ActionIDs of the Flood actions, in arrival order
}

func startFloodPeer(t *testing.T) *floodPeer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &floodPeer{t: t, l: l}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *floodPeer) addr() string { return p.l.Addr().String() }

func (p *floodPeer) close() {
	p.l.Close()
	p.mu.Lock()
	for _, nc := range p.conns {
		nc.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *floodPeer) floodIDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ids...)
}

func (p *floodPeer) accept() {
	defer p.wg.Done()
	for {
		nc, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, nc)
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(nc)
	}
}

func (p *floodPeer) serve(nc net.Conn) {
	defer p.wg.Done()
	defer nc.Close()
	var wmu sync.Mutex
	write := func(s string) error {
		wmu.Lock()
		defer wmu.Unlock()
		nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := nc.Write([]byte(s))
		return err
	}
	if write("Asterisk Call Manager/9.0.0\r\n") != nil {
		return
	}
	br := bufio.NewReader(nc)
	for {
		a, err := readRawAction(br)
		if err != nil {
			return
		}
		id := a["actionid"]
		switch strings.ToLower(a["action"]) {
		case "login":
			write("Response: Success\r\nActionID: " + id + "\r\nMessage: Authentication accepted\r\n\r\n")
		case "ping":
			write("Response: Success\r\nActionID: " + id + "\r\nPing: Pong\r\nTimestamp: 1700000000.000000\r\n\r\n")
		case "flood":
			count, _ := strconv.Atoi(a["count"])
			pad, _ := strconv.Atoi(a["pad"])
			p.mu.Lock()
			p.ids = append(p.ids, id)
			p.mu.Unlock()
			if write("Response: Success\r\nActionID: "+id+"\r\nEventList: start\r\nMessage: Flood follows\r\n\r\n") != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				i := 0
				for ; count < 0 || i < count; i++ {
					if write(floodEvent(id, i, pad)) != nil {
						return // the client hung up
					}
					p.sent.Add(1)
				}
				write("Event: FloodComplete\r\nActionID: " + id + "\r\nEventList: Complete\r\nListItems: " + strconv.Itoa(i) + "\r\n\r\n")
			}()
		default:
			write("Response: Error\r\nActionID: " + id + "\r\nMessage: Invalid/unknown command\r\n\r\n")
		}
	}
}

// readRawAction reads one action's headers, keys lower-cased.
func readRawAction(br *bufio.Reader) (map[string]string, error) {
	a := map[string]string{}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if len(a) == 0 {
				continue
			}
			return a, nil
		}
		k, v, _ := strings.Cut(line, ":")
		a[strings.ToLower(strings.TrimSpace(k))] = strings.TrimPrefix(v, " ")
	}
}

// floodEvent is the i-th event of a Flood list. Item is fixed-width so
// that every event of a list has the same size.
func floodEvent(id string, i, pad int) string {
	return fmt.Sprintf("Event: FloodEntry\r\nActionID: %s\r\nItem: %08d\r\nPad: %s\r\n\r\n", id, i, strings.Repeat("x", pad))
}

// floodID stands for the ActionID of the first action after Dial's
// Login: the same length as the real one, which is all that
// listEventSize sees of it.
const floodID = "dialgate-00000000-2"

// floodListBytes is what Config.MaxListBytes counts for a Flood list of
// n events with pad bytes of padding, as the client parses them.
func floodListBytes(t *testing.T, n, pad int) int {
	t.Helper()
	m, err := newReader(strings.NewReader(floodEvent(floodID, 0, pad)), 1<<30).readMessage()
	if err != nil {
		t.Fatal(err)
	}
	return n * listEventSize(m)
}

// heapWatch samples the live heap until stopped and reports the peak
// growth over the heap when it started. If the heap grows past limit it
// calls onLimit, so that a leak fails the test instead of the machine.
func heapWatch(limit uint64, onLimit func()) (stop func() (peak uint64)) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	done := make(chan struct{})
	result := make(chan uint64, 1)
	go func() {
		var peak uint64
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		fired := false
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > base && ms.HeapAlloc-base > peak {
				peak = ms.HeapAlloc - base
			}
			if peak > limit && !fired {
				fired = true
				onLimit()
			}
			select {
			case <-done:
				result <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		return <-result
	}
}

// retainedListEvents counts the list events the client's connection
// holds for actions in flight.
func retainedListEvents(c *Client) (events, bytes int) {
	c.mu.Lock()
	cn := c.cur
	c.mu.Unlock()
	if cn == nil {
		return 0, 0
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	for _, p := range cn.pending {
		events += len(p.events)
		bytes += p.size
	}
	return events, bytes
}

// An event list is bounded in events and in bytes: a peer that streams
// list events without end, or a few huge ones, fails the action at once
// with ErrListTooLarge, memory stays bounded, the rest of the list is
// dropped without reaching subscribers, and the connection keeps serving
// other actions (even while the runaway list still streams). A list
// exactly at a bound is complete.
func TestActionListBounded(t *testing.T) {
	const memLimit = 64 << 20 // generous: the bounds keep it to a few MiB
	for _, tc := range []struct {
		name   string
		count  int // events in the list; -1: without end
		pad    int // padding bytes per event
		events int // Config.MaxListEvents; 0: default
		bytes  func(t *testing.T) int
		msgMax int // Config.MaxMessageBytes; 0: default

		wantErr string // "" for success
	}{
		{name: "endless, events bound", count: -1, events: 1000,
			wantErr: "more than 1000 events (Config.MaxListEvents)"},
		{name: "endless, default events bound", count: -1,
			wantErr: fmt.Sprintf("more than %d events (Config.MaxListEvents)", DefaultMaxListEvents)},
		{name: "few huge events, bytes bound", count: 10, pad: 60 << 10, bytes: func(*testing.T) int { return 200 << 10 },
			wantErr: fmt.Sprintf("more than %d bytes (Config.MaxListBytes)", 200<<10)},
		{name: "endless huge events, default bytes bound", count: -1, pad: 1 << 20, msgMax: 2 << 20,
			wantErr: fmt.Sprintf("more than %d bytes (Config.MaxListBytes)", DefaultMaxListBytes)},
		{name: "exactly at events bound", count: 50, events: 50},
		{name: "one over events bound", count: 51, events: 50,
			wantErr: "more than 50 events (Config.MaxListEvents)"},
		{name: "exactly at bytes bound", count: 5, pad: 10_000,
			bytes: func(t *testing.T) int { return floodListBytes(t, 5, 10_000) }},
		{name: "one byte over bytes bound", count: 5, pad: 10_000,
			bytes:   func(t *testing.T) int { return floodListBytes(t, 5, 10_000) - 1 },
			wantErr: "bytes (Config.MaxListBytes)"},
		{name: "both bounds exactly", count: 20, pad: 100, events: 20,
			bytes: func(t *testing.T) int { return floodListBytes(t, 20, 100) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer := startFloodPeer(t)
			log, _ := testLogger(t)
			cfg := Config{
				Addr:            peer.addr(),
				Username:        "flood",
				Secret:          "flood-secret",
				ActionTimeout:   30 * time.Second, // "quickly" is the bound's doing, not the timeout's
				PingInterval:    -1,
				Logger:          log,
				MaxListEvents:   tc.events,
				MaxMessageBytes: tc.msgMax,
			}
			if tc.bytes != nil {
				cfg.MaxListBytes = tc.bytes(t)
			}
			c := dial(t, cfg)
			sub, unsub := c.Subscribe(nil)
			defer unsub()

			stop := heapWatch(memLimit, func() { c.Close() })
			start := time.Now()
			_, events, err := c.ActionList(ctxT(t), "Flood",
				h("Count", strconv.Itoa(tc.count)), h("Pad", strconv.Itoa(tc.pad)))
			elapsed := time.Since(start)
			if ids := peer.floodIDs(); len(ids) != 1 || len(ids[0]) != len(floodID) {
				t.Fatalf("Flood ActionIDs %q, want one as long as %q", ids, floodID)
			}
			floodActionID := peer.floodIDs()[0]

			if tc.wantErr == "" {
				if err != nil || len(events) != tc.count {
					t.Fatalf("ActionList = %d events, %v; want %d events", len(events), err, tc.count)
				}
				for i, ev := range events {
					if ev.Get("Item") != fmt.Sprintf("%08d", i) || ev.ActionID() != floodActionID {
						t.Fatalf("event %d: %v", i, ev)
					}
				}
			} else {
				if !errors.Is(err, ErrListTooLarge) || events != nil {
					t.Fatalf("ActionList = %d events, %v; want ErrListTooLarge", len(events), err)
				}
				if msg := err.Error(); !strings.Contains(msg, tc.wantErr) || !strings.Contains(msg, "Flood") {
					t.Errorf("error %q does not name the action and %q", msg, tc.wantErr)
				}
				if elapsed > 15*time.Second {
					t.Errorf("the action failed only after %v", elapsed)
				}
			}

			if tc.count < 0 {
				// The list goes on streaming: let several bounds' worth
				// pass, and check none of it is kept.
				after := peer.sent.Load()
				more := int64(3 * DefaultMaxListEvents)
				if tc.pad >= 1<<20 {
					more = 3 * DefaultMaxListBytes / int64(tc.pad)
				}
				waitFor(t, "the peer to stream on", func() bool { return peer.sent.Load() > after+more })
				if n, b := retainedListEvents(c); n != 0 || b != 0 {
					t.Errorf("client holds %d list events (%d bytes) after the failure", n, b)
				}
				// A Ping and a second list, answered in between the
				// runaway list's events.
				if err := c.Ping(ctxT(t)); err != nil {
					t.Errorf("Ping during the runaway list: %v", err)
				}
				if _, evs, err := c.ActionList(ctxT(t), "Flood", h("Count", "3"), h("Pad", "0")); err != nil || len(evs) != 3 {
					t.Errorf("second list during the runaway one: %d events, %v", len(evs), err)
				}
			} else if err := c.Ping(ctxT(t)); err != nil {
				t.Errorf("Ping after the list: %v", err)
			}
			if peak := stop(); peak > memLimit {
				t.Errorf("heap grew by %d MiB (limit %d MiB)", peak>>20, memLimit>>20)
			} else {
				t.Logf("heap peak growth %.1f MiB in %v", float64(peak)/(1<<20), elapsed)
			}
			if !c.Connected() {
				t.Error("the connection did not survive")
			}
			// List events went to the list, not to subscribers, the
			// dropped ones included.
			for len(sub) > 0 {
				if ev := <-sub; ev.Event() == "FloodEntry" {
					t.Fatalf("subscriber got a list event: %v", ev)
				}
			}
		})
	}
}

func TestConfigListBoundsDefaults(t *testing.T) {
	for _, tc := range []struct {
		events, bytes         int
		wantEvents, wantBytes int
	}{
		{0, 0, DefaultMaxListEvents, DefaultMaxListBytes},
		{-1, -1, DefaultMaxListEvents, DefaultMaxListBytes},
		{7, 4096, 7, 4096},
	} {
		cfg, err := Config{Username: "u", MaxListEvents: tc.events, MaxListBytes: tc.bytes}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.MaxListEvents != tc.wantEvents || cfg.MaxListBytes != tc.wantBytes {
			t.Errorf("MaxListEvents %d, MaxListBytes %d -> %d, %d; want %d, %d",
				tc.events, tc.bytes, cfg.MaxListEvents, cfg.MaxListBytes, tc.wantEvents, tc.wantBytes)
		}
	}
}
