package fwfake_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/firewall/fwfake"
)

var (
	ctx   = context.Background()
	t0    = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	alice = netip.MustParseAddr("203.0.113.10")
	bob   = netip.MustParseAddr("203.0.113.20")
	carol = netip.MustParseAddr("2001:db8::10")
	lan   = netip.MustParseAddr("192.168.1.5")
)

func host(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// newFake returns a Backend on a fake clock, with base applied.
func newFake(t *testing.T) (*fwfake.Backend, *fwfake.Clock) {
	t.Helper()
	clk := fwfake.NewClock(t0)
	b := fwfake.New()
	b.Now = clk.Now
	if err := b.Apply(ctx, base()); err != nil {
		t.Fatal(err)
	}
	return b, clk
}

// base admits alice to SSH permanently, carol to everything, and
// 198.51.100.0/24 to SIP over UDP for ten minutes.
func base() firewall.State {
	st := firewall.State{Config: firewall.DefaultConfig()}
	st.Add(firewall.CodeSSH, host(alice), 0)
	st.Add(firewall.CodeAll, host(carol), 0)
	st.Add(firewall.CodeSIPUDP, netip.MustParsePrefix("198.51.100.0/24"), 10*time.Minute)
	return st
}

func TestApplyAdmits(t *testing.T) {
	b, _ := newFake(t)
	for _, tc := range []struct {
		src   netip.Addr
		proto string
		port  uint16
		want  bool
	}{
		{alice, "tcp", 22, true},
		{alice, "tcp", 9022, true},
		{alice, "udp", 5060, false},
		{bob, "tcp", 22, false},
		{bob, "udp", 15000, true}, // RTP is open to everyone
		{carol, "tcp", 443, true},
		{netip.MustParseAddr("198.51.100.7"), "udp", 5060, true},
		{netip.MustParseAddr("198.51.100.7"), "tcp", 5060, false},
		{lan, "tcp", 5038, true},
		{netip.MustParseAddr("::ffff:203.0.113.10"), "tcp", 22, true},
		{netip.MustParseAddr("127.0.0.1"), "tcp", 5038, true},
	} {
		if got := b.Admits(tc.src, tc.proto, tc.port); got != tc.want {
			t.Errorf("Admits(%s, %s/%d) = %v, want %v", tc.src, tc.proto, tc.port, got, tc.want)
		}
	}
}

func TestNothingLoadedAdmitsAll(t *testing.T) {
	b := fwfake.New()
	if b.Loaded() || !b.Admits(bob, "tcp", 22) {
		t.Fatalf("fresh fake: loaded=%v, admits=%v; want false, true", b.Loaded(), b.Admits(bob, "tcp", 22))
	}
	if err := b.AddMember(ctx, firewall.CodeSSH, firewall.Member{Prefix: host(bob)}); !errors.Is(err, fwfake.ErrNoSet) {
		t.Fatalf("AddMember before Apply: %v, want ErrNoSet", err)
	}
	if err := b.DelMember(ctx, firewall.CodeSSH, host(bob)); err != nil {
		t.Fatalf("DelMember before Apply: %v", err)
	}
	st, err := b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Loaded() || len(st.Sets) != 2*firewall.NumCodes || st.Sets[0].Exists {
		t.Fatalf("status before Apply: %+v", st)
	}
}

func TestApplyReplacesMembers(t *testing.T) {
	b, _ := newFake(t)
	next := firewall.State{Config: firewall.DefaultConfig()}
	next.Add(firewall.CodeSSH, host(bob), 0)
	if err := b.Apply(ctx, next); err != nil {
		t.Fatal(err)
	}
	if b.Admits(alice, "tcp", 22) || !b.Admits(bob, "tcp", 22) || b.Admits(carol, "tcp", 443) {
		t.Fatal("Apply did not replace the members")
	}
	if !reflect.DeepEqual(b.State(), next) {
		t.Fatalf("State() = %+v, want %+v", b.State(), next)
	}
	if n := b.ChainBuilds(); n != 1 {
		t.Fatalf("a members-only Apply rebuilt the chain: %d builds", n)
	}
	next.Config.LAN = nil
	if err := b.Rebuild(ctx, next); err != nil {
		t.Fatal(err)
	}
	if b.Admits(lan, "tcp", 22) || b.ChainBuilds() != 2 {
		t.Fatalf("after Rebuild without LAN: admits lan=%v, builds=%d", b.Admits(lan, "tcp", 22), b.ChainBuilds())
	}
}

func TestApplyIsDeepCopy(t *testing.T) {
	b, _ := newFake(t)
	want := base()
	if err := b.Apply(ctx, want); err != nil {
		t.Fatal(err)
	}
	want.Config.Services[firewall.CodeSSH][0].From = 2222
	want.Config.LAN[2] = netip.MustParsePrefix("100.64.0.0/10")
	want.Add(firewall.CodeAll, host(bob), 0)
	if !b.Admits(alice, "tcp", 22) || !b.Admits(lan, "tcp", 1) || b.Admits(bob, "tcp", 1) {
		t.Fatal("changing the applied State changed the fake")
	}
	st := b.State()
	st.Config.Open[0].Proto = "tcp"
	st.Sets[firewall.CodeAll][host(bob)] = 0
	if b.Admits(bob, "tcp", 1) || !b.Admits(bob, "udp", 15000) {
		t.Fatal("changing State() changed the fake")
	}
}

func TestApplyValidates(t *testing.T) {
	b, _ := newFake(t)
	bad := base()
	bad.Config.Services = map[int][]firewall.PortRange{firewall.CodeAll: {{Proto: "tcp", From: 1, To: 1}}}
	if err := b.Apply(ctx, bad); err == nil {
		t.Fatal("Apply accepted an invalid config")
	}
	if !reflect.DeepEqual(b.State(), stateAt(base(), 0)) {
		t.Fatal("a refused Apply changed the state")
	}
}

// stateAt is what State() reports of st once elapsed has passed.
func stateAt(st firewall.State, elapsed time.Duration) firewall.State {
	for _, set := range st.Sets {
		for p, t := range set {
			if t != 0 {
				set[p] = t - elapsed
			}
		}
	}
	return st
}

func TestMemberTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		after   time.Duration
		want    bool
		left    time.Duration
	}{
		{"permanent", 0, 1000 * time.Hour, true, 0},
		{"negative is permanent", -time.Second, time.Hour, true, 0},
		{"before expiry", time.Minute, 59 * time.Second, true, time.Second},
		{"at expiry", time.Minute, time.Minute, false, 0},
		{"after expiry", time.Minute, 2 * time.Minute, false, 0},
		{"rounded up to a second", 300 * time.Millisecond, 900 * time.Millisecond, true, 100 * time.Millisecond},
		{"capped", 100 * 24 * time.Hour, 50 * 24 * time.Hour, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, clk := newFake(t)
			if err := b.AddMember(ctx, firewall.CodeSSH, firewall.Member{Prefix: host(bob), Timeout: tc.timeout}); err != nil {
				t.Fatal(err)
			}
			clk.Advance(tc.after)
			if got := b.Admits(bob, "tcp", 22); got != tc.want {
				t.Fatalf("Admits after %s = %v, want %v", tc.after, got, tc.want)
			}
			st, err := b.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var entries []firewall.SetEntry
			for _, s := range st.Sets {
				if s.Name == firewall.SetName(firewall.CodeSSH, firewall.V4) {
					entries = s.Entries
				}
			}
			want := []firewall.SetEntry{{Prefix: host(alice)}}
			if tc.want {
				want = append(want, firewall.SetEntry{Prefix: host(bob), Timeout: tc.left})
			}
			if !reflect.DeepEqual(entries, want) {
				t.Fatalf("status entries = %v, want %v", entries, want)
			}
		})
	}
}

