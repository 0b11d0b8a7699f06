package ami

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// replay plays Asterisk's side of a recorded connection to one client:
// it writes Asterisk's chunks as recorded, keeping their segmentation,
// and where the recording has the client send an action it reads one and
// checks it is the recorded action (name and headers; the ActionID
// aside). Recorded ActionIDs in later chunks are rewritten to the
// client's, so the client's correlation is exercised for real. The
// returned channel yields the first mismatch, or nil.
func replay(t *testing.T, conn []chunk) (addr string, result <-chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		defer l.Close()
		nc, err := l.Accept()
		if err != nil {
			errc <- err
			return
		}
		l.Close()
		defer nc.Close()
		errc <- replayConn(nc, conn)
	}()
	t.Cleanup(func() { l.Close() })
	return l.Addr().String(), errc
}

func replayConn(nc net.Conn, conn []chunk) error {
	if err := nc.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		return err
	}
	r := newReader(nc, DefaultMaxMessageBytes)
	ids := make(map[string]string) // recorded ActionID -> the client's
	prevAsterisk := false
	for i, c := range conn {
		switch {
		case c.eof:
			return nil // Asterisk closed the connection here
		case c.fromAsterisk:
			if prevAsterisk {
				time.Sleep(2 * time.Millisecond) // keep the recorded segmentation visible
			}
			prevAsterisk = true
			if _, err := nc.Write(rewriteIDs(c.data, ids)); err != nil {
				return fmt.Errorf("chunk %d: %w", i, err)
			}
		default:
			prevAsterisk = false
			want, err := newReader(bytes.NewReader(c.data), DefaultMaxMessageBytes).readMessage()
			if err != nil {
				return fmt.Errorf("chunk %d: recorded action: %w", i, err)
			}
			got, err := r.readMessage()
			if err != nil {
				return fmt.Errorf("chunk %d: reading the client's action (recorded %q): %w", i, c.data, err)
			}
			if a, b := actionShape(got), actionShape(want); a != b {
				return fmt.Errorf("chunk %d: client sent\n%s\nrecording has\n%s", i, a, b)
			}
			if id := want.ActionID(); id != "" {
				ids[id] = got.ActionID()
			}
		}
	}
	// The recording ends without Asterisk closing: wait for the client.
	_, err := io.Copy(io.Discard, nc)
	return err
}

