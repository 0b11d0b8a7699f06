package firewall_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/firewall/fwtest"
)

// The integration tests below run once per backend, each in a lab of its
// own: two backends are never loaded in one namespace at once.

const probeTimeout = 400 * time.Millisecond

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// backend is one Backend implementation under test.
type backend struct {
	name string
	// new returns the backend bound to the lab's server namespace.
	new func(t testing.TB, lab *fwtest.Lab) firewall.Backend
	// ruleset prints the kernel's filtering state with the backend's own
	// tools (counters and times left stripped), to compare before and
	// after an Apply.
	ruleset func(t testing.TB, lab *fwtest.Lab) string
	// tamper edits the kernel by hand the way an administrator might, in
	// a way the next Apply must repair. What Apply rightly leaves alone
	// (the host's own rules) undo takes back.
	tamper func(lab *fwtest.Lab) (undo func() error, err error)
}

var backends = []backend{
	{name: "iptables", new: newIPTables, ruleset: iptablesRuleset, tamper: iptablesTamper},
	{name: "nftables", new: newNFTables, ruleset: nftRuleset, tamper: nftTamper},
}

// eachBackend runs fn as a subtest per backend.
func eachBackend(t *testing.T, fn func(t *testing.T, bk backend)) {
	for _, bk := range backends {
		t.Run(bk.name, func(t *testing.T) { fn(t, bk) })
	}
}

