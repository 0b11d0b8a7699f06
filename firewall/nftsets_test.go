package firewall

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

func mem(p string, d time.Duration) Member {
	return Member{Prefix: netip.MustParsePrefix(p), Timeout: d}
}

func fmtMembers(ms []Member) string {
	var s []string
	for _, m := range ms {
		s = append(s, fmt.Sprintf("%s=%v", m.Prefix, m.Timeout))
	}
	return strings.Join(s, " ")
}

func TestFlatten(t *testing.T) {
	h := time.Hour
	cases := []struct {
		name string
		in   []Member
		want string
	}{
		{"disjoint", []Member{mem("10.0.1.0/24", h), mem("10.0.0.0/24", 0)},
			"10.0.0.0/24=0s 10.0.1.0/24=1h0m0s"},
		{"shorter inside longer is shadowed", []Member{mem("10.0.0.0/24", 2*h), mem("10.0.0.16/28", h)},
			"10.0.0.0/24=2h0m0s"},
		{"permanent outside shadows", []Member{mem("10.0.0.0/8", 0), mem("10.1.0.0/16", 9*h)},
			"10.0.0.0/8=0s"},
		{"longer inside shorter is cut out", []Member{mem("10.0.0.0/24", h), mem("10.0.0.64/26", 2*h)},
			"10.0.0.0/26=1h0m0s 10.0.0.64/26=2h0m0s 10.0.0.128/25=1h0m0s"},
		{"permanent inside timed", []Member{mem("10.0.0.0/30", h), mem("10.0.0.1/32", 0)},
			"10.0.0.0/32=1h0m0s 10.0.0.1/32=0s 10.0.0.2/31=1h0m0s"},
		{"shadowed middle, outliving inner", []Member{mem("10.0.0.0/24", h), mem("10.0.0.0/25", h/2), mem("10.0.0.0/26", 3*h)},
			"10.0.0.0/26=3h0m0s 10.0.0.64/26=1h0m0s 10.0.0.128/25=1h0m0s"},
		{"duplicates keep the longest life", []Member{mem("10.0.0.0/24", h), mem("10.0.0.0/24", 0), mem("10.0.0.0/24", 2*h)},
			"10.0.0.0/24=0s"},
		{"v6", []Member{mem("2001:db8::/32", h), mem("2001:db8::/33", 0)},
			"2001:db8::/33=0s 2001:db8:8000::/33=1h0m0s"},
		{"everything", []Member{mem("0.0.0.0/0", h), mem("128.0.0.0/1", 0)},
			"0.0.0.0/1=1h0m0s 128.0.0.0/1=0s"},
	}
	for _, c := range cases {
		if got := fmtMembers(flatten(c.in)); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

// lifeAt is what a set of (possibly overlapping) members gives address
// a: the longest life among those covering it, zero when none does.
func lifeAt(ms []Member, a netip.Addr) time.Duration {
	var l time.Duration
	for _, m := range ms {
		if m.Prefix.Contains(a) {
			l = max(l, life(m.Timeout))
		}
	}
	return l
}

// randomMembers makes nested and overlapping v4 networks inside
// 10.0.0.0/16, where random addresses hit them often.
func randomMembers(r *rand.Rand, n int) []Member {
	var ms []Member
	for range n {
		bits := 16 + r.IntN(15)
		a := netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(256)), byte(r.IntN(256))})
		var d time.Duration
		if r.IntN(4) > 0 {
			d = time.Duration(1+r.IntN(5)) * time.Hour
		}
		ms = append(ms, Member{Prefix: netip.PrefixFrom(a, bits).Masked(), Timeout: d})
	}
	return ms
}

func randomAddr(r *rand.Rand) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(r.IntN(2)), byte(r.IntN(256)), byte(r.IntN(256))})
}

// TestFlattenAdmitsTheSame checks flatten against its definition on
// random members: the result is disjoint, gives every address the same
// life the members give it, and does not depend on the members' order.
func TestFlattenAdmitsTheSame(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		ms := randomMembers(r, 1+r.IntN(12))
		flat := flatten(ms)
		for i := 1; i < len(flat); i++ {
			if flat[i-1].Prefix.Overlaps(flat[i].Prefix) {
				t.Fatalf("round %d: %s overlaps %s", round, flat[i-1].Prefix, flat[i].Prefix)
			}
		}
		for range 300 {
			a := randomAddr(r)
			if got, want := lifeAt(flat, a), lifeAt(ms, a); got != want {
				t.Fatalf("round %d: %s: flattened life %v, members give %v\nmembers %s\nflat %s",
					round, a, got, want, fmtMembers(ms), fmtMembers(flat))
			}
		}
		shuffled := slices.Clone(ms)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if a, b := fmtMembers(flat), fmtMembers(flatten(shuffled)); a != b {
			t.Fatalf("round %d: order changes the result:\n%s\n%s", round, a, b)
		}
	}
}

