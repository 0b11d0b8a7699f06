package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dialgate/dialgate/ami"
	"github.com/dialgate/dialgate/ami/amitest"
	"github.com/dialgate/dialgate/firewall/fwfake"
	"github.com/dialgate/dialgate/firewall/fwtest"
	"github.com/dialgate/dialgate/localapi"
)

func failure(addr string, kind string) ami.SecurityEvent {
	return ami.SecurityEvent{Kind: kind, Service: "SIP", AccountID: "traveler", Transport: "UDP", Remote: netip.AddrPortFrom(netip.MustParseAddr(addr), 5062)}
}

// blockingTest is a daemon on the fake backend with blocking on (AMI
// enabled in the config, nothing connected: events are fed directly).
func blockingTest(t *testing.T, after int) *wdTest {
	t.Helper()
	wt := newWDTest(t, "fake")
	cfg := wt.d.config()
	cfg.AMI.Enabled = true
	cfg.Blocking = BlockingConfig{After: after, Window: Duration{time.Minute}, BlockFor: Duration{time.Hour}}
	wt.d.cfg.Store(&cfg)
	wt.d.mu.Lock()
	err := wt.d.applyStored(context.Background(), false) // the block rule
	wt.d.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	return wt
}

func TestBlockAfterFailures(t *testing.T) {
	ctx := context.Background()
	wt := blockingTest(t, 3)
	fw := wt.fw.(*fwfake.Backend)
	g := wt.d.guard
	stranger := fwtest.OtherV4
	if !fw.Admits(stranger, "udp", 12000) { // RTP is open to all
		t.Fatal("setup: RTP should be open")
	}
	g.onEvent(ctx, failure(stranger.String(), "InvalidPassword"))
	g.onEvent(ctx, failure(stranger.String(), "SuccessfulAuth")) // not a failure
	g.onEvent(ctx, failure(stranger.String(), "ChallengeResponseFailed"))
	if !fw.Admits(stranger, "udp", 12000) {
		t.Fatal("blocked after 2 failures, want 3")
	}
	g.onEvent(ctx, failure(stranger.String(), "InvalidAccountID"))
	if fw.Admits(stranger, "udp", 12000) {
		t.Fatal("not blocked after 3 failures")
	}
	if bs := g.list(time.Now()); len(bs) != 1 || bs[0].Addr != stranger || bs[0].Left < 59*time.Minute {
		t.Errorf("blocked list: %+v", bs)
	}
	recs, _ := wt.d.Audit(localapi.AuditFilter{Action: "block"})
	if len(recs) != 1 || recs[0].Subject != stranger.String() || !strings.Contains(recs[0].Detail, "3 failed authentications") {
		t.Errorf("audit: %+v", recs)
	}

	// The whitelisted client (alice's entry) is never blocked.
	for i := 0; i < 20; i++ {
		g.onEvent(ctx, failure(fwtest.ClientV4.String(), "InvalidPassword"))
	}
	if !fw.Admits(fwtest.ClientV4, "tcp", 22) {
		t.Error("a whitelisted source was blocked")
	}
	// Loopback never, LAN never.
	for i := 0; i < 5; i++ {
		g.onEvent(ctx, failure("127.0.0.1", "InvalidPassword"))
		g.onEvent(ctx, failure("10.1.2.3", "InvalidPassword"))
	}
	if bs := g.list(time.Now()); len(bs) != 1 {
		t.Errorf("blocked: %+v", bs)
	}

	// Whitelisting the blocked stranger (an entry, or a phone grant)
	// releases the block at once.
	if _, err := wt.d.Grant(ctx, GrantRequest{Account: "alice", IP: stranger, Source: "test"}); err != nil {
		t.Fatal(err)
	}
	if !fw.Admits(stranger, "tcp", 22) || len(g.list(time.Now())) != 0 {
		t.Errorf("grant did not release the block: %+v", g.list(time.Now()))
	}
	if recs, _ := wt.d.Audit(localapi.AuditFilter{Action: "unblock"}); len(recs) != 1 || !strings.Contains(recs[0].Detail, "now admitted by") {
		t.Errorf("unblock audit: %+v", recs)
	}
}