// newIPTables makes an iptables backend whose netlink socket lives in the
// lab's server namespace. Every later call must run inside
// fwtest.Do(server) too, since iptables runs in the calling thread's
// namespace.
func newIPTables(t testing.TB, lab *fwtest.Lab) firewall.Backend {
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

// newNFTables makes an nftables backend bound to the lab's server
// namespace by descriptor, and creates it from inside that namespace as
// well: should the descriptor ever be ignored, it still lands in the lab,
// never in the host's namespace.
func newNFTables(t testing.TB, lab *fwtest.Lab) firewall.Backend {
	t.Helper()
	b, err := nftablesIn(lab, lab.Server, lab.Server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// nftablesIn creates, on a thread in namespace from, an nftables backend
// bound to namespace target.
func nftablesIn(lab *fwtest.Lab, from, target string) (*firewall.NFTables, error) {
	var b *firewall.NFTables
	err := fwtest.Do(from, func() error {
		ns, err := netns.GetFromName(target)
		if err != nil {
			return err
		}
		defer ns.Close()
		b, err = firewall.NewNFTables(quietLog, firewall.NFTablesOptions{NetNS: int(ns)})
		return err
	})
	return b, err
}

func in(t *testing.T, lab *fwtest.Lab, fn func() error) {
	t.Helper()
	if err := fwtest.Do(lab.Server, fn); err != nil {
		t.Fatal(err)
	}
}

func host(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// members flattens a Status into "code-family prefix" -> time left, the
// same keys whatever the backend calls its sets.
func members(s firewall.Status) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, set := range s.Sets {
		for _, e := range set.Entries {
			out[fmt.Sprintf("%d-%s %s", set.Code, set.Family, e.Prefix)] = e.Timeout
		}
	}
	return out
}

func statusOf(t *testing.T, lab *fwtest.Lab, b firewall.Backend) firewall.Status {
	t.Helper()
	var s firewall.Status
	in(t, lab, func() (err error) { s, err = b.Status(context.Background()); return err })
	return s
}

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
	eachBackend(t, func(t *testing.T, bk backend) {
		lab := fwtest.NewLab(t)
		b := bk.new(t, lab)
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
	})
}

func TestLANRanges(t *testing.T) {
	eachBackend(t, func(t *testing.T, bk backend) {
		lab := fwtest.NewLab(t)
		b := bk.new(t, lab)
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
	})
}

// TestOpenAndTimeouts covers the mandatory open ports (RTP) and a member
// with a kernel timeout, which must stop admitting once it runs out.
func TestOpenAndTimeouts(t *testing.T) {
	eachBackend(t, func(t *testing.T, bk backend) {
		lab := fwtest.NewLab(t)
		b := bk.new(t, lab)
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
	})
}

// TestOverlappingNetworks whitelists a network for a while and a smaller
// one inside it for good, for the same service. hash:net holds both; the
// nftables interval set cannot hold overlapping elements and flattens
// them. Either way the kernel must admit the same addresses for the same
// time, and the member paths (SyncMembers, AddMember, DelMember) must
// keep it so.
func TestOverlappingNetworks(t *testing.T) {
	eachBackend(t, func(t *testing.T, bk backend) {
		lab := fwtest.NewLab(t)
		b := bk.new(t, lab)
		ctx := context.Background()
		lab.Echo(t, "tcp", 22)
		wide := netip.MustParsePrefix("203.0.113.0/24")   // client .10 and other .20
		narrow := netip.MustParsePrefix("203.0.113.0/28") // client .10 only
		cfg := firewall.DefaultConfig()
		cfg.LAN = nil
		st := firewall.State{Config: cfg}
		st.Add(firewall.CodeSSH, wide, 2*time.Second)
		st.Add(firewall.CodeSSH, narrow, 0)
		ssh := func(client, other bool) {
			t.Helper()
			lab.Check(t, probeTimeout,
				fwtest.Probe{Proto: "tcp", Src: fwtest.ClientV4, Dst: fwtest.ServerV4, Port: 22, Want: client},
				fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: other})
		}
		in(t, lab, func() error { return b.Apply(ctx, st) })
		ssh(true, true)
		time.Sleep(3 * time.Second)
		ssh(true, false)

		// Take the narrow network away through the fast path: nothing is
		// left for the client.
		in(t, lab, func() error {
			return b.SyncMembers(ctx, firewall.State{Config: cfg}, []netip.Prefix{narrow})
		})
		ssh(false, false)

		// Two networks the other way round: the wide one permanent, the
		// narrow one timed inside it, then the wide one removed.
		in(t, lab, func() error {
			if err := b.AddMember(ctx, firewall.CodeSSH, firewall.Member{Prefix: wide}); err != nil {
				return err
			}
			return b.AddMember(ctx, firewall.CodeSSH, firewall.Member{Prefix: narrow, Timeout: time.Hour})
		})
		ssh(true, true)
		if got := members(statusOf(t, lab, b)); len(got) == 0 {
			t.Errorf("status shows no members: %v", got)
		}
		want := firewall.State{Config: cfg}
		want.Add(firewall.CodeSSH, narrow, time.Hour)
		in(t, lab, func() error { return b.SyncMembers(ctx, want, []netip.Prefix{wide}) })
		ssh(true, false)
		in(t, lab, func() error { return b.DelMember(ctx, firewall.CodeSSH, narrow) })
		ssh(false, false)
		if got := members(statusOf(t, lab, b)); len(got) != 0 {
			t.Errorf("members left after DelMember: %v", got)
		}
	})
}

// TestApplyIdempotent checks that a second Apply of the same state leaves
// the kernel alone, that Status reads back what was applied, and that a
// hand edit is repaired by the next Apply.
func TestApplyIdempotent(t *testing.T) {
	eachBackend(t, func(t *testing.T, bk backend) {
		lab := fwtest.NewLab(t)
		b := bk.new(t, lab)
		st := firewall.State{Config: firewall.DefaultConfig()}
		st.Add(8, netip.MustParsePrefix("198.51.100.0/24"), 0)
		st.Add(1, host(fwtest.ClientV6), time.Hour)
		ctx := context.Background()
		in(t, lab, func() error { return b.Apply(ctx, st) })
		before := bk.ruleset(t, lab)
		fpBefore := statusOf(t, lab, b).Families
		in(t, lab, func() error { return b.Apply(ctx, st) })
		if after := bk.ruleset(t, lab); before != after {
			t.Errorf("second apply changed the ruleset:\n%s\n---\n%s", before, after)
		}
		s := statusOf(t, lab, b)
		if !s.Loaded() {
			t.Fatalf("status says not loaded: %+v", s.Families)
		}
		if fmt.Sprint(s.Families) != fmt.Sprint(fpBefore) {
			t.Errorf("second apply changed the chain: %+v, was %+v", s.Families, fpBefore)
		}
		for _, set := range s.Sets {
			if !set.Exists {
				t.Errorf("set %s missing", set.Name)
			}
		}
		found := members(s)
		if d, ok := found["8-v4 198.51.100.0/24"]; !ok || d != 0 {
			t.Errorf("static entry: got %v ok=%v", d, ok)
		}
		if d, ok := found["1-v6 2001:db8::10/128"]; !ok || d < 59*time.Minute || d > time.Hour {
			t.Errorf("timed entry: got %v ok=%v", d, ok)
		}
		if len(found) != 2 {
			t.Errorf("want 2 members, got %v", found)
		}
		// A hand edit is repaired by Apply.
		in(t, lab, func() error {
			undo, err := bk.tamper(lab)
			if err != nil {
				return err
			}
			if err := b.Apply(ctx, st); err != nil {
				return err
			}
			s, err := b.Status(ctx)
			if err == nil && !s.Loaded() {
				err = fmt.Errorf("not repaired: %+v", s.Families)
			}
			if err == nil && undo != nil {
				err = undo()
			}
			return err
		})
		if after := bk.ruleset(t, lab); before != after {
			t.Errorf("apply did not undo the hand edit:\n%s\n---\n%s", before, after)
		}
	})
}

func iptablesRuleset(t testing.TB, lab *fwtest.Lab) string {
	t.Helper()
	var out []string
	for _, cmd := range [][]string{{"iptables-save", "-t", "filter"}, {"ip6tables-save", "-t", "filter"}, {"ipset", "list"}} {
		o, err := lab.Exec(lab.Server, cmd...)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, stripCounters(o))
	}
	return strings.Join(out, "\n")
}

