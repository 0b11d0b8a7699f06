package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/ami/amitest"
	"github.com/dialgate/dialgate/firewall/fwtest"
)

// A password guesser reported by Asterisk's security events is dropped by
// the kernel for every service, on both backends; a whitelisted trunk
// with the same failures never is; blocks list and clear work; a grant
// releases a block.
func TestBlockingGuessers(t *testing.T) {
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			e := newE2E(t)
			e.lab.Echo(t, "tcp", 22)
			e.lab.Echo(t, "udp", 12000)
			srv := fakeAsterisk(t, e.lab, amitest.Options{})
			e.appendConfig(amiConf(srv, amitest.DefaultSecret, "") +
				"[firewall]\nbackend = \"" + backend + "\"\nlan = []\n[blocking]\nafter = 3\nwindow = \"1m\"\nblock_for = \"1h\"\n")
			e.ok("init")
			e.startServe()
			e.ok("account", "add", "trunk", "--perms", "1,2")
			e.ok("allow", "ip", "trunk", fwtest.ClientV4.String())
			guesser, trunk := fwtest.OtherV4, fwtest.ClientV4
			rtp := func(from string, want bool) fwtest.Probe {
				return fwtest.Probe{Proto: "udp", Src: netip.MustParseAddr(from), Dst: fwtest.ServerV4, Port: 12000, Want: want}
			}
			e.lab.Check(t, probe, rtp(guesser.String(), true), rtp(trunk.String(), true))
			fail := func(from string) {
				srv.Emit(amitest.SecurityEvent("InvalidPassword", "PJSIP", "100", "UDP",
					netip.AddrPortFrom(netip.MustParseAddr(from), 5060), netip.AddrPortFrom(fwtest.ServerV4, 5060)))
			}
			for i := 0; i < 3; i++ {
				fail(guesser.String())
				fail(trunk.String())
			}
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(e.ok("blocks", "list"), guesser.String()) && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			out := e.ok("blocks", "list")
			if !strings.Contains(out, guesser.String()) || strings.Contains(out, trunk.String()) {
				t.Fatalf("blocks list:\n%s", out)
			}
			// Dropped for everything, RTP (open to all) included; the
			// trunk with the same failures still passes.
			e.lab.Check(t, probe, rtp(guesser.String(), false), rtp(trunk.String(), true),
				fwtest.Probe{Proto: "tcp", Src: guesser, Dst: fwtest.ServerV4, Port: 22, Want: false})
			if out := e.ok("audit", "--action", "block"); !strings.Contains(out, guesser.String()) {
				t.Errorf("audit:\n%s", out)
			}
			e.fails(exitError, "not blocked", "blocks", "clear", "192.0.2.99")
			e.fails(exitUsage, "give one address, or --all", "blocks", "clear")
			if out := e.ok("blocks", "clear", guesser.String()); !strings.Contains(out, guesser.String()+" unblocked") {
				t.Errorf("blocks clear: %s", out)
			}
			e.lab.Check(t, probe, rtp(guesser.String(), true))
			// Blocked again; a phone-door style grant (an entry here)
			// releases it at once.
			for i := 0; i < 3; i++ {
				fail(guesser.String())
			}
			deadline = time.Now().Add(5 * time.Second)
			for !strings.Contains(e.ok("blocks", "list"), guesser.String()) && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			e.ok("account", "add", "traveler", "--perms", "8")
			e.ok("allow", "ip", "traveler", guesser.String())
			if out := e.ok("blocks", "list"); strings.Contains(out, guesser.String()) {
				t.Errorf("still blocked after being whitelisted:\n%s", out)
			}
			e.lab.Check(t, probe, fwtest.Probe{Proto: "tcp", Src: guesser, Dst: fwtest.ServerV4, Port: 22, Want: true})
		})
	}
}
