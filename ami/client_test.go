package ami

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dialgate/dialgate/ami/amitest"
)

func TestDialLogin(t *testing.T) {
	srv := startFake(t, amitest.Options{Version: "2.10.6"})
	cfg := testConfig(t, srv)
	cfg.Events = "off"
	c := dial(t, cfg)
	if !c.Connected() || c.State() != Connected {
		t.Errorf("state %v after Dial", c.State())
	}
	if v := c.Version(); v != "2.10.6" {
		t.Errorf("Version = %q", v)
	}
	if err := c.Ping(ctxT(t)); err != nil {
		t.Errorf("Ping: %v", err)
	}
	rec := srv.Received()
	if len(rec) != 2 || rec[0].Get("Action") != "Login" || rec[0].Get("Secret") != amitest.DefaultSecret || rec[0].Get("Events") != "off" {
		t.Errorf("server received %v", rec)
	}
}

func TestDialLoginRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"wrong secret", func(c *Config) { c.Secret = "wrong-secret" }},
		{"unknown user", func(c *Config) { c.Username = "nosuchuser" }},
		{"wrong secret, MD5", func(c *Config) { c.Secret, c.MD5 = "wrong-secret", true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Asterisk's one-second delay, shortened.
			srv := startFake(t, amitest.Options{FailedLoginDelay: 50 * time.Millisecond})
			cfg := testConfig(t, srv)
			tc.mod(&cfg)
			log, buf := testLogger(t)
			cfg.Logger = log
			start := time.Now()
			c, err := Dial(ctxT(t), cfg)
			if c != nil || !errors.Is(err, ErrAuth) || !errors.Is(err, ErrActionFailed) {
				t.Fatalf("Dial = %v, %v; want ErrAuth", c, err)
			}
			var ae *ActionError
			if !errors.As(err, &ae) || ae.Message() != "Authentication failed" {
				t.Errorf("error %v carries no ActionError with Asterisk's message", err)
			}
			if time.Since(start) < 50*time.Millisecond {
				t.Errorf("Dial returned before the server answered")
			}
			if strings.Contains(err.Error(), "wrong-secret") || strings.Contains(buf.String(), "wrong-secret") {
				t.Errorf("the secret leaked: %v\n%s", err, buf)
			}
			waitFor(t, "server to close the session", func() bool { return srv.Sessions() == 0 })
		})
	}
}

func TestDialMD5(t *testing.T) {
	srv := startFake(t, amitest.Options{})
	cfg := testConfig(t, srv)
	cfg.MD5 = true
	log, buf := testLogger(t)
	cfg.Logger = log
	c := dial(t, cfg)
	if err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	rec := srv.Received()
	if len(rec) < 2 || rec[0].Get("Action") != "Challenge" || rec[0].Get("AuthType") != "MD5" {
		t.Fatalf("server received %v", rec)
	}
	login := rec[1]
	if login.Get("AuthType") != "MD5" || len(login.Get("Key")) != 32 || login.Get("Secret") != "" {
		t.Errorf("MD5 login sent %v", login)
	}
	for _, a := range rec {
		for _, h := range a {
			if strings.Contains(h.Value, amitest.DefaultSecret) {
				t.Errorf("the secret crossed the wire in %v", a)
			}
		}
	}
	if strings.Contains(buf.String(), login.Get("Key")) || strings.Contains(buf.String(), amitest.DefaultSecret) {
		t.Errorf("key or secret logged:\n%s", buf)
	}
}

func TestDialErrors(t *testing.T) {
	// Nothing listening.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if _, err := Dial(ctxT(t), Config{Addr: addr, Username: "u", Logger: discard()}); err == nil {
		t.Error("Dial to a closed port succeeded")
	}

	// Not an AMI server.
	l, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
			c.Close()
		}
	}()
	if _, err := Dial(ctxT(t), Config{Addr: l.Addr().String(), Username: "u", Logger: discard()}); !errors.Is(err, ErrProtocol) {
		t.Errorf("Dial to an SSH server = %v, want ErrProtocol", err)
	}

	// A server that never says anything: DialTimeout.
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	start := time.Now()
	_, err = Dial(ctxT(t), Config{Addr: l2.Addr().String(), Username: "u", DialTimeout: 100 * time.Millisecond, Logger: discard()})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("Dial to a silent server = %v after %v", err, time.Since(start))
	}

	// Bad configuration.
	for _, cfg := range []Config{
		{},
		{Username: "u\r\nAction: Originate"},
		{Username: "u", Secret: "s\nx"},
		{Username: "u", Events: "on\r\n"},
	} {
		if _, err := Dial(ctxT(t), cfg); err == nil {
			t.Errorf("Dial(%+v) succeeded", cfg)
		}
	}
}