// Failures older than the window do not count; blocking off blocks
// nothing; parallel events block once.
func TestBlockWindowOffAndParallel(t *testing.T) {
	ctx := context.Background()
	wt := blockingTest(t, 3)
	g := wt.d.guard
	a := "192.0.2.50"
	g.onEvent(ctx, failure(a, "InvalidPassword"))
	g.onEvent(ctx, failure(a, "InvalidPassword"))
	g.mu.Lock()
	for i := range g.fails[netip.MustParseAddr(a)] {
		g.fails[netip.MustParseAddr(a)][i] = time.Now().Add(-2 * time.Minute)
	}
	g.mu.Unlock()
	g.onEvent(ctx, failure(a, "InvalidPassword"))
	if len(g.list(time.Now())) != 0 {
		t.Error("old failures counted")
	}

	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); g.onEvent(ctx, failure("192.0.2.60", "InvalidPassword")) }()
	}
	wg.Wait()
	if recs, _ := wt.d.Audit(localapi.AuditFilter{Action: "block"}); len(recs) != 1 {
		t.Errorf("50 parallel failures: %d block records, want 1", len(recs))
	}

	off := blockingTest(t, 0)
	for i := 0; i < 10; i++ {
		off.d.guard.onEvent(ctx, failure(a, "InvalidPassword"))
	}
	if len(off.d.guard.list(time.Now())) != 0 || off.d.config().FirewallRules().Block {
		t.Error("blocking off still blocks")
	}
}

// A scan from invented addresses cannot grow the guard without limit.
func TestBlockGuardBounded(t *testing.T) {
	ctx := context.Background()
	wt := blockingTest(t, 3)
	g := wt.d.guard
	for i := 0; i < maxTracked+5000; i++ {
		g.onEvent(ctx, failure(fmt.Sprintf("100.%d.%d.%d", 64+i>>16&63, i>>8&255, i&255), "InvalidPassword"))
	}
	g.mu.Lock()
	n, m := len(g.fails), len(g.order)
	g.mu.Unlock()
	if n > maxTracked || m > maxTracked {
		t.Errorf("tracking %d/%d sources, bound %d", n, m, maxTracked)
	}
}

// The AMI wiring: security events from a faithful fake Asterisk, as the
// Asterisk 20 recording has them, block the guesser.
func TestBlockFromAMIEvents(t *testing.T) {
	srv, err := amitest.Start(amitest.Options{Username: "dialgate", Secret: "s3cr3t-Sixteen+chars", FailedLoginDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	wt := blockingTest(t, 2)
	fw := wt.fw.(*fwfake.Backend)
	cfg := wt.d.config()
	cfg.AMI = AMIConfig{Enabled: true, Addr: srv.Addr(), Username: "dialgate", Secret: "s3cr3t-Sixteen+chars", LookupTimeout: Duration{time.Second}}
	wt.d.cfg.Store(&cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wt.d.startAMI(ctx, cfg.AMI)
	eventually(t, 5*time.Second, "AMI logged in", func() bool { return wt.d.amiUp.Load() })
	guesser := netip.MustParseAddr("203.0.113.9")
	if !fw.Admits(guesser, "udp", 12000) { // RTP is open to all
		t.Fatal("setup: RTP should be open")
	}
	for _, ev := range []amitest.Message{
		amitest.SecurityEvent("InvalidPassword", "SIP", "traveler", "UDP", netip.AddrPortFrom(guesser, 5062), netip.MustParseAddrPort("203.0.113.1:5060")),
		amitest.NewEvent("PeerStatus", "Privilege", "system,all", "Peer", "SIP/traveler", "PeerStatus", "Registered", "Address", "203.0.113.9:5062"),
		amitest.SecurityEvent("ChallengeResponseFailed", "PJSIP", "traveler", "UDP", netip.AddrPortFrom(guesser, 5064), netip.MustParseAddrPort("203.0.113.1:5060")),
	} {
		srv.Emit(ev)
	}
	eventually(t, 5*time.Second, "the guesser blocked", func() bool { return !fw.Admits(guesser, "udp", 12000) })
}
