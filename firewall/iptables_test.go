package firewall_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/firewall/fwtest"
)

const probeTimeout = 400 * time.Millisecond

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// newBackend makes a backend whose netlink socket lives in the lab's
// server namespace. Every later call must run inside fwtest.Do(server)
// too, since iptables runs in the calling thread's namespace.
func newBackend(t *testing.T, lab *fwtest.Lab) *firewall.IPTables {
	t.Helper()
	var b *firewall.IPTables
	err := fwtest.Do(lab.Server, func() (err error) {
		b, err = firewall.NewIPTables(quietLog)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func in(t *testing.T, lab *fwtest.Lab, fn func() error) {
	t.Helper()
	if err := fwtest.Do(lab.Server, fn); err != nil {
		t.Fatal(err)
	}
}

func host(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// servicePort picks one port of each code to probe.
var servicePort = map[int]struct {
	proto string
	port  uint16
}{
	1: {"udp", 5060}, 2: {"tcp", 5061}, 3: {"udp", 4569}, 4: {"tcp", 443}, 5: {"tcp", 9001},
	6: {"tcp", 21}, 7: {"udp", 69}, 8: {"tcp", 22}, 9: {"tcp", 4445},
}

func echoAll(t *testing.T, lab *fwtest.Lab) {
	var tcp, udp []uint16
	for _, sp := range servicePort {
		if sp.proto == "tcp" {
			tcp = append(tcp, sp.port)
		} else {
			udp = append(udp, sp.port)
		}
	}
	lab.Echo(t, "tcp", tcp...)
	lab.Echo(t, "udp", udp...)
}

// TestPermissionCodes whitelists the client address for one code at a
// time and sends real packets: the code's service passes from the
// whitelisted address, is dropped from the other address, and the other
// services stay dropped even for the whitelisted one.
func TestPermissionCodes(t *testing.T) {
	lab := fwtest.NewLab(t)
	b := newBackend(t, lab)
	echoAll(t, lab)
	cfg := firewall.DefaultConfig()
	cfg.LAN = nil
	fams := []struct{ client, other, server netip.Addr }{
		{fwtest.ClientV4, fwtest.OtherV4, fwtest.ServerV4},
		{fwtest.ClientV6, fwtest.OtherV6, fwtest.ServerV6},
	}
	for code := 0; code < firewall.NumCodes; code++ {
		t.Run(firewall.CodeName(code), func(t *testing.T) {
			st := firewall.State{Config: cfg}
			for _, f := range fams {
				st.Add(code, host(f.client), 0)
			}
			in(t, lab, func() error { return b.Apply(context.Background(), st) })
			var probes []fwtest.Probe
			for _, f := range fams {
				for c, sp := range servicePort {
					probes = append(probes,
						fwtest.Probe{Proto: sp.proto, Src: f.client, Dst: f.server, Port: sp.port, Want: code == 0 || c == code},
						fwtest.Probe{Proto: sp.proto, Src: f.other, Dst: f.server, Port: sp.port, Want: false})
				}
			}
			lab.Check(t, probeTimeout, probes...)
		})
	}
}

func TestLANRanges(t *testing.T) {
	lab := fwtest.NewLab(t)
	b := newBackend(t, lab)
	lab.Echo(t, "tcp", 22)
	lab.Echo(t, "udp", 5060)
	for _, lan := range []bool{true, false} {
		t.Run(fmt.Sprintf("lan=%v", lan), func(t *testing.T) {
			cfg := firewall.DefaultConfig()
			if !lan {
				cfg.LAN = nil
			}
			in(t, lab, func() error { return b.Apply(context.Background(), firewall.State{Config: cfg}) })
			lab.Check(t, probeTimeout,
				fwtest.Probe{Proto: "tcp", Src: fwtest.ClientLAN, Dst: fwtest.ServerLAN, Port: 22, Want: lan},
				fwtest.Probe{Proto: "udp", Src: fwtest.ClientLAN, Dst: fwtest.ServerLAN, Port: 5060, Want: lan},
				fwtest.Probe{Proto: "tcp", Src: fwtest.ClientV4, Dst: fwtest.ServerV4, Port: 22, Want: false},
			)
		})
	}
}

// TestOpenAndTimeouts covers the mandatory open ports (RTP) and a member
// with a kernel timeout, which must stop admitting once it runs out.
func TestOpenAndTimeouts(t *testing.T) {
	lab := fwtest.NewLab(t)
	b := newBackend(t, lab)
	lab.Echo(t, "udp", 12000, 5060)
	cfg := firewall.DefaultConfig()
	cfg.LAN = nil
	st := firewall.State{Config: cfg}
	st.Add(firewall.CodeSIPUDP, host(fwtest.ClientV4), 2*time.Second)
	in(t, lab, func() error { return b.Apply(context.Background(), st) })
	lab.Check(t, probeTimeout,
		fwtest.Probe{Proto: "udp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 12000, Want: true},
		fwtest.Probe{Proto: "udp", Src: fwtest.ClientV4, Dst: fwtest.ServerV4, Port: 5060, Want: true},
	)
	time.Sleep(3 * time.Second)
	lab.Check(t, probeTimeout,
		fwtest.Probe{Proto: "udp", Src: fwtest.ClientV4, Dst: fwtest.ServerV4, Port: 5060, Want: false},
	)
}

// TestApplyIdempotent checks that a second Apply of the same state leaves
// the chain alone and that Status reads back what was applied.
func TestApplyIdempotent(t *testing.T) {
	lab := fwtest.NewLab(t)
	b := newBackend(t, lab)
	st := firewall.State{Config: firewall.DefaultConfig()}
	st.Add(8, netip.MustParsePrefix("198.51.100.0/24"), 0)
	st.Add(1, host(fwtest.ClientV6), time.Hour)
	var before, after string
	in(t, lab, func() error {
		ctx := context.Background()
		if err := b.Apply(ctx, st); err != nil {
			return err
		}
		out, err := lab.Exec(lab.Server, "iptables-save", "-t", "filter")
		before = stripCounters(out)
		if err != nil {
			return err
		}
		if err := b.Apply(ctx, st); err != nil {
			return err
		}
		out, err = lab.Exec(lab.Server, "iptables-save", "-t", "filter")
		after = stripCounters(out)
		return err
	})
	if before != after {
		t.Errorf("second apply changed the ruleset:\n%s\n---\n%s", before, after)
	}
	var s firewall.Status
	in(t, lab, func() (err error) { s, err = b.Status(context.Background()); return err })
	if !s.Loaded() {
		t.Fatalf("status says not loaded: %+v", s.Families)
	}
	found := map[string]firewall.SetEntry{}
	for _, set := range s.Sets {
		if !set.Exists {
			t.Errorf("set %s missing", set.Name)
		}
		for _, e := range set.Entries {
			found[set.Name+" "+e.Prefix.String()] = e
		}
	}
	if e, ok := found["dialgate-8-v4 198.51.100.0/24"]; !ok || e.Timeout != 0 {
		t.Errorf("static entry: got %+v ok=%v", e, ok)
	}
	if e, ok := found["dialgate-1-v6 2001:db8::10/128"]; !ok || e.Timeout < 59*time.Minute || e.Timeout > time.Hour {
		t.Errorf("timed entry: got %+v ok=%v", e, ok)
	}
	if len(found) != 2 {
		t.Errorf("want 2 members, got %v", found)
	}
	// A rule added by hand in front of our jump is repaired by Apply.
	in(t, lab, func() error {
		if _, err := lab.Exec(lab.Server, "iptables", "-I", "INPUT", "1", "-p", "tcp", "--dport", "1", "-j", "ACCEPT"); err != nil {
			return err
		}
		if err := b.Apply(context.Background(), st); err != nil {
			return err
		}
		s, err := b.Status(context.Background())
		if err == nil && !s.Loaded() {
			err = fmt.Errorf("jump not repaired: %+v", s.Families)
		}
		return err
	})
}

func stripCounters(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "#") || strings.HasPrefix(l, ":") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// TestRebuildUnderTraffic hammers the server with new connections from a
// whitelisted address while the chain and sets are rebuilt over and over:
// not one allowed connection may fail.
func TestRebuildUnderTraffic(t *testing.T) {
	lab := fwtest.NewLab(t)
	b := newBackend(t, lab)
	lab.Echo(t, "tcp", 22)
	lab.Echo(t, "udp", 5060)
	cfg := firewall.DefaultConfig()
	cfg.LAN = nil
	st := firewall.State{Config: cfg}
	st.Add(firewall.CodeSSH, host(fwtest.ClientV4), 0)
	st.Add(firewall.CodeSIPUDP, host(fwtest.ClientV4), 0)
	for i := 0; i < 200; i++ { // some bulk so each swap has work to do
		st.Add(firewall.CodeSSH, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i), 1}), 32), 0)
	}
	ctx := context.Background()
	in(t, lab, func() error { return b.Apply(ctx, st) })

	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, proto := range []string{"tcp", "udp"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			port := uint16(22)
			if proto == "udp" {
				port = 5060
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				reached, err := lab.Reach(proto, fwtest.ClientV4, fwtest.ServerV4, port, time.Second)
				if err != nil || !reached {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	const rebuilds = 10
	for i := 0; i < rebuilds; i++ {
		// Alternate the config so the chain really is replaced each time.
		st.Config.Reject = i%2 == 0
		in(t, lab, func() error { return b.Rebuild(ctx, st) })
	}
	close(stop)
	wg.Wait()
	t.Logf("%d rebuilds under traffic: %d connections ok, %d failed", rebuilds, ok.Load(), failed.Load())
	if failed.Load() != 0 || ok.Load() < 20 {
		t.Fatalf("rebuild dropped allowed flows: ok=%d failed=%d", ok.Load(), failed.Load())
	}
	lab.Check(t, probeTimeout, fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: false})
}

func TestRemove(t *testing.T) {
	lab := fwtest.NewLab(t)
	b := newBackend(t, lab)
	lab.Echo(t, "tcp", 22)
	cfg := firewall.DefaultConfig()
	cfg.LAN = nil
	in(t, lab, func() error { return b.Apply(context.Background(), firewall.State{Config: cfg}) })
	lab.Check(t, probeTimeout, fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: false})
	in(t, lab, func() error { return b.Remove(context.Background()) })
	lab.Check(t, probeTimeout, fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: true})
	for _, cmd := range [][]string{{"iptables-save"}, {"ip6tables-save"}, {"ipset", "list", "-n"}} {
		out, err := lab.Exec(lab.Server, cmd...)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.ToLower(out), "dialgate") {
			t.Errorf("%s still shows dialgate after Remove:\n%s", cmd[0], out)
		}
	}
}

