package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dialgate/dialgate/daemon"
	"github.com/dialgate/dialgate/firewall/fwtest"
	"github.com/dialgate/dialgate/localapi"
)

// fqdnSetup runs a real name server in the client namespace and a daemon
// whose resolver asks it, with a fast refresher.
func fqdnSetup(t testing.TB, conf string) (*e2e, *fwtest.DNS) {
	t.Helper()
	e := newE2E(t)
	e.lab.Echo(t, "tcp", 22)
	ns := fwtest.StartDNS(t, e.lab.Client, fwtest.ClientV4, e.lab.Server)
	e.appendConfig("[fqdn]\n" + conf)
	e.ok("init")
	e.startServe()
	e.ok("account", "add", "dyn", "--perms", "8")
	return e, ns
}

// eventually polls the probes until they all hold or the limit passes.
func (e *e2e) eventually(limit time.Duration, probes ...fwtest.Probe) {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok := true
		for _, p := range probes {
			got, err := e.lab.Reach(p.Proto, p.Src, p.Dst, p.Port, 300*time.Millisecond)
			if err != nil || got != p.Want {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			e.lab.Check(e.t, probe, probes...) // reports which one fails
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func from(a netip.Addr, want bool) fwtest.Probe {
	return fwtest.Probe{Proto: "tcp", Src: a, Dst: fwtest.ServerV4, Port: 22, Want: want}
}

// TestRefresherFollowsDNS: a record changes, the set follows within an
// interval; the name server dies, the last-known address stays until the
// grace period ends, then goes, with an audit record.
func TestRefresherFollowsDNS(t *testing.T) {
	e, ns := fqdnSetup(t, "interval = \"1s\"\ntick = \"200ms\"\ntimeout = \"500ms\"\ngrace = \"4s\"\n")
	ns.Set("home.dyn.example", fwtest.ClientV4)
	e.ok("allow", "fqdn", "dyn", "home.dyn.example")
	e.lab.Check(t, probe, from(fwtest.ClientV4, true), from(fwtest.OtherV4, false))

	ns.Set("home.dyn.example", fwtest.OtherV4)
	e.eventually(3*time.Second, from(fwtest.ClientV4, false), from(fwtest.OtherV4, true))

	ns.Stop()
	died := time.Now()
	time.Sleep(2 * time.Second) // two intervals without an answer
	e.lab.Check(t, probe, from(fwtest.OtherV4, true))
	if fl := e.ok("fqdn", "list"); !strings.Contains(fl, fwtest.OtherV4.String()) {
		t.Fatalf("last-known address gone before the grace period:\n%s", fl)
	}
	e.eventually(6*time.Second, from(fwtest.OtherV4, false))
	if time.Since(died) < 4*time.Second {
		t.Fatalf("address dropped after %v, before the 4s grace", time.Since(died))
	}
	if a := e.ok("audit", "--limit", "0"); !strings.Contains(a, "fqdn.expire") {
		t.Errorf("no audit record for the expiry:\n%s", a)
	}
}

// TestRefresherPrivateAnswers: a public name that resolves to a private
// or unspecified address is not whitelisted unless the entry was forced.
func TestRefresherPrivateAnswers(t *testing.T) {
	e, ns := fqdnSetup(t, "timeout = \"500ms\"\n")
	ns.Set("lying.dyn.example", netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("0.0.0.0"))
	out := e.ok("allow", "fqdn", "dyn", "lying.dyn.example")
	if !strings.Contains(out, "did not resolve") {
		t.Errorf("allow should warn that nothing usable came back:\n%s", out)
	}
	for _, s := range e.status().Firewall.Sets {
		if len(s.Entries) > 0 && s.Code == 8 {
			t.Fatalf("private answer whitelisted: %+v", s.Entries)
		}
	}
	ns.Set("lan.dyn.example", fwtest.ClientLAN)
	e.ok("allow", "fqdn", "dyn", "lan.dyn.example", "--force")
	if fl := e.ok("fqdn", "list"); !strings.Contains(fl, fwtest.ClientLAN.String()) {
		t.Fatalf("forced entry should take the private answer:\n%s", fl)
	}
}

// TestRefresherDeadNamesCostOneTimeout: 1 000 names, 5% of which never
// answer: a refresh takes about one per-name timeout, not one per dead
// name (50), because lookups run concurrently.
func TestRefresherDeadNamesCostOneTimeout(t *testing.T) {
	const names, timeout = 1000, time.Second
	e, ns := fqdnSetup(t, fmt.Sprintf("timeout = %q\ninterval = \"1h\"\n", timeout))
	for i := 0; i < names; i++ {
		ns.Set(fmt.Sprintf("n%d.dyn.example", i), netip.AddrFrom4([4]byte{198, 51, byte(i / 250), byte(i%250 + 1)}))
	}
	cfg, err := daemon.LoadConfig(e.cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	c := localapi.NewClient(cfg.Socket)
	var wg sync.WaitGroup
	errs := make(chan error, names)
	work := make(chan int)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				_, err := c.AddEntry(context.Background(), localapi.AddEntryRequest{Account: "dyn", Kind: "fqdn", Value: fmt.Sprintf("n%d.dyn.example", i)})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := 0; i < names; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := 0; i < names; i += 20 {
		ns.Kill(fmt.Sprintf("n%d.dyn.example", i)) // 50 dead names
	}
	start := time.Now()
	fs, err := c.RefreshFQDNs(context.Background())
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, f := range fs {
		if f.LastError != "" {
			failed++
			if len(f.Addrs) != 1 {
				t.Errorf("%s lost its last-known address: %v", f.Name, f.Addrs)
			}
		}
	}
	t.Logf("refresh of %d names (%d dead) took %v", len(fs), failed, took)
	if len(fs) != names || failed != names/20 {
		t.Fatalf("got %d names, %d failed; want %d and %d", len(fs), failed, names, names/20)
	}
	// Serially the dead names alone would take 50 timeouts.
	if took > 10*timeout {
		t.Fatalf("refresh took %v: dead names are not resolved concurrently", took)
	}
}

// TestProviders: catalogue and custom providers become service-limited
// entries resolved by the refresher; disabling takes them out.
func TestProviders(t *testing.T) {
	e, ns := fqdnSetup(t, "timeout = \"500ms\"\n")
	e.lab.Echo(t, "udp", 5060)
	sipFrom := func(a netip.Addr, want bool) fwtest.Probe {
		dst := fwtest.ServerV4
		if a.Is6() {
			dst = fwtest.ServerV6
		}
		return fwtest.Probe{Proto: "udp", Src: a, Dst: dst, Port: 5060, Want: want}
	}
	ns.Set("sip.telnyx.com", fwtest.ClientV6)
	ns.Set("sip.acme.example", fwtest.ClientV4)
	if l := e.ok("providers", "list"); !strings.Contains(l, "telnyx") || strings.Contains(l, "true") {
		t.Fatalf("catalogue:\n%s", l)
	}
	before := e.kernel()
	e.fails(exitError, `provider "nosuch"`, "providers", "enable", "telnyx", "nosuch")
	if e.kernel() != before {
		t.Fatal("a refused enable changed the kernel")
	}
	e.fails(exitUsage, "--all", "providers", "enable")
	e.fails(exitError, "service 8", "providers", "add", "evil", "--fqdn", "x.example", "--services", "8")
	e.ok("providers", "add", "acme", "--fqdn", "sip.acme.example", "--cidr", fwtest.OtherV4.String(), "--services", "1")
	e.ok("providers", "enable", "acme", "telnyx")
	e.lab.Check(t, probe,
		sipFrom(fwtest.ClientV4, true), sipFrom(fwtest.OtherV4, true), sipFrom(fwtest.ClientV6, true),
		sipFrom(fwtest.OtherV6, false), from(fwtest.ClientV4, false))
	e.ok("providers", "disable", "acme")
	e.lab.Check(t, probe, sipFrom(fwtest.ClientV4, false), sipFrom(fwtest.OtherV4, false), sipFrom(fwtest.ClientV6, true))
	if l := e.ok("providers", "list"); !strings.Contains(l, "acme") {
		t.Fatalf("custom provider gone from the list:\n%s", l)
	}
}