// stripCounters drops iptables-save's comments and chain counters, and
// the seconds a timed ipset member has left.
func stripCounters(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "#") || strings.HasPrefix(l, ":") {
			continue
		}
		out = append(out, timeLeft.ReplaceAllString(l, ""))
	}
	return strings.Join(out, "\n")
}

var timeLeft = regexp.MustCompile(` (timeout|expires) [0-9dhms]+`)

// iptablesTamper puts a rule in front of the jump to DIALGATE. Apply
// moves the jump back in front; the rule itself is the host's and stays.
func iptablesTamper(lab *fwtest.Lab) (func() error, error) {
	rule := []string{"INPUT", "-p", "tcp", "--dport", "1", "-j", "ACCEPT"}
	_, err := lab.Exec(lab.Server, append([]string{"iptables", "-I"}, rule...)...)
	return func() error {
		_, err := lab.Exec(lab.Server, append([]string{"iptables", "-D"}, rule...)...)
		return err
	}, err
}

// requireNFT reports whether the nft command is there to cross-check the
// table with. Under CI its absence fails the test: the check must run.
func requireNFT(t testing.TB) bool {
	t.Helper()
	if _, err := exec.LookPath("nft"); err == nil {
		return true
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the nft command is missing (Debian package nftables): CI must install it")
	}
	t.Log("nft not installed: skipping the nft listing checks")
	return false
}

// nftRuleset lists the table with nft, which decodes every rule and set
// the way an administrator reads them; without nft it lists the
// backend's Status.
func nftRuleset(t testing.TB, lab *fwtest.Lab) string {
	t.Helper()
	if !requireNFT(t) {
		return ""
	}
	out, err := lab.Exec(lab.Server, "nft", "list", "table", "inet", firewall.NFTTable)
	if err != nil {
		t.Fatal(err)
	}
	return timeLeft.ReplaceAllString(out, "")
}