// TestSyncMembers checks the fast path: only the named prefixes are
// touched, each gets exactly the membership the state says, and removing
// what is not there is not an error.
func TestSyncMembers(t *testing.T) {
	lab := fwtest.NewLab(t)
	b := newBackend(t, lab)
	ctx := context.Background()
	x, y := host(fwtest.ClientV4), host(fwtest.OtherV4)
	base := firewall.State{Config: firewall.DefaultConfig()}
	base.Add(firewall.CodeSSH, y, 0)
	in(t, lab, func() error { return b.Apply(ctx, base) })

	want := firewall.State{Config: base.Config}
	want.Add(firewall.CodeSSH, x, 0)
	want.Add(firewall.CodeSIPUDP, x, time.Hour)
	// y is absent from want, but not named: it must stay.
	in(t, lab, func() error { return b.SyncMembers(ctx, want, []netip.Prefix{x}) })
	members := func() map[string]time.Duration {
		out := map[string]time.Duration{}
		in(t, lab, func() error {
			s, err := b.Status(ctx)
			for _, set := range s.Sets {
				for _, e := range set.Entries {
					out[set.Name+" "+e.Prefix.String()] = e.Timeout
				}
			}
			return err
		})
		return out
	}
	got := members()
	if _, ok := got["dialgate-8-v4 "+y.String()]; !ok {
		t.Errorf("unnamed prefix touched: %v", got)
	}
	if d, ok := got["dialgate-8-v4 "+x.String()]; !ok || d != 0 {
		t.Errorf("permanent member: %v", got)
	}
	if d := got["dialgate-1-v4 "+x.String()]; d < 59*time.Minute {
		t.Errorf("timed member: %v", got)
	}
	in(t, lab, func() error {
		return b.SyncMembers(ctx, firewall.State{Config: base.Config}, []netip.Prefix{x, host(fwtest.ClientV6)})
	})
	got = members()
	if len(got) != 1 {
		t.Errorf("after removal want only %s, got %v", y, got)
	}
	in(t, lab, func() error { return b.DelMember(ctx, firewall.CodeFOP, x) })
}