func TestAppliedTimeoutExpires(t *testing.T) {
	b, clk := newFake(t)
	sip := netip.MustParseAddr("198.51.100.7")
	clk.Advance(9 * time.Minute)
	if !b.Admits(sip, "udp", 5060) {
		t.Fatal("grant gone before its time")
	}
	// Applying the same state again keeps the kernel's expiry within its
	// granularity: no refresh.
	if err := b.Apply(ctx, stateAt(base(), 9*time.Minute)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	if b.Admits(sip, "udp", 5060) || len(b.Members(firewall.CodeSIPUDP)) != 0 {
		t.Fatal("grant outlived its timeout")
	}
	if _, ok := b.State().Sets[firewall.CodeSIPUDP]; ok {
		t.Fatal("State() reports an expired grant")
	}
}

func TestAddMemberReplacesTimeout(t *testing.T) {
	b, clk := newFake(t)
	add := func(d time.Duration) {
		t.Helper()
		if err := b.AddMember(ctx, firewall.CodeWeb, firewall.Member{Prefix: host(bob), Timeout: d}); err != nil {
			t.Fatal(err)
		}
	}
	add(time.Hour)
	add(time.Minute) // replaces, even though shorter
	clk.Advance(2 * time.Minute)
	if b.Admits(bob, "tcp", 443) {
		t.Fatal("AddMember kept the longer timeout")
	}
	add(time.Minute)
	add(0)
	clk.Advance(time.Hour)
	if got := b.Members(firewall.CodeWeb); !reflect.DeepEqual(got, []firewall.Member{{Prefix: host(bob)}}) {
		t.Fatalf("Members = %v", got)
	}
}

func TestAddMemberNormalizes(t *testing.T) {
	b, _ := newFake(t)
	err := b.AddMember(ctx, firewall.CodeFTP, firewall.Member{Prefix: netip.MustParsePrefix("::ffff:203.0.113.77/120")})
	if err != nil {
		t.Fatal(err)
	}
	want := []firewall.Member{{Prefix: netip.MustParsePrefix("203.0.113.0/24")}}
	if got := b.Members(firewall.CodeFTP); !reflect.DeepEqual(got, want) {
		t.Fatalf("Members = %v, want %v", got, want)
	}
	if !b.Admits(bob, "tcp", 21) {
		t.Fatal("network member does not admit its hosts")
	}
	for _, code := range []int{-1, firewall.NumCodes} {
		if err := b.AddMember(ctx, code, firewall.Member{Prefix: host(bob)}); err == nil {
			t.Errorf("AddMember accepted code %d", code)
		}
	}
	if err := b.AddMember(ctx, 1, firewall.Member{}); err == nil {
		t.Error("AddMember accepted an invalid prefix")
	}
}

func TestDelMember(t *testing.T) {
	for _, tc := range []struct {
		name     string
		code     int
		p        netip.Prefix
		admitted bool
	}{
		{"present", firewall.CodeSSH, host(alice), false},
		{"absent prefix", firewall.CodeSSH, host(bob), true},
		{"other code", firewall.CodeWeb, host(alice), true},
		{"containing network", firewall.CodeSSH, netip.MustParsePrefix("203.0.113.0/24"), true},
		{"mapped form", firewall.CodeSSH, netip.MustParsePrefix("::ffff:203.0.113.10/128"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := newFake(t)
			if err := b.DelMember(ctx, tc.code, tc.p); err != nil {
				t.Fatal(err)
			}
			if got := b.Admits(alice, "tcp", 22); got != tc.admitted {
				t.Fatalf("alice admitted to SSH = %v, want %v", got, tc.admitted)
			}
		})
	}
}

func TestSyncMembers(t *testing.T) {
	b, _ := newFake(t)
	// A desired state that drops alice and carol, and adds bob to code 4
	// and 8 and dave to code 4.
	dave := netip.MustParseAddr("203.0.113.30")
	want := firewall.State{Config: firewall.DefaultConfig()}
	want.Add(firewall.CodeWeb, host(bob), 0)
	want.Add(firewall.CodeSSH, host(bob), time.Hour)
	want.Add(firewall.CodeWeb, host(dave), 0)
	// Only alice and bob are synced: carol and dave stay as they were.
	if err := b.SyncMembers(ctx, want, []netip.Prefix{host(alice), host(bob)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		src   netip.Addr
		proto string
		port  uint16
		want  bool
	}{
		{alice, "tcp", 22, false},
		{bob, "tcp", 22, true},
		{bob, "tcp", 443, true},
		{bob, "tcp", 21, false},
		{carol, "tcp", 443, true},
		{dave, "tcp", 443, false},
		{netip.MustParseAddr("198.51.100.7"), "udp", 5060, true},
	} {
		if got := b.Admits(tc.src, tc.proto, tc.port); got != tc.want {
			t.Errorf("Admits(%s, %s/%d) = %v, want %v", tc.src, tc.proto, tc.port, got, tc.want)
		}
	}
	if got := b.Members(firewall.CodeSSH); !reflect.DeepEqual(got, []firewall.Member{{Prefix: host(bob), Timeout: time.Hour}}) {
		t.Fatalf("SSH members = %v", got)
	}
	if !reflect.DeepEqual(b.State().Config, firewall.DefaultConfig()) {
		t.Fatal("SyncMembers changed the config")
	}
}

func TestInjectedFailure(t *testing.T) {
	boom := errors.New("boom")
	next := firewall.State{Config: firewall.DefaultConfig()}
	next.Add(firewall.CodeAll, host(bob), 0)
	for _, tc := range []struct {
		method string
		call   func(b *fwfake.Backend) error
	}{
		{fwfake.MethodApply, func(b *fwfake.Backend) error { return b.Apply(ctx, next) }},
		{fwfake.MethodRebuild, func(b *fwfake.Backend) error { return b.Rebuild(ctx, next) }},
		{fwfake.MethodSyncMembers, func(b *fwfake.Backend) error {
			return b.SyncMembers(ctx, next, []netip.Prefix{host(alice), host(bob)})
		}},
		{fwfake.MethodAddMember, func(b *fwfake.Backend) error {
			return b.AddMember(ctx, firewall.CodeAll, firewall.Member{Prefix: host(bob)})
		}},
		{fwfake.MethodDelMember, func(b *fwfake.Backend) error { return b.DelMember(ctx, firewall.CodeSSH, host(alice)) }},
		{fwfake.MethodStatus, func(b *fwfake.Backend) error { _, err := b.Status(ctx); return err }},
		{fwfake.MethodRemove, func(b *fwfake.Backend) error { return b.Remove(ctx) }},
		{fwfake.MethodClose, func(b *fwfake.Backend) error { return b.Close() }},
	} {
		t.Run(tc.method, func(t *testing.T) {
			b, _ := newFake(t)
			before := b.State()
			b.ResetCalls()
			b.FailNext(tc.method, boom)
			err := tc.call(b)
			if !errors.Is(err, boom) {
				t.Fatalf("injected failure returned %v, want it to wrap %v", err, boom)
			}
			if !reflect.DeepEqual(b.State(), before) || !b.Loaded() {
				t.Fatal("a failed call changed the state")
			}
			if n := b.Calls()[tc.method]; n != 1 {
				t.Fatalf("Calls()[%s] = %d, want 1", tc.method, n)
			}
			// FailNext fails one call only.
			if err := tc.call(b); err != nil {
				t.Fatalf("second call: %v", err)
			}

			b.FailAlways(tc.method, nil)
			for range 3 {
				if err := tc.call(b); !errors.Is(err, fwfake.ErrInjected) {
					t.Fatalf("FailAlways: %v, want ErrInjected", err)
				}
			}
			b.ClearFailures(tc.method)
			if err := tc.call(b); err != nil && !errors.Is(err, fwfake.ErrClosed) {
				t.Fatalf("after ClearFailures: %v", err)
			}
			if n := b.Calls()[tc.method]; n != 6 {
				t.Fatalf("Calls()[%s] = %d, want 6", tc.method, n)
			}
		})
	}
}

func TestFailNextQueues(t *testing.T) {
	b, _ := newFake(t)
	e1, e2, e3 := errors.New("one"), errors.New("two"), errors.New("always")
	b.FailAlways(fwfake.MethodAddMember, e3)
	b.FailNext(fwfake.MethodAddMember, e1)
	b.FailNext(fwfake.MethodAddMember, e2)
	for _, want := range []error{e1, e2, e3, e3} {
		if err := b.AddMember(ctx, 0, firewall.Member{Prefix: host(bob)}); !errors.Is(err, want) {
			t.Fatalf("got %v, want %v", err, want)
		}
	}
	b.ClearFailures()
	if err := b.AddMember(ctx, 0, firewall.Member{Prefix: host(bob)}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("FailNext accepted an unknown method")
		}
	}()
	b.FailNext("Aply", nil)
}

func TestStatus(t *testing.T) {
	b, clk := newFake(t)
	clk.Advance(4 * time.Minute)
	st, err := b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Loaded() || len(st.Families) != 2 || st.Families[0].Family != "v4" || st.Families[1].Family != "v6" {
		t.Fatalf("families: %+v", st.Families)
	}
	for _, f := range st.Families {
		if f.Rules == 0 || len(f.Fingerprint) != 16 {
			t.Fatalf("family %s: %+v", f.Family, f)
		}
	}
	if st.Families[0].Fingerprint == st.Families[1].Fingerprint {
		t.Fatal("families share a fingerprint")
	}
	if len(st.Sets) != 2*firewall.NumCodes {
		t.Fatalf("%d sets, want %d", len(st.Sets), 2*firewall.NumCodes)
	}
	entries := map[string][]firewall.SetEntry{}
	for i, s := range st.Sets {
		code, f := i/2, []firewall.Family{firewall.V4, firewall.V6}[i%2]
		if s.Name != firewall.SetName(code, f) || s.Code != code || s.Family != f.String() || !s.Exists {
			t.Fatalf("set %d: %+v", i, s)
		}
		if len(s.Entries) > 0 {
			entries[s.Name] = s.Entries
		}
	}
	want := map[string][]firewall.SetEntry{
		"dialgate-0-v6": {{Prefix: host(carol)}},
		"dialgate-1-v4": {{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Timeout: 6 * time.Minute}},
		"dialgate-8-v4": {{Prefix: host(alice)}},
	}
	if !reflect.DeepEqual(entries, want) {
		t.Fatalf("entries = %v, want %v", entries, want)
	}

	// A config change shows in the fingerprint, a member change does not.
	fp := st.Families[0].Fingerprint
	next := base()
	next.Add(firewall.CodeSSH, host(bob), 0)
	if err := b.Apply(ctx, next); err != nil {
		t.Fatal(err)
	}
	if st, _ := b.Status(ctx); st.Families[0].Fingerprint != fp {
		t.Fatal("a member change moved the fingerprint")
	}
	next.Config.Reject = true
	if err := b.Apply(ctx, next); err != nil {
		t.Fatal(err)
	}
	if st, _ := b.Status(ctx); st.Families[0].Fingerprint == fp {
		t.Fatal("a config change kept the fingerprint")
	}
	if b.ChainBuilds() != 2 {
		t.Fatalf("ChainBuilds = %d, want 2", b.ChainBuilds())
	}
}

func TestRuleCount(t *testing.T) {
	// Counted by hand from the iptables backend's rule list.
	cfg := firewall.DefaultConfig()
	for _, tc := range []struct {
		name   string
		change func(*firewall.Config)
		v4, v6 int
	}{
		// lo, established, ICMP 5/9, LAN 3/1, open udp, code-0 set,
		// 9 codes with one protocol each, 2 of drop accounting, drop.
		{"default", func(*firewall.Config) {}, 24, 26},
		{"no icmp", func(c *firewall.Config) { c.ICMP = false }, 19, 17},
		{"sip domains", func(c *firewall.Config) { c.SIPDomains = []string{"a.example", "b.example"} }, 32, 34},
		{"bare", func(c *firewall.Config) { *c = firewall.Config{} }, 6, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			tc.change(&c)
			b := fwfake.New()
			if err := b.Apply(ctx, firewall.State{Config: c}); err != nil {
				t.Fatal(err)
			}
			st, _ := b.Status(ctx)
			if st.Families[0].Rules != tc.v4 || st.Families[1].Rules != tc.v6 {
				t.Fatalf("rules v4=%d v6=%d, want %d %d", st.Families[0].Rules, st.Families[1].Rules, tc.v4, tc.v6)
			}
		})
	}
}