// nftTamper puts a rule at the top of dialgate's chain, adds a set
// element and removes another: all inside dialgate's table, all for
// Apply to undo.
func nftTamper(lab *fwtest.Lab) (func() error, error) {
	if _, err := exec.LookPath("nft"); err != nil {
		return nil, nil // requireNFT has reported it
	}
	for _, cmd := range [][]string{
		{"nft", "insert", "rule", "inet", firewall.NFTTable, firewall.NFTChain, "tcp", "dport", "1", "accept"},
		{"nft", "add", "element", "inet", firewall.NFTTable, "c8v4h", "{", "192.0.2.1", "}"},
		{"nft", "delete", "element", "inet", firewall.NFTTable, "c8v4n", "{", "198.51.100.0/24", "}"},
	} {
		if _, err := lab.Exec(lab.Server, cmd...); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// TestRebuildUnderTraffic hammers the server with new connections from a
// whitelisted address while the chain and sets are rebuilt over and over:
// not one allowed connection may fail. The client reaches SSH as a host
// member and SIP through a network member, so both kinds of set are
// rebuilt under traffic.
func TestRebuildUnderTraffic(t *testing.T) {
	eachBackend(t, func(t *testing.T, bk backend) {
		lab := fwtest.NewLab(t)
		b := bk.new(t, lab)
		lab.Echo(t, "tcp", 22)
		lab.Echo(t, "udp", 5060)
		cfg := firewall.DefaultConfig()
		cfg.LAN = nil
		st := firewall.State{Config: cfg}
		st.Add(firewall.CodeSSH, host(fwtest.ClientV4), 0)
		st.Add(firewall.CodeSIPUDP, netip.MustParsePrefix("203.0.113.8/29"), 0) // .10, not .20
		// Some bulk, hosts and networks, so each swap has work to do.
		for i := 0; i < 200; i++ {
			st.Add(firewall.CodeSSH, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i), 1}), 32), 0)
			st.Add(firewall.CodeSSH, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(i), 0}), 24), 0)
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
						t.Logf("%s/%d: reached=%v err=%v", proto, port, reached, err)
						failed.Add(1)
					} else {
						ok.Add(1)
					}
				}
			}()
		}
		// At least 10 rebuilds, and at least a second of them: a fast
		// backend gets as many chances to drop a connection as a slow one.
		// An even number ends on the silent drop the last check expects.
		rebuilds, start := 0, time.Now()
		for ; rebuilds < 10 || time.Since(start) < time.Second || rebuilds%2 != 0; rebuilds++ {
			// Alternate the config so the chain really is replaced each
			// time. Every third time Apply does it: its replacement of the
			// rules must be just as seamless.
			st.Config.Reject = rebuilds%2 == 0
			op := b.Rebuild
			if rebuilds%3 == 2 {
				op = b.Apply
			}
			in(t, lab, func() error { return op(ctx, st) })
		}
		close(stop)
		wg.Wait()
		t.Logf("%d rebuilds under traffic: %d connections ok, %d failed", rebuilds, ok.Load(), failed.Load())
		if failed.Load() != 0 || ok.Load() < 20 {
			t.Fatalf("rebuild dropped allowed flows: ok=%d failed=%d", ok.Load(), failed.Load())
		}
		lab.Check(t, probeTimeout,
			fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: false},
			fwtest.Probe{Proto: "udp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 5060, Want: false})
	})
}

// TestRemove checks that Remove opens the host again and leaves nothing
// of dialgate in any of the kernel's filtering tools' listings.
func TestRemove(t *testing.T) {
	eachBackend(t, func(t *testing.T, bk backend) {
		lab := fwtest.NewLab(t)
		b := bk.new(t, lab)
		lab.Echo(t, "tcp", 22)
		cfg := firewall.DefaultConfig()
		cfg.LAN = nil
		in(t, lab, func() error { return b.Apply(context.Background(), firewall.State{Config: cfg}) })
		lab.Check(t, probeTimeout, fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: false})
		in(t, lab, func() error { return b.Remove(context.Background()) })
		lab.Check(t, probeTimeout, fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: true})
		cmds := [][]string{{"iptables-save"}, {"ip6tables-save"}, {"ipset", "list", "-n"}}
		if requireNFT(t) {
			cmds = append(cmds, []string{"nft", "list", "ruleset"})
		}
		for _, cmd := range cmds {
			out, err := lab.Exec(lab.Server, cmd...)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(strings.ToLower(out), "dialgate") {
				t.Errorf("%s still shows dialgate after Remove:\n%s", cmd[0], out)
			}
		}
		if s := statusOf(t, lab, b); s.Loaded() {
			t.Errorf("status still loaded after Remove: %+v", s.Families)
		}
		// Removing what is not there is not an error.
		in(t, lab, func() error { return b.Remove(context.Background()) })
	})
}