// actionShape renders an action's name and headers, ActionID aside and
// in sorted order, for comparison.
func actionShape(m Message) string {
	var lines []string
	for _, h := range m.Headers {
		if strings.EqualFold(h.Key, "ActionID") {
			continue
		}
		lines = append(lines, h.Key+": "+h.Value)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func rewriteIDs(b []byte, ids map[string]string) []byte {
	for rec, ours := range ids {
		b = bytes.ReplaceAll(b, []byte("ActionID: "+rec+"\r\n"), []byte("ActionID: "+ours+"\r\n"))
	}
	return b
}

// recordedHeaders returns the headers of the recorded action with the
// given ActionID, Action and ActionID left out.
func recordedHeaders(t *testing.T, conn []chunk, id string) []Header {
	t.Helper()
	for _, c := range conn {
		if c.fromAsterisk {
			continue
		}
		m, err := newReader(bytes.NewReader(c.data), DefaultMaxMessageBytes).readMessage()
		if err != nil || m.ActionID() != id {
			continue
		}
		var hs []Header
		for _, h := range m.Headers {
			if !strings.EqualFold(h.Key, "Action") && !strings.EqualFold(h.Key, "ActionID") {
				hs = append(hs, h)
			}
		}
		return hs
	}
	t.Fatalf("no recorded action %q", id)
	return nil
}

// recordedEvents returns the events Asterisk sent on a connection that
// are not items of the given lists.
func recordedEvents(t *testing.T, conn []chunk, listIDs ...string) []Message {
	t.Helper()
	_, msgs := readAll(t, bytes.NewReader(fromAsterisk(conn)))
	var evs []Message
	for _, m := range msgs {
		if m.IsEvent() && !slices.Contains(listIDs, m.ActionID()) {
			evs = append(evs, m)
		}
	}
	return evs
}

func replayConfig(t *testing.T, addr string) Config {
	log, _ := testLogger(t)
	return Config{
		Addr: addr, Username: "harness", Secret: "harness-secret",
		PingInterval: -1, Logger: log, DialTimeout: 10 * time.Second, ActionTimeout: 10 * time.Second,
	}
}

func checkReplay(t *testing.T, result <-chan error) {
	t.Helper()
	select {
	case err := <-result:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(20 * time.Second):
		t.Error("replay did not finish")
	}
}

// Connection A: the wrong secret, answered after a second, then EOF.
func TestReplayLoginRefused(t *testing.T) {
	addr, result := replay(t, session(t, "ami-session.txt", 0))
	cfg := replayConfig(t, addr)
	cfg.Secret = "wrong-secret"
	c, err := Dial(ctxT(t), cfg)
	if c != nil || !errors.Is(err, ErrAuth) {
		t.Errorf("Dial = %v, %v; want ErrAuth", c, err)
	}
	checkReplay(t, result)
}

// Connection B: the whole recorded session, through the high-level API.
func TestReplaySession(t *testing.T) {
	conn := session(t, "ami-session.txt", 1)
	addr, result := replay(t, conn)
	c := New(replayConfig(t, addr))
	events, cancel := c.Subscribe(nil)
	defer cancel()
	run(t, c)
	ctx := ctxT(t)

	if v := c.Version(); v != "9.0.0" {
		t.Errorf("Version = %q", v)
	}
	if err := c.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	out, err := c.Command(ctx, "core show channels")
	if err != nil || len(out) != 4 || out[3] != "10 calls processed" {
		t.Errorf("core show channels = %q, %v", out, err)
	}
	out, err = c.Command(ctx, "core show version")
	if err != nil || len(out) != 1 || !strings.HasPrefix(out[0], "Asterisk 20.20.1 built by root") {
		t.Errorf("core show version = %q, %v", out, err)
	}
	// Answered in four TCP writes.
	out, err = c.Command(ctx, "no such cli command")
	if !errors.Is(err, ErrActionFailed) || len(out) != 1 || !strings.HasPrefix(out[0], "No such command") {
		t.Errorf("unknown CLI command = %q, %v", out, err)
	}
	if _, err := c.Action(ctx, "NoSuchAction"); !errors.Is(err, ErrUnknownAction) {
		t.Errorf("NoSuchAction: %v", err)
	}
	_, peers, err := c.ActionList(ctx, "SIPpeers")
	if err != nil || len(peers) != 1 || peers[0].Get("ObjectName") != "traveler" || peers[0].Get("IPaddress") != "-none-" {
		t.Errorf("SIPpeers = %v, %v", peers, err)
	}
	if addr, ok, err := c.SIPPeerAddress(ctx, "traveler"); ok || err != nil {
		t.Errorf("SIPPeerAddress before registration = %v, %v, %v", addr, ok, err)
	}
	for _, list := range []string{"SIPshowregistry", "CoreShowChannels"} {
		if _, items, err := c.ActionList(ctx, list); err != nil || len(items) != 0 {
			t.Errorf("%s = %v, %v", list, items, err)
		}
	}
	orig, err := c.Action(ctx, "Originate", recordedHeaders(t, conn, "orig-async-1")...)
	if err != nil || orig.Get("Message") != "Originate successfully queued" {
		t.Errorf("async Originate = %v, %v", orig, err)
	}
	// A list answered while the call's events stream in.
	_, chans, err := c.ActionList(ctx, "CoreShowChannels")
	if err != nil || len(chans) == 0 {
		t.Errorf("CoreShowChannels during the call = %d items, %v", len(chans), err)
	}
	for _, ch := range chans {
		if ch.Event() != "CoreShowChannel" {
			t.Errorf("list item %v", ch)
		}
	}
	if _, err := c.Action(ctx, "Originate", recordedHeaders(t, conn, "orig-sync-bad")...); !errors.Is(err, ErrActionFailed) {
		t.Errorf("sync Originate to nobody = %v", err)
	}
	if err := c.Logoff(ctx); err != nil {
		t.Errorf("Logoff: %v", err)
	}
	checkReplay(t, result)

	// Every event that is not a list item reached the subscriber, the
	// OriginateResponse with our ActionID among them.
	want := recordedEvents(t, conn, "sippeers-1", "sipreg-1", "csc-1", "csc-2")
	var got []Message
	for m := range events {
		got = append(got, m)
	}
	if len(got) != len(want) {
		t.Errorf("subscriber got %d events, want %d", len(got), len(want))
	}
	found := false
	for _, m := range got {
		if m.Event() == "OriginateResponse" {
			found = m.ActionID() == orig.ActionID() && m.Get("Reason") == "4"
		}
		if m.Event() == "CoreShowChannel" || m.Event() == "PeerEntry" {
			t.Errorf("list item leaked to the subscriber: %v", m)
		}
	}
	if !found {
		t.Errorf("no OriginateResponse with ActionID %q among the events", orig.ActionID())
	}
}

// The SIP peer registered: the address lookups and the CLI view agree.
func TestReplaySIPRegistered(t *testing.T) {
	addr, result := replay(t, session(t, "ami-sip-registered.txt", 0))
	cfg := replayConfig(t, addr)
	cfg.Events = "off"
	c := dial(t, cfg)
	ctx := ctxT(t)
	_, peers, err := c.ActionList(ctx, "SIPpeers")
	if err != nil || len(peers) != 1 || peers[0].Get("IPaddress") != "127.0.0.1" || peers[0].Get("IPport") != "5070" {
		t.Errorf("SIPpeers = %v, %v", peers, err)
	}
	// The response arrives split in the middle of a line.
	got, ok, err := c.SIPPeerAddress(ctx, "traveler")
	if want := netip.MustParseAddrPort("127.0.0.1:5070"); !ok || err != nil || got != want {
		t.Errorf("SIPPeerAddress = %v, %v, %v; want %v", got, ok, err, want)
	}
	out, err := c.Command(ctx, "sip show peer traveler")
	if err != nil || !contains(out, "  Addr->IP     : 127.0.0.1:5070") {
		t.Errorf("sip show peer = %q, %v", out, err)
	}
	// The recorded Goodbye carries no ActionID; the close still counts.
	if err := c.Logoff(ctx); err != nil {
		t.Errorf("Logoff: %v", err)
	}
	checkReplay(t, result)
}

// Listening sessions: what a subscriber sees while other clients fail to
// log in, and while a phone registers and calls.
func TestReplayEventListener(t *testing.T) {
	for _, tc := range []struct {
		file  string
		conn  int
		event string // one event that must be among them
		check func(Message) bool
	}{
		{"ami-events-failedlogin.txt", 0, "InvalidPassword", func(m Message) bool { return m.Get("AccountID") == "harness" }},
		{"ami-session.txt", 3, "InvalidAccountID", func(m Message) bool { return m.Get("AccountID") == "nosuchuser" }},
		{"ami-session.txt", 4, "PeerStatus", func(m Message) bool {
			a, err := ParseHostPort(m.Get("Address"))
			return m.Get("PeerStatus") == "Registered" && err == nil && a.String() == "127.0.0.1:5070"
		}},
	} {
		t.Run(fmt.Sprintf("%s#%d", tc.file, tc.conn), func(t *testing.T) {
			conn := session(t, tc.file, tc.conn)
			want := recordedEvents(t, conn)
			addr, result := replay(t, conn)
			c := New(replayConfig(t, addr))
			events, cancel := c.Subscribe(nil)
			defer cancel()
			run(t, c)
			var got []Message
			for len(got) < len(want) {
				got = append(got, recv(t, events))
			}
			for i := range got {
				if got[i].String() != want[i].String() {
					t.Errorf("event %d = %v, want %v", i, got[i], want[i])
				}
			}
			found := false
			for _, m := range got {
				found = found || (m.Event() == tc.event && tc.check(m))
			}
			if !found {
				t.Errorf("no matching %s event", tc.event)
			}
			if err := c.Logoff(ctxT(t)); err != nil {
				t.Errorf("Logoff: %v", err)
			}
			checkReplay(t, result)
		})
	}
}
