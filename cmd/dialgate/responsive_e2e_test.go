package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/ami/amitest"
	"github.com/dialgate/dialgate/firewall/fwtest"
)

// sipRequest is a minimal SIP request as a softphone sends it.
func sipRequest(method string) []byte {
	return []byte(method + " sip:pbx.example.org SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 203.0.113.20:5062;branch=z9hG4bK-1;rport\r\n" +
		"From: <sip:traveler@pbx.example.org>;tag=1\r\nTo: <sip:traveler@pbx.example.org>\r\n" +
		"Call-ID: 1@203.0.113.20\r\nCSeq: 1 " + method + "\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
}

// Zero-touch traveler, end to end on both backends: with [responsive] on,
// a phone nobody whitelisted can REGISTER (UDP, rate-limited) but not
// call; when Asterisk reports its extension registered from that address
// (the extension is bound to an account), its INVITE passes; when it
// unregisters, the grant ends.
func TestResponsiveTraveler(t *testing.T) {
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			e := newE2E(t)
			e.lab.Echo(t, "udp", 5060)
			srv := fakeAsterisk(t, e.lab, amitest.Options{})
			e.appendConfig(amiConf(srv, amitest.DefaultSecret, "") +
				"[firewall]\nbackend = \"" + backend + "\"\nlan = []\n[responsive]\nenabled = true\nper_minute = 6\nburst = 3\n")
			e.ok("init")
			e.startServe()
			e.ok("account", "add", "traveler", "--perms", "8")
			e.ok("account", "set", "traveler", "--extension", "201")
			phone := fwtest.OtherV4
			sip := func(method string, want bool) fwtest.Probe {
				return fwtest.Probe{Proto: "udp", Src: phone, Dst: fwtest.ServerV4, Port: 5060, Want: want, Payload: sipRequest(method)}
			}
			e.lab.Check(t, probe, sip("REGISTER", true), sip("INVITE", false), sip("OPTIONS", false))

			srv.Emit(amitest.PeerStatusEvent("201", "Registered", netip.AddrPortFrom(phone, 5060)))
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(e.ok("grants", "list"), phone.String()) && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			out := e.ok("grants", "list")
			if !strings.Contains(out, phone.String()) || !strings.Contains(out, "phone:register") {
				t.Fatalf("grants after the registration:\n%s", out)
			}
			// SIP only: the INVITE passes, SSH (the account's service) does not.
			e.lab.Echo(t, "tcp", 22)
			e.lab.Check(t, probe, sip("INVITE", true),
				fwtest.Probe{Proto: "tcp", Src: phone, Dst: fwtest.ServerV4, Port: 22, Want: false})

			srv.Emit(amitest.PeerStatusEvent("201", "Unregistered", netip.AddrPort{}))
			deadline = time.Now().Add(5 * time.Second)
			for strings.Contains(e.ok("grants", "list"), phone.String()) && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			if out := e.ok("grants", "list"); strings.Contains(out, phone.String()) {
				t.Fatalf("grant survived the unregister:\n%s", out)
			}
			e.lab.Check(t, probe, sip("INVITE", false))
		})
	}
}