// kernelOf is what a network set holds after flattening members.
func kernelOf(ms []Member) []kernelRange {
	var out []kernelRange
	for _, m := range flatten(ms) {
		out = append(out, kernelRange{start: m.Prefix.Addr(), end: lastAddr(m.Prefix).Next(), timeout: m.Timeout, prefix: m.Prefix})
	}
	return out
}

// TestSyncRegions changes random members and syncs only the changed
// prefixes: the set must end up exactly as if flattened from scratch.
func TestSyncRegions(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 300 {
		old := randomMembers(r, r.IntN(10))
		// Drop, add or retime a few members; remember which.
		var named []netip.Prefix
		cur := map[netip.Prefix]time.Duration{}
		for _, m := range old {
			cur[m.Prefix] = max(cur[m.Prefix], life(m.Timeout))
		}
		for range 1 + r.IntN(3) {
			switch c := randomMembers(r, 1)[0]; r.IntN(3) {
			case 0: // add or retime
				cur[c.Prefix] = life(c.Timeout)
				named = append(named, c.Prefix)
			default: // remove an existing one, if any
				for p := range cur {
					delete(cur, p)
					named = append(named, p)
					break
				}
			}
		}
		var want []Member
		for p, l := range cur {
			want = append(want, Member{Prefix: p, Timeout: timeoutOf(l)})
		}
		have := kernelOf(old)
		gone, missing, err := syncRegions("test", have, want, named)
		if err != nil {
			t.Fatal(err)
		}
		// Apply the changes the way the kernel would.
		after := map[netip.Prefix]time.Duration{}
		for _, k := range have {
			after[k.prefix] = k.timeout
		}
		for _, k := range gone {
			if _, ok := after[k.prefix]; !ok {
				t.Fatalf("round %d: deletes %s, which is not there", round, k.prefix)
			}
			delete(after, k.prefix)
		}
		for _, m := range missing {
			if _, ok := after[m.Prefix]; ok {
				t.Fatalf("round %d: adds %s, which is there", round, m.Prefix)
			}
			after[m.Prefix] = m.Timeout
		}
		var got []Member
		for p, d := range after {
			got = append(got, Member{Prefix: p, Timeout: d})
		}
		sortMembers(got)
		if a, b := fmtMembers(got), fmtMembers(flatten(want)); a != b {
			t.Fatalf("round %d: named %v\nold  %s\nwant %s\ngot  %s\nflat %s", round, named,
				fmtMembers(old), fmtMembers(want), a, b)
		}
	}
}

func TestSyncRegionsLeavesTheRestAlone(t *testing.T) {
	have := kernelOf([]Member{mem("10.0.0.0/24", 0), mem("10.1.0.0/24", 0)})
	// want lacks 10.1.0.0/24, but it is not named: it stays.
	gone, missing, err := syncRegions("t", have, []Member{mem("10.0.0.0/24", 0), mem("10.2.0.0/24", time.Hour)},
		[]netip.Prefix{netip.MustParsePrefix("10.2.0.0/24")})
	if err != nil || len(gone) != 0 || fmtMembers(missing) != "10.2.0.0/24=1h0m0s" {
		t.Fatalf("gone %v missing %s err %v", gone, fmtMembers(missing), err)
	}
	hand := []kernelRange{{start: netip.MustParseAddr("10.0.0.1"), end: netip.MustParseAddr("10.0.0.5")}}
	if _, _, err := syncRegions("t", hand, nil, []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}); err == nil {
		t.Fatal("a range that is not a prefix was not reported")
	}
}