func TestRemoveAndClose(t *testing.T) {
	b, _ := newFake(t)
	if err := b.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Sets {
		if s.Exists || len(s.Entries) > 0 {
			t.Fatalf("set %s left after Remove", s.Name)
		}
	}
	if st.Loaded() || b.Loaded() || !b.Admits(bob, "tcp", 22) || b.Members(firewall.CodeSSH) != nil {
		t.Fatal("Remove left a firewall behind")
	}
	if !reflect.DeepEqual(b.State(), firewall.State{}) {
		t.Fatalf("State after Remove = %+v", b.State())
	}

	if err := b.Apply(ctx, base()); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.Apply(ctx, base()); !errors.Is(err, fwfake.ErrClosed) {
		t.Fatalf("Apply after Close: %v", err)
	}
	if !b.Loaded() || !b.Admits(alice, "tcp", 22) || b.Admits(bob, "tcp", 22) {
		t.Fatal("Close took the firewall away")
	}
}

func TestCanceledContext(t *testing.T) {
	b, _ := newFake(t)
	c, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.AddMember(c, firewall.CodeAll, firewall.Member{Prefix: host(bob)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("AddMember on a canceled context: %v", err)
	}
	if err := b.Apply(c, firewall.State{Config: firewall.DefaultConfig()}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply on a canceled context: %v", err)
	}
	if b.Admits(bob, "tcp", 22) || !b.Admits(alice, "tcp", 22) {
		t.Fatal("a canceled call changed the state")
	}
}

func TestConcurrentAddMember(t *testing.T) {
	b, clk := newFake(t)
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p := netip.MustParsePrefix(fmt.Sprintf("198.18.%d.%d/32", i/250, i%250+1))
			if err := b.AddMember(ctx, firewall.CodeIAX, firewall.Member{Prefix: p, Timeout: time.Minute}); err != nil {
				t.Error(err)
			}
			b.Admits(p.Addr(), "udp", 4569)
			b.State()
			if _, err := b.Status(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Go(func() {
		for range n {
			clk.Advance(time.Millisecond)
			b.Members(firewall.CodeIAX)
			b.Calls()
		}
	})
	wg.Wait()
	if got := len(b.Members(firewall.CodeIAX)); got != n {
		t.Fatalf("%d members, want %d", got, n)
	}
	if got := b.Calls()[fwfake.MethodAddMember]; got != n {
		t.Fatalf("%d AddMember calls counted, want %d", got, n)
	}
	clk.Advance(time.Minute)
	if got := b.Members(firewall.CodeIAX); got != nil {
		t.Fatalf("members outlived their timeout: %v", got)
	}
}

func TestCalls(t *testing.T) {
	b, _ := newFake(t)
	b.AddMember(ctx, 0, firewall.Member{Prefix: host(bob)})
	b.AddMember(ctx, 0, firewall.Member{Prefix: host(bob)})
	b.Status(ctx)
	want := map[string]int{fwfake.MethodApply: 1, fwfake.MethodAddMember: 2, fwfake.MethodStatus: 1}
	if got := b.Calls(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Calls() = %v, want %v", got, want)
	}
	b.ResetCalls()
	if got := b.Calls(); len(got) != 0 {
		t.Fatalf("after ResetCalls: %v", got)
	}
}