// sipMessage is a REGISTER as a real softphone sends it (shape from the
// recorded Asterisk fixtures), for the domain given.
func sipMessage(method, domain string) []byte {
	return []byte(method + " sip:" + domain + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 203.0.113.20:5070;branch=z9hG4bK-19434-1-0;rport\r\n" +
		"From: <sip:traveler@" + domain + ">;tag=19434SIPpTag001\r\n" +
		"To: <sip:traveler@" + domain + ">\r\n" +
		"Call-ID: 1-19434@203.0.113.20\r\nCSeq: 1 " + method + "\r\n" +
		"Contact: <sip:traveler@203.0.113.20:5070>\r\nMax-Forwards: 70\r\nExpires: 3600\r\n" +
		"User-Agent: sipp-harness\r\nContent-Length: 0\r\n\r\n")
}

// TestSIPSecretDomain sends real SIP datagrams from a stranger's address:
// a REGISTER for the secret domain reaches the PBX, one for another
// domain and an OPTIONS scan do not; a whitelisted trunk's OPTIONS still
// passes. Other traffic is unaffected.
func TestSIPSecretDomain(t *testing.T) {
	lab := fwtest.NewLab(t)
	b := newBackend(t, lab)
	lab.Echo(t, "udp", 5060)
	cfg := firewall.DefaultConfig()
	cfg.LAN = nil
	cfg.SIPDomains = []string{"xq356jq.example.org", "second.example"}
	st := firewall.State{Config: cfg}
	st.Add(firewall.CodeSIPUDP, host(fwtest.ClientV4), 0)
	st.Add(firewall.CodeSIPUDP, host(fwtest.ClientV6), 0)
	in(t, lab, func() error { return b.Apply(context.Background(), st) })
	sip := func(src, dst netip.Addr, msg []byte, want bool) fwtest.Probe {
		return fwtest.Probe{Proto: "udp", Src: src, Dst: dst, Port: 5060, Want: want, Payload: msg}
	}
	lab.Check(t, probeTimeout,
		sip(fwtest.OtherV4, fwtest.ServerV4, sipMessage("REGISTER", "xq356jq.example.org"), true),
		sip(fwtest.OtherV4, fwtest.ServerV4, sipMessage("REGISTER", "second.example"), true),
		sip(fwtest.OtherV6, fwtest.ServerV6, sipMessage("REGISTER", "xq356jq.example.org"), true),
		sip(fwtest.OtherV4, fwtest.ServerV4, sipMessage("REGISTER", "pbx.example.org"), false),
		sip(fwtest.OtherV4, fwtest.ServerV4, sipMessage("OPTIONS", "xq356jq.example.org"), false),
		sip(fwtest.OtherV6, fwtest.ServerV6, sipMessage("OPTIONS", "203.0.113.1"), false),
		sip(fwtest.ClientV4, fwtest.ServerV4, sipMessage("OPTIONS", "pbx.example.org"), true),
		sip(fwtest.ClientV6, fwtest.ServerV6, sipMessage("REGISTER", "pbx.example.org"), true),
		sip(fwtest.OtherV4, fwtest.ServerV4, []byte("not sip"), false),
	)
}