// TestSyncMembers checks the fast path: only the named prefixes are
// touched, each gets exactly the membership the state says, and removing
// what is not there is not an error.
func TestSyncMembers(t *testing.T) {
	eachBackend(t, func(t *testing.T, bk backend) {
		lab := fwtest.NewLab(t)
		b := bk.new(t, lab)
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
		got := members(statusOf(t, lab, b))
		if _, ok := got["8-v4 "+y.String()]; !ok {
			t.Errorf("unnamed prefix touched: %v", got)
		}
		if d, ok := got["8-v4 "+x.String()]; !ok || d != 0 {
			t.Errorf("permanent member: %v", got)
		}
		if d := got["1-v4 "+x.String()]; d < 59*time.Minute {
			t.Errorf("timed member: %v", got)
		}
		in(t, lab, func() error {
			return b.SyncMembers(ctx, firewall.State{Config: base.Config}, []netip.Prefix{x, host(fwtest.ClientV6)})
		})
		got = members(statusOf(t, lab, b))
		if len(got) != 1 {
			t.Errorf("after removal want only %s, got %v", y, got)
		}
		in(t, lab, func() error { return b.DelMember(ctx, firewall.CodeFOP, x) })
		// A grant renewed with a shorter life takes the new timeout.
		in(t, lab, func() error {
			if err := b.AddMember(ctx, firewall.CodeSIPUDP, firewall.Member{Prefix: x, Timeout: time.Hour}); err != nil {
				return err
			}
			return b.AddMember(ctx, firewall.CodeSIPUDP, firewall.Member{Prefix: x, Timeout: time.Minute})
		})
		if d := members(statusOf(t, lab, b))["1-v4 "+x.String()]; d < 58*time.Second || d > time.Minute {
			t.Errorf("renewed grant: time left %v, want a minute", d)
		}
	})
}

// TestSyncMembersBulk syncs more prefixes than the one-message-per-set
// path takes (the batched path: one dump, then only the differences):
// members are added, moved between sets, retimed and removed exactly as
// the state says, unnamed members stay, and real packets agree.
func TestSyncMembersBulk(t *testing.T) {
	eachBackend(t, func(t *testing.T, bk backend) {
		lab := fwtest.NewLab(t)
		b := bk.new(t, lab)
		lab.Echo(t, "tcp", 22)
		lab.Echo(t, "udp", 5060)
		ctx := context.Background()
		cfg := firewall.DefaultConfig()
		cfg.LAN = nil
		bulk := func(i int) netip.Prefix {
			return netip.PrefixFrom(netip.AddrFrom4([4]byte{11, 0, byte(i >> 8), byte(i)}), 32)
		}
		const n = 300
		base := firewall.State{Config: cfg}
		for i := 0; i < n; i++ {
			base.Add(firewall.CodeSSH, bulk(i), 0)
		}
		base.Add(firewall.CodeSSH, host(fwtest.OtherV4), 0)     // never named: must stay
		base.Add(firewall.CodeSIPUDP, host(fwtest.ClientV4), 0) // moves from SIP to SSH
		in(t, lab, func() error { return b.Apply(ctx, base) })

		want := firewall.State{Config: cfg}
		var named []netip.Prefix
		for i := 0; i < n; i++ {
			named = append(named, bulk(i))
			switch i % 3 {
			case 0: // removed
			case 1:
				want.Add(firewall.CodeSSH, bulk(i), 0)
			case 2: // kept, and a timed SIP membership added
				want.Add(firewall.CodeSSH, bulk(i), 0)
				want.Add(firewall.CodeSIPUDP, bulk(i), time.Hour)
			}
		}
		for i := n; i < n+50; i++ { // new
			named = append(named, bulk(i))
			want.Add(firewall.CodeFOP, bulk(i), 0)
		}
		named = append(named, host(fwtest.ClientV4), host(fwtest.ClientV6)) // v6: nothing there, nothing wanted
		want.Add(firewall.CodeSSH, host(fwtest.ClientV4), 0)
		in(t, lab, func() error { return b.SyncMembers(ctx, want, named) })

		got := members(statusOf(t, lab, b))
		expect := map[string]time.Duration{"8-v4 " + host(fwtest.OtherV4).String(): 0, "8-v4 " + host(fwtest.ClientV4).String(): 0}
		for i := 0; i < n+50; i++ {
			p := bulk(i).String()
			switch {
			case i >= n:
				expect["9-v4 "+p] = 0
			case i%3 == 1:
				expect["8-v4 "+p] = 0
			case i%3 == 2:
				expect["8-v4 "+p] = 0
				expect["1-v4 "+p] = time.Hour
			}
		}
		for k, d := range expect {
			g, ok := got[k]
			if !ok {
				t.Errorf("missing %s", k)
			} else if (d == 0) != (g == 0) || g > d || d-g > time.Minute {
				t.Errorf("%s: time left %v, want %v", k, g, d)
			}
		}
		for k := range got {
			if _, ok := expect[k]; !ok {
				t.Errorf("unexpected member %s", k)
			}
		}
		lab.Check(t, probeTimeout,
			fwtest.Probe{Proto: "tcp", Src: fwtest.ClientV4, Dst: fwtest.ServerV4, Port: 22, Want: true},
			fwtest.Probe{Proto: "udp", Src: fwtest.ClientV4, Dst: fwtest.ServerV4, Port: 5060, Want: false},
			fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: true},
		)
	})
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
// passes. Other traffic is unaffected. Over TCP a stranger cannot even
// connect: the SYN carries no SIP request to match.
func TestSIPSecretDomain(t *testing.T) {
	eachBackend(t, func(t *testing.T, bk backend) {
		lab := fwtest.NewLab(t)
		b := bk.new(t, lab)
		lab.Echo(t, "udp", 5060)
		lab.Echo(t, "tcp", 5060)
		cfg := firewall.DefaultConfig()
		cfg.LAN = nil
		// The longest domain allowed: its REGISTER line is compared in
		// several pieces by the nftables rules.
		long := strings.Repeat("x", firewall.MaxSIPDomainLen-len(".example")) + ".example"
		cfg.SIPDomains = []string{"xq356jq.example.org", "second.example", long}
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
			sip(fwtest.OtherV4, fwtest.ServerV4, sipMessage("REGISTER", long), true),
			sip(fwtest.OtherV4, fwtest.ServerV4, sipMessage("REGISTER", long[:len(long)-1]+"y"), false),
			sip(fwtest.OtherV4, fwtest.ServerV4, sipMessage("REGISTER", "pbx.example.org"), false),
			sip(fwtest.OtherV4, fwtest.ServerV4, sipMessage("OPTIONS", "xq356jq.example.org"), false),
			sip(fwtest.OtherV6, fwtest.ServerV6, sipMessage("OPTIONS", "203.0.113.1"), false),
			sip(fwtest.ClientV4, fwtest.ServerV4, sipMessage("OPTIONS", "pbx.example.org"), true),
			sip(fwtest.ClientV6, fwtest.ServerV6, sipMessage("REGISTER", "pbx.example.org"), true),
			sip(fwtest.OtherV4, fwtest.ServerV4, []byte("not sip"), false),
			sip(fwtest.OtherV4, fwtest.ServerV4, []byte("REGISTER sip:xq356"), false),
			fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 5060, Want: false},
		)
	})
}