func TestIntervalElementsRoundTrip(t *testing.T) {
	ps := []Member{
		mem("10.0.0.0/24", time.Hour), mem("10.0.1.0/24", 0), // adjacent: share a key
		mem("0.0.0.0/8", 0), mem("255.255.255.0/24", 90*time.Second), // bottom; top, with no end element
		mem("2001:db8::/64", 0), mem("ffff::/16", time.Minute),
	}
	var es []nftables.SetElement
	for _, m := range ps {
		es = append(es, intervalElements(m.Prefix, m.Timeout)...)
	}
	// The kernel reports time left, in any order, and nft puts an end
	// element at the bottom of the address space.
	for i := range es {
		es[i].Expires = es[i].Timeout
	}
	es = append(es, nftables.SetElement{Key: make([]byte, 4), IntervalEnd: true})
	rand.New(rand.NewPCG(5, 6)).Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
	var got []Member
	for _, k := range decodeIntervals(es) {
		if !k.prefix.IsValid() {
			t.Fatalf("range %s-%s not read back as a prefix", k.start, k.end)
		}
		got = append(got, Member{Prefix: k.prefix, Timeout: k.timeout})
	}
	sortMembers(got)
	sortMembers(ps)
	if a, b := fmtMembers(got), fmtMembers(ps); a != b {
		t.Fatalf("got  %s\nwant %s", a, b)
	}
}

func TestRangePrefixes(t *testing.T) {
	a := netip.MustParseAddr
	cases := []struct {
		start, end netip.Addr
		want       string
	}{
		{a("10.0.0.0"), a("10.0.1.0"), "10.0.0.0/24"},
		{a("10.0.0.0"), netip.Addr{}, "10.0.0.0/7 12.0.0.0/6 16.0.0.0/4 32.0.0.0/3 64.0.0.0/2 128.0.0.0/1"},
		{a("0.0.0.0"), netip.Addr{}, "0.0.0.0/0"},
		{a("10.0.0.1"), a("10.0.0.5"), "10.0.0.1/32 10.0.0.2/31 10.0.0.4/32"},
	}
	for _, c := range cases {
		k := kernelRange{start: c.start, end: c.end, prefix: rangePrefix(c.start, c.end)}
		var got []string
		for _, p := range k.prefixes() {
			got = append(got, p.String())
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%s-%s: got %v, want %s", c.start, c.end, got, c.want)
		}
	}
}

func TestElementTimeout(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		0: 0, -time.Second: 0, time.Millisecond: time.Second, time.Second: time.Second,
		1500 * time.Millisecond: 2 * time.Second, time.Hour: time.Hour, 100 * 24 * time.Hour: 4294967 * time.Second,
	} {
		if got := elementTimeout(in); got != want {
			t.Errorf("elementTimeout(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestMergePorts(t *testing.T) {
	got := mergePorts([]PortRange{{"udp", 5061, 5061}, {"udp", 5060, 5069}, {"udp", 5070, 5070}, {"udp", 10, 20}, {"udp", 65535, 65535}})
	if fmt.Sprint(got) != "[udp/10:20 udp/5060:5070 udp/65535]" {
		t.Fatalf("got %v", got)
	}
}

func TestNFTPlan(t *testing.T) {
	a, err := nftPlanFor(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := nftPlanFor(DefaultConfig())
	if a.fp != b.fp {
		t.Fatal("same config, different fingerprints")
	}
	c := DefaultConfig()
	c.Reject = true
	if r, _ := nftPlanFor(c); r.fp == a.fp {
		t.Fatal("config change not reflected in the fingerprint")
	}
	c = DefaultConfig()
	c.SIPDomains = []string{strings.Repeat("d", MaxSIPDomainLen)}
	withSIP, err := nftPlanFor(c)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(withSIP.rules) - len(a.rules); n != 5 {
		t.Errorf("secret domain adds %d rules, want 5 (one accept, four drops)", n)
	}
	if _, ok := a.rules[len(a.rules)-1].exprs[0].(*expr.Verdict); !ok {
		t.Errorf("last rule is %T, want the final drop", a.rules[len(a.rules)-1].exprs[0])
	}
	for i, r := range withSIP.rules {
		for _, s := range r.anon {
			if s.key.Name != nftables.TypeICMPType.Name && s.key.Name != nftables.TypeICMP6Type.Name {
				t.Errorf("rule %d looks up an anonymous %s set: only ICMP types may", i, s.key.Name)
			}
		}
		for _, e := range r.exprs {
			if cm, ok := e.(*expr.Cmp); ok && len(cm.Data) > 16 {
				t.Errorf("rule %d compares %d bytes, more than a register holds", i, len(cm.Data))
			}
		}
	}
}