func TestActionErrors(t *testing.T) {
	srv := startFake(t, amitest.Options{NoPJSIP: true})
	c := dial(t, testConfig(t, srv))
	resp, err := c.Action(ctxT(t), "PJSIPShowEndpoints")
	if !errors.Is(err, ErrActionFailed) || !errors.Is(err, ErrUnknownAction) || errors.Is(err, ErrAuth) {
		t.Errorf("unknown action: %v", err)
	}
	if resp.Response() != "Error" {
		t.Errorf("response not returned with the error: %v", resp)
	}
	var ae *ActionError
	if !errors.As(err, &ae) || ae.Action != "PJSIPShowEndpoints" {
		t.Errorf("error %v", err)
	}
	if _, err := c.Action(ctxT(t), "SIPshowpeer"); !errors.Is(err, ErrActionFailed) || errors.Is(err, ErrUnknownAction) {
		t.Errorf("SIPshowpeer without Peer: %v", err)
	}
}

// Header values that would smuggle a second action are refused, nothing
// is sent, and the connection stays usable.
func TestHeaderInjectionRefused(t *testing.T) {
	srv := startFake(t, amitest.Options{})
	c := dial(t, testConfig(t, srv))
	before := len(srv.Received())
	for _, call := range []func() error{
		func() error {
			_, err := c.Action(ctxT(t), "SIPshowpeer", h("Peer", "traveler\r\n\r\nAction: Originate\r\nChannel: SIP/x"))
			return err
		},
		func() error { _, err := c.Command(ctxT(t), "core show version\nAction: Originate"); return err },
		func() error { _, _, err := c.SIPPeerAddress(ctxT(t), "traveler\r\nAction: Logoff"); return err },
		func() error { _, err := c.PJSIPContactAddresses(ctxT(t), "alice\nAction: Logoff"); return err },
		func() error { _, _, err := c.ActionList(ctxT(t), "SIPpeers", h("ActionID", "mine")); return err },
		func() error { _, err := c.Action(ctxT(t), "Ping\r\nAction: Logoff"); return err },
	} {
		if err := call(); !errors.Is(err, ErrInvalidHeader) {
			t.Errorf("err = %v, want ErrInvalidHeader", err)
		}
	}
	if err := c.Ping(ctxT(t)); err != nil {
		t.Fatalf("Ping after refusals: %v", err)
	}
	if got := srv.Received()[before:]; len(got) != 1 || got[0].Get("Action") != "Ping" {
		t.Errorf("server received %v; want only the Ping", got)
	}
}