// TestNFTablesNamespace checks the namespace binding: a backend bound to
// the server namespace by descriptor writes there even when it is
// created and called from a thread in another namespace.
func TestNFTablesNamespace(t *testing.T) {
	lab := fwtest.NewLab(t)
	b, err := nftablesIn(lab, lab.Client, lab.Server)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st := firewall.State{Config: firewall.DefaultConfig()}
	if err := fwtest.Do(lab.Client, func() error { return b.Apply(context.Background(), st) }); err != nil {
		t.Fatal(err)
	}
	loaded := func(ns string) bool {
		c, err := nftablesIn(lab, ns, ns)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := c.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return s.Loaded()
	}
	if !loaded(lab.Server) {
		t.Error("table missing in the server namespace")
	}
	if loaded(lab.Client) {
		t.Error("table created in the calling thread's namespace")
	}
}

// TestNew checks the constructor's kinds.
func TestNew(t *testing.T) {
	lab := fwtest.NewLab(t)
	for _, c := range []struct{ kind, want string }{
		{"iptables", "*firewall.IPTables"}, {"nftables", "*firewall.NFTables"}, {"auto", "*firewall.NFTables"}, {"", "*firewall.NFTables"},
	} {
		in(t, lab, func() error {
			b, err := firewall.New(c.kind, quietLog)
			if err != nil {
				return err
			}
			defer b.Close()
			if got := fmt.Sprintf("%T", b); got != c.want {
				t.Errorf("New(%q) = %s, want %s", c.kind, got, c.want)
			}
			return nil
		})
	}
	// auto keeps a firewall that is already loaded rather than add a
	// second one beside it.
	ipt := newIPTables(t, lab)
	in(t, lab, func() error {
		if err := ipt.Apply(context.Background(), firewall.State{Config: firewall.DefaultConfig()}); err != nil {
			return err
		}
		b, err := firewall.New("auto", quietLog)
		if err != nil {
			return err
		}
		defer b.Close()
		if _, ok := b.(*firewall.IPTables); !ok {
			t.Errorf("auto with the iptables firewall loaded chose %T", b)
		}
		return ipt.Remove(context.Background())
	})
	if _, err := firewall.New("pf", quietLog); err == nil {
		t.Error("New accepted an unknown kind")
	}
}