// Fifty goroutines, answers delivered out of order: each gets its own.
func TestConcurrentActions(t *testing.T) {
	const n = 50
	var peers []amitest.SIPPeer
	for i := range n {
		peers = append(peers, amitest.SIPPeer{
			Name: fmt.Sprintf("peer%02d", i),
			Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}), uint16(5060+i)),
		})
	}
	srv := startFake(t, amitest.Options{SIPPeers: peers})
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	srv.SetDelay(func(string) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return time.Duration(1+rng.IntN(30)) * time.Millisecond
	})
	cfg := testConfig(t, srv)
	log, buf := testLogger(t)
	cfg.Logger = log
	c := dial(t, cfg)

	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i, p := range peers {
		wg.Go(func() {
			addr, ok, err := c.SIPPeerAddress(ctxT(t), p.Name)
			if err != nil || !ok || addr != p.Addr {
				errs <- fmt.Errorf("peer %s: got %v, %v, %v; want %v", p.Name, addr, ok, err, p.Addr)
			}
			if i%5 == 0 { // lists interleave with the rest
				_, events, err := c.ActionList(ctxT(t), "SIPpeers")
				if err != nil || len(events) != n {
					errs <- fmt.Errorf("SIPpeers: %d events, %v", len(events), err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The answers really came back in another order than the actions
	// went out.
	if sent, answered := logOrder(buf.String(), "ami: action"), logOrder(buf.String(), "ami: response"); reflect.DeepEqual(sent, answered) {
		t.Errorf("answers came back in the order sent; the test proves nothing")
	}
}

// logOrder returns the ActionIDs of the log lines with msg, in order.
func logOrder(log, msg string) []string {
	var ids []string
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `msg="`+msg+`"`) {
			continue
		}
		if _, id, ok := strings.Cut(line, "actionid="); ok {
			id, _, _ = strings.Cut(id, " ")
			ids = append(ids, id)
		}
	}
	return ids
}

func TestActionList(t *testing.T) {
	srv := startFake(t, amitest.Options{SIPPeers: []amitest.SIPPeer{
		{Name: "alice", Addr: netip.MustParseAddrPort("203.0.113.7:5060")},
		{Name: "bob"},
	}})
	c := dial(t, testConfig(t, srv))
	resp, events, err := c.ActionList(ctxT(t), "SIPpeers")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Get("EventList") != "start" || resp.Get("Message") != "Peer status list will follow" {
		t.Errorf("response %v", resp)
	}
	var names []string
	for _, ev := range events {
		if ev.Event() != "PeerEntry" || ev.ActionID() != resp.ActionID() {
			t.Errorf("event %v", ev)
		}
		names = append(names, ev.Get("ObjectName")+"="+ev.Get("IPaddress"))
	}
	if want := []string{"alice=203.0.113.7", "bob=-none-"}; !reflect.DeepEqual(names, want) {
		t.Errorf("peers %q, want %q", names, want)
	}

	// An empty list.
	srv2 := startFake(t, amitest.Options{})
	c2 := dial(t, testConfig(t, srv2))
	if _, events, err := c2.ActionList(ctxT(t), "PJSIPShowContacts"); err != nil || len(events) != 0 {
		t.Errorf("empty list: %d events, %v", len(events), err)
	}
	// A list action that fails returns no events.
	if _, events, err := c2.ActionList(ctxT(t), "PJSIPShowEndpoint", h("Endpoint", "nobody")); !errors.Is(err, ErrActionFailed) || events != nil {
		t.Errorf("failed list: %v, %v", events, err)
	}
	// A plain action through ActionList completes at its response.
	if _, events, err := c2.ActionList(ctxT(t), "Ping"); err != nil || events != nil {
		t.Errorf("Ping as a list: %v, %v", events, err)
	}
}

// A connection that drops halfway through a list is an error, not a
// short list.
func TestActionListConnectionLost(t *testing.T) {
	var peers []amitest.SIPPeer
	for i := range 5 {
		peers = append(peers, amitest.SIPPeer{Name: fmt.Sprintf("p%d", i)})
	}
	for _, after := range []int{0, 2, 5} {
		t.Run(fmt.Sprint(after), func(t *testing.T) {
			srv := startFake(t, amitest.Options{SIPPeers: peers})
			c := dial(t, testConfig(t, srv))
			srv.CutNextList(after)
			_, events, err := c.ActionList(ctxT(t), "SIPpeers")
			if !errors.Is(err, ErrConnectionLost) || events != nil {
				t.Errorf("cut after %d items: %d events, %v; want ErrConnectionLost", after, len(events), err)
			}
			waitFor(t, "Disconnected", func() bool { return c.State() == Disconnected })
			if err := c.Ping(ctxT(t)); !errors.Is(err, ErrNotConnected) {
				t.Errorf("Ping after the drop = %v, want ErrNotConnected", err)
			}
		})
	}
}

func TestActionTimeout(t *testing.T) {
	srv := startFake(t, amitest.Options{})
	cfg := testConfig(t, srv)
	cfg.ActionTimeout = 50 * time.Millisecond
	c := dial(t, cfg)
	var pingDelay atomic.Int64
	srv.SetDelay(func(a string) time.Duration {
		if a == "Ping" {
			return time.Duration(pingDelay.Load())
		}
		return 0
	})
	pingDelay.Store(int64(3 * time.Second))
	start := time.Now()
	if err := c.Ping(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Ping = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("ActionTimeout not applied: %v", d)
	}
	// A longer ctx deadline wins over ActionTimeout.
	pingDelay.Store(int64(300 * time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		t.Errorf("Ping with a long deadline: %v", err)
	}
	// Cancellation.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	if err := c.Ping(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Ping = %v", err)
	}
	pingDelay.Store(0)
	if err := c.Ping(ctxT(t)); err != nil {
		t.Errorf("Ping after all that: %v", err)
	}
	// Late answers were dropped; the connection is fine.
	if !c.Connected() {
		t.Error("a late answer broke the connection")
	}
}

func TestCommand(t *testing.T) {
	for _, old := range []bool{false, true} {
		t.Run(fmt.Sprintf("old=%v", old), func(t *testing.T) {
			srv := startFake(t, amitest.Options{
				OldCommandFormat: old,
				Commands: map[string][]string{
					"sip show peer traveler": {"", "", "  * Name       : traveler", "  Addr->IP     : 127.0.0.1:5070", ""},
				},
			})
			c := dial(t, testConfig(t, srv))
			out, err := c.Command(ctxT(t), "core show channels")
			if err != nil || len(out) != 4 || out[1] != "0 active channels" || !strings.HasSuffix(out[0], "Application(Data)             ") {
				t.Errorf("core show channels = %q, %v", out, err)
			}
			out, err = c.Command(ctxT(t), "sip show peer traveler")
			if want := []string{"", "", "  * Name       : traveler", "  Addr->IP     : 127.0.0.1:5070", ""}; err != nil || !reflect.DeepEqual(out, want) {
				t.Errorf("sip show peer = %q, %v; want %q", out, err, want)
			}
			out, err = c.Command(ctxT(t), "no such cli command")
			if old {
				// Asterisk 13 says Follows even for an unknown command.
				if err != nil || len(out) != 1 || !strings.HasPrefix(out[0], "No such command") {
					t.Errorf("unknown command = %q, %v", out, err)
				}
			} else if !errors.Is(err, ErrActionFailed) || len(out) != 1 || !strings.HasPrefix(out[0], "No such command 'no such cli command'") {
				t.Errorf("unknown command = %q, %v", out, err)
			}
			if _, err := c.Command(ctxT(t), "  "); !errors.Is(err, ErrInvalidHeader) {
				t.Errorf("empty command: %v", err)
			}
		})
	}
}

// A supervised client reconnects and logs in again after the server drops
// it, and its subscriptions carry on.
func TestRunReconnects(t *testing.T) {
	srv := startFake(t, amitest.Options{})
	cfg := testConfig(t, srv)
	var (
		mu     sync.Mutex
		states []string
	)
	cfg.OnStateChange = func(s State, err error) {
		mu.Lock()
		defer mu.Unlock()
		states = append(states, fmt.Sprintf("%v/%v", s, err != nil))
	}
	c := New(cfg)
	events, cancel := c.Subscribe(func(m Message) bool { return m.Event() == "PeerStatus" })
	defer cancel()
	wait := run(t, c)

	srv.Emit(amitest.PeerStatusEvent("traveler", "Registered", netip.MustParseAddrPort("203.0.113.7:5060")))
	if ev := recv(t, events); ev.Get("Address") != "203.0.113.7:5060" {
		t.Errorf("event %v", ev)
	}

	// Asterisk restarts; the first two logins after it are refused.
	srv.RefuseLogins(2)
	srv.DropAll()
	waitFor(t, "disconnect", func() bool { return !c.Connected() })
	if err := c.Ping(ctxT(t)); err != nil && !errors.Is(err, ErrNotConnected) {
		t.Errorf("Ping while disconnected = %v, want ErrNotConnected", err)
	}
	waitFor(t, "reconnect", c.Connected)
	if n := srv.Logins(); n != 2 {
		t.Errorf("%d successful logins, want 2", n)
	}
	if err := c.Ping(ctxT(t)); err != nil {
		t.Errorf("Ping after reconnect: %v", err)
	}
	srv.Emit(amitest.PeerStatusEvent("traveler", "Unregistered", netip.AddrPort{}))
	if ev := recv(t, events); ev.Get("PeerStatus") != "Unregistered" {
		t.Errorf("event after reconnect %v", ev)
	}

	c.Close()
	if err := wait(); !errors.Is(err, ErrClosed) {
		t.Errorf("Run = %v, want ErrClosed", err)
	}
	if _, ok := <-events; ok {
		t.Error("subscription open after Close")
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"connecting/false", "connected/false",
		"disconnected/true",                     // DropAll
		"connecting/false", "disconnected/true", // refused
		"connecting/false", "disconnected/true", // refused
		"connecting/false", "connected/false",
		"disconnected/false", // Close
	}
	if !reflect.DeepEqual(states, want) {
		t.Errorf("state changes\n%q\nwant\n%q", states, want)
	}
}

func TestRunBackoff(t *testing.T) {
	// Nothing listening: attempts back off up to BackoffMax.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var attempts atomic.Int32
	var times []time.Time
	var mu sync.Mutex
	c := New(Config{
		Addr: addr, Username: "u", Logger: discard(),
		BackoffMin: 10 * time.Millisecond, BackoffMax: 80 * time.Millisecond,
		OnStateChange: func(s State, _ error) {
			if s == Connecting {
				attempts.Add(1)
				mu.Lock()
				times = append(times, time.Now())
				mu.Unlock()
			}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, "attempts", func() bool { return attempts.Load() >= 6 })
	if err := c.Ping(ctxT(t)); !errors.Is(err, ErrNotConnected) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("Ping = %v; want ErrNotConnected with the last cause", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, ErrClosed) || !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	// Waits are wait/2..wait of 10, 20, 40, 80, 80 ms.
	for i, min := range []time.Duration{5, 10, 20, 40, 40} {
		if gap := times[i+1].Sub(times[i]); gap < min*time.Millisecond {
			t.Errorf("attempt %d came %v after the previous, want at least %v ms", i+2, gap, min)
		}
	}
	if err := c.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("second Run = %v", err)
	}
}

// A keepalive Ping that gets no Pong ends the connection; Run makes a new
// one.
func TestKeepalive(t *testing.T) {
	srv := startFake(t, amitest.Options{})
	cfg := testConfig(t, srv)
	cfg.PingInterval = 20 * time.Millisecond
	cfg.ActionTimeout = time.Second
	c := New(cfg)
	run(t, c)
	// Pings are answered: the connection stays.
	time.Sleep(100 * time.Millisecond)
	pings := 0
	for _, a := range srv.Received() {
		if a.Get("Action") == "Ping" {
			pings++
		}
	}
	if pings < 2 || srv.Logins() != 1 {
		t.Fatalf("%d pings, %d logins", pings, srv.Logins())
	}
	// Asterisk hangs: Pongs stop.
	srv.SetDelay(func(a string) time.Duration {
		if a == "Ping" {
			return time.Hour
		}
		return 0
	})
	waitFor(t, "a second login", func() bool { return srv.Logins() >= 2 })
	srv.SetDelay(nil)
	waitFor(t, "connected", c.Connected)
}

func TestSubscribe(t *testing.T) {
	srv := startFake(t, amitest.Options{})
	cfg := testConfig(t, srv)
	cfg.EventBuffer = 4
	c := New(cfg)
	all, cancelAll := c.Subscribe(nil)
	status, cancelStatus := c.Subscribe(func(m Message) bool { return m.Event() == "ContactStatus" })
	defer cancelStatus()
	run(t, c)

	// Login with events on brings FullyBooted and SuccessfulAuth.
	if ev := recv(t, all); ev.Event() != "FullyBooted" {
		t.Errorf("first event %v", ev)
	}
	if ev := recv(t, all); ev.Event() != "SuccessfulAuth" {
		t.Errorf("second event %v", ev)
	}

	// Nobody reads all: it fills up and drops; the status subscriber and
	// actions are not held up.
	for i := range 20 {
		srv.Emit(amitest.NewEvent("Heartbeat", "N", fmt.Sprint(i)))
	}
	srv.Emit(amitest.ContactStatusEvent("alice", "sip:alice@203.0.113.7:5060", "Reachable"))
	if ev := recv(t, status); ev.Get("URI") != "sip:alice@203.0.113.7:5060" {
		t.Errorf("status event %v", ev)
	}
	if err := c.Ping(ctxT(t)); err != nil {
		t.Errorf("Ping with a full subscriber: %v", err)
	}
	waitFor(t, "drops", func() bool { return c.DroppedEvents() == 21-4 })
	for i := range 4 {
		if ev := recv(t, all); ev.Get("N") != fmt.Sprint(i) {
			t.Errorf("buffered event %d = %v", i, ev)
		}
	}
	select {
	case ev := <-status:
		t.Errorf("filtered subscriber got %v", ev)
	default:
	}
	cancelAll()
	if _, ok := <-all; ok {
		t.Error("channel open after cancel")
	}
	cancelAll() // twice is fine
	srv.Emit(amitest.ContactStatusEvent("alice", "sip:alice@203.0.113.7:5060", "Removed"))
	if ev := recv(t, status); ev.Get("ContactStatus") != "Removed" {
		t.Errorf("status event %v", ev)
	}

	c.Close()
	ch, cancel := c.Subscribe(nil)
	defer cancel()
	if _, ok := <-ch; ok {
		t.Error("Subscribe after Close gave an open channel")
	}
}

// Events with the ActionID of a finished action (OriginateResponse) go to
// subscribers; the rest of an abandoned list does not.
func TestEventRouting(t *testing.T) {
	var peers []amitest.SIPPeer
	for i := range 3 {
		peers = append(peers, amitest.SIPPeer{Name: fmt.Sprintf("p%d", i)})
	}
	srv := startFake(t, amitest.Options{SIPPeers: peers})
	c := dial(t, testConfig(t, srv))
	events, cancel := c.Subscribe(func(m Message) bool {
		return m.Event() != "FullyBooted" && m.Event() != "SuccessfulAuth" // login's, racing Subscribe
	})
	defer cancel()

	srv.Emit(amitest.NewEvent("OriginateResponse", "ActionID", "some-earlier-id", "Response", "Success"))
	if ev := recv(t, events); ev.Event() != "OriginateResponse" {
		t.Errorf("got %v", ev)
	}

	// The list comes after the caller has given up; a Ping sent after it
	// is answered after it, which tells when the list has gone by.
	srv.SetDelay(func(a string) time.Duration {
		switch a {
		case "SIPpeers":
			return time.Second
		case "Ping":
			return 1200 * time.Millisecond
		}
		return 0
	})
	ctx, cancelList := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancelList()
	if _, _, err := c.ActionList(ctx, "SIPpeers"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ActionList = %v", err)
	}
	if err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	srv.Emit(amitest.NewEvent("Marker"))
	if ev := recv(t, events); ev.Event() != "Marker" {
		t.Errorf("abandoned list leaked to subscribers: %v", ev)
	}
}

func TestLogoff(t *testing.T) {
	srv := startFake(t, amitest.Options{})
	c := dial(t, testConfig(t, srv))
	if err := c.Logoff(ctxT(t)); err != nil {
		t.Fatalf("Logoff: %v", err)
	}
	if err := c.Ping(ctxT(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping after Logoff = %v", err)
	}
	waitFor(t, "server to close", func() bool { return srv.Sessions() == 0 })

	// Under Run, Logoff ends Run instead of causing a reconnect.
	c2 := New(testConfig(t, srv))
	wait := run(t, c2)
	if err := c2.Logoff(ctxT(t)); err != nil {
		t.Fatalf("Logoff: %v", err)
	}
	if err := wait(); !errors.Is(err, ErrClosed) {
		t.Errorf("Run = %v", err)
	}
	if srv.Logins() != 2 {
		t.Errorf("%d logins: Run reconnected after Logoff", srv.Logins())
	}
}

func TestClose(t *testing.T) {
	srv := startFake(t, amitest.Options{})
	c := dial(t, testConfig(t, srv))
	srv.SetDelay(func(string) time.Duration { return time.Hour })
	errc := make(chan error, 1)
	go func() { errc <- c.Ping(context.Background()) }()
	waitFor(t, "the Ping to be sent", func() bool { return len(srv.Received()) == 2 })
	c.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("Ping in flight at Close = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if c.State() != Disconnected {
		t.Errorf("state %v", c.State())
	}
}

// A Dial client whose connection ends reports ErrNotConnected and ends
// its subscriptions.
func TestDialConnectionEnds(t *testing.T) {
	srv := startFake(t, amitest.Options{})
	c := dial(t, testConfig(t, srv))
	events, cancel := c.Subscribe(nil)
	defer cancel()
	srv.DropAll()
	for range events {
	}
	if err := c.Ping(ctxT(t)); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Ping = %v", err)
	}
	if err := c.Run(context.Background()); err == nil {
		t.Error("Run on a Dial client succeeded")
	}
}

// Garbage or an oversized message closes the connection with a clear
// error.
func TestBadInputClosesConnection(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  string
		err  error
	}{
		{"garbage", "this is not AMI\r\n\r\n", ErrProtocol},
		{"oversized", "Event: Big\r\nData: " + strings.Repeat("x", 2000) + "\r\n\r\n", ErrMessageTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFake(t, amitest.Options{})
			cfg := testConfig(t, srv)
			cfg.MaxMessageBytes = 1024
			var (
				mu   sync.Mutex
				why  error
				lost = make(chan struct{})
			)
			cfg.OnStateChange = func(s State, err error) {
				if s == Disconnected && err != nil {
					mu.Lock()
					why = err
					mu.Unlock()
					close(lost)
				}
			}
			c := dial(t, cfg)
			srv.WriteRaw(tc.raw)
			select {
			case <-lost:
			case <-time.After(10 * time.Second):
				t.Fatal("connection not closed")
			}
			mu.Lock()
			defer mu.Unlock()
			if !errors.Is(why, tc.err) {
				t.Errorf("closed because %v, want %v", why, tc.err)
			}
			if err := c.Ping(ctxT(t)); !errors.Is(err, ErrNotConnected) || !errors.Is(err, tc.err) {
				t.Errorf("Ping = %v", err)
			}
			waitFor(t, "server to see the close", func() bool { return srv.Sessions() == 0 })
		})
	}
}

func recv(t *testing.T, ch <-chan Message) Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("channel closed")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return Message{}
}

func TestTLS(t *testing.T) {
	serverTLS, pool := selfSigned(t)
	srv := startFake(t, amitest.Options{TLS: serverTLS})
	cfg := testConfig(t, srv)
	cfg.TLS = &tls.Config{RootCAs: pool}
	c := dial(t, cfg)
	if err := c.Ping(ctxT(t)); err != nil {
		t.Errorf("Ping over TLS: %v", err)
	}
	// A certificate the client does not trust.
	cfg.TLS = &tls.Config{}
	if _, err := Dial(ctxT(t), cfg); err == nil {
		t.Error("Dial trusted an unknown certificate")
	}
	// Plain TCP to a TLS port: no banner.
	cfg.TLS, cfg.DialTimeout = nil, 200*time.Millisecond
	if _, err := Dial(ctxT(t), cfg); err == nil {
		t.Error("plain Dial to a TLS port succeeded")
	}
}

// selfSigned returns a server TLS config for 127.0.0.1 and a pool that
// trusts it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "asterisk.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

// OnStateChange may call the Client, Close included, without deadlock;
// the changes it causes are reported after it returns, in order.
func TestOnStateChangeReentrant(t *testing.T) {
	srv := startFake(t, amitest.Options{})
	cfg := testConfig(t, srv)
	var (
		mu     sync.Mutex
		states []State
		c      *Client
	)
	cfg.OnStateChange = func(s State, err error) {
		mu.Lock()
		states = append(states, s)
		mu.Unlock()
		if s == Connected {
			if err := c.Ping(ctxT(t)); err != nil {
				t.Errorf("Ping from the callback: %v", err)
			}
			c.Close()
		}
	}
	c = New(cfg)
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []State{Connecting, Connected, Disconnected}; !reflect.DeepEqual(states, want) {
		t.Errorf("states %v, want %v", states, want)
	}
}
