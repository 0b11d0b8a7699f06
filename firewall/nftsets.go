package firewall

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
)

// This file holds the set arithmetic of the nftables backend, free of any
// kernel access so it can be tested on its own.
//
// ipset's hash:net takes overlapping members (a /24 and a /32 inside it,
// each with its own timeout) and matches if any of them does. nftables
// has no such set type: an interval set (the only kind that holds
// networks) refuses overlapping elements. So each permission code and
// family gets two kernel sets:
//
//   - a hash set of host addresses (/32, /128), with per-element
//     timeouts. Phone grants and resolved FQDNs land here; a member maps
//     to exactly one element, so adding or removing one never needs to
//     read the set, and overlaps cannot happen.
//   - an interval set of networks, with per-element timeouts. Its members
//     are flattened first (flatten): overlapping members become disjoint
//     prefixes, each living as long as the longest-lived member covering
//     it, which admits exactly the addresses, for exactly as long, as
//     hash:net would.
//
// An address is admitted if either set holds it, as with one hash:net.

// setKind tells the two sets of a code and family apart.
type setKind byte

const (
	hostSet setKind = 'h'
	netSet  setKind = 'n'
)

// nftSetName names the kernel set of code, family and kind: c1v4h holds
// the v4 host addresses of code 1, c1v4n its v4 networks.
func nftSetName(code int, f Family, k setKind) string {
	return fmt.Sprintf("c%d%s%c", code, f, k)
}

func isHost(p netip.Prefix) bool { return p.Bits() == p.Addr().BitLen() }

// life orders timeouts by how long they keep a member: permanent (zero)
// outlives any timeout.
func life(timeout time.Duration) time.Duration {
	if timeout <= 0 {
		return math.MaxInt64
	}
	return timeout
}

// timeoutOf is the inverse of life.
func timeoutOf(l time.Duration) time.Duration {
	if l == math.MaxInt64 {
		return 0
	}
	return l
}

// elementTimeout rounds a member's timeout up to whole seconds, so a
// grant with 300 ms left still gets a second rather than a zero timeout
// (which the kernel would read as "permanent"), and caps it at ipset's
// limit: both backends expire a member at the same moment.
func elementTimeout(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return min((d + time.Second - 1).Truncate(time.Second), maxSetTimout*time.Second)
}

// flatten returns disjoint prefixes that admit exactly what members
// admit: every address covered by a member is covered by one result,
// whose timeout is the longest among the members covering that address.
// Members must be masked prefixes of one family. The result is sorted and
// canonical: it depends only on the members, not on their order, so two
// flattenings of the same members compare equal element by element.
func flatten(members []Member) []Member {
	var out []Member
	for _, root := range prefixForest(members) {
		out = root.emit(0, out)
	}
	sortMembers(out)
	return out
}

// pnode is a member with the members nested inside it.
type pnode struct {
	m        Member
	children []*pnode
}

// prefixForest nests members by containment. Sorted by address and then
// by prefix length, a member is inside the nearest preceding one that
// contains it, so one pass with a stack builds the forest. Duplicate
// prefixes keep the longest life.
func prefixForest(members []Member) []*pnode {
	ms := slices.Clone(members)
	sortMembers(ms)
	var roots, stack []*pnode
	for _, m := range ms {
		if len(stack) > 0 && stack[len(stack)-1].m.Prefix == m.Prefix {
			if top := stack[len(stack)-1]; life(m.Timeout) > life(top.m.Timeout) {
				top.m.Timeout = m.Timeout
			}
			continue
		}
		n := &pnode{m: m}
		for len(stack) > 0 && !stack[len(stack)-1].m.Prefix.Overlaps(m.Prefix) {
			stack = stack[:len(stack)-1]
		}
		if len(stack) == 0 {
			roots = append(roots, n)
		} else {
			top := stack[len(stack)-1]
			top.children = append(top.children, n)
		}
		stack = append(stack, n)
	}
	return roots
}

// emit appends the elements for n's prefix, given the life inherited
// from the members around it (zero: none). Nested members that outlive
// everything around them are cut out of n's prefix and emitted with
// their own life; nested members that do not are shadowed, though
// members nested deeper inside them may still outlive n.
func (n *pnode) emit(inherited time.Duration, out []Member) []Member {
	eff := max(inherited, life(n.m.Timeout))
	var holes []netip.Prefix
	var visit func(c *pnode)
	visit = func(c *pnode) {
		if life(c.m.Timeout) > eff {
			holes = append(holes, c.m.Prefix)
			out = c.emit(eff, out)
			return
		}
		for _, g := range c.children {
			visit(g)
		}
	}
	for _, c := range n.children {
		visit(c)
	}
	for _, p := range carve(n.m.Prefix, holes) {
		out = append(out, Member{Prefix: p, Timeout: timeoutOf(eff)})
	}
	return out
}

// carve returns the fewest prefixes covering p except holes, which must
// be disjoint prefixes inside p.
func carve(p netip.Prefix, holes []netip.Prefix) []netip.Prefix {
	switch {
	case len(holes) == 0:
		return []netip.Prefix{p}
	case len(holes) == 1 && holes[0] == p:
		return nil
	}
	lo, hi := halves(p)
	var inLo, inHi []netip.Prefix
	for _, h := range holes {
		if lo.Overlaps(h) {
			inLo = append(inLo, h)
		} else {
			inHi = append(inHi, h)
		}
	}
	return append(carve(lo, inLo), carve(hi, inHi)...)
}

// halves splits p into its two prefixes one bit longer. p must not be a
// single address.
func halves(p netip.Prefix) (lo, hi netip.Prefix) {
	bits := p.Bits()
	a := p.Addr().AsSlice()
	a[bits/8] |= 0x80 >> (bits % 8)
	upper, _ := netip.AddrFromSlice(a)
	return netip.PrefixFrom(p.Addr(), bits+1), netip.PrefixFrom(upper, bits+1)
}

func sortMembers(ms []Member) {
	slices.SortFunc(ms, func(a, b Member) int { return comparePrefix(a.Prefix, b.Prefix) })
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(a)*8; i++ {
		a[i/8] |= 0x80 >> (i % 8)
	}
	last, _ := netip.AddrFromSlice(a)
	return last
}

// --- kernel elements ---

// A prefix in an interval set is two kernel elements: its first address,
// carrying the timeout, and the address after its last, flagged as an
// interval end. A prefix reaching the top of the address space has no
// end element: the interval runs to the end. That is how nft itself
// encodes them, so `nft list` shows prefixes.

// hostElement is the element for host address p.
func hostElement(p netip.Prefix, timeout time.Duration) nftables.SetElement {
	return nftables.SetElement{Key: p.Addr().AsSlice(), Timeout: elementTimeout(timeout)}
}

// intervalElements are the elements for network p.
func intervalElements(p netip.Prefix, timeout time.Duration) []nftables.SetElement {
	es := []nftables.SetElement{{Key: p.Addr().AsSlice(), Timeout: elementTimeout(timeout)}}
	if end := lastAddr(p).Next(); end.IsValid() {
		es = append(es, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
	}
	return es
}

// kernelRange is one interval read back from an interval set: [start,
// end), end invalid when the interval runs to the top of the address
// space. prefix is set when the range is exactly one prefix, which is
// all dialgate ever writes; anything else was put there by hand.
type kernelRange struct {
	start, end netip.Addr
	timeout    time.Duration // time left; zero for permanent
	prefix     netip.Prefix
}

func (r kernelRange) elements() []nftables.SetElement {
	es := []nftables.SetElement{{Key: r.start.AsSlice()}}
	if r.end.IsValid() {
		es = append(es, nftables.SetElement{Key: r.end.AsSlice(), IntervalEnd: true})
	}
	return es
}

// prefixes returns the range as prefixes: the one dialgate wrote, or
// the fewest that cover a range written by hand.
func (r kernelRange) prefixes() []netip.Prefix {
	if r.prefix.IsValid() {
		return []netip.Prefix{r.prefix}
	}
	top := netip.PrefixFrom(r.start, 0).Masked()
	last := lastAddr(top)
	if r.end.IsValid() {
		last = r.end.Prev()
	}
	return coverRange(top, r.start, last)
}

// coverRange returns the fewest prefixes inside p that cover exactly
// [first, last] ∩ p.
func coverRange(p netip.Prefix, first, last netip.Addr) []netip.Prefix {
	lo, hi := p.Addr(), lastAddr(p)
	switch {
	case hi.Less(first) || last.Less(lo):
		return nil
	case !lo.Less(first) && !last.Less(hi):
		return []netip.Prefix{p}
	}
	a, b := halves(p)
	return append(coverRange(a, first, last), coverRange(b, first, last)...)
}

// remaining is the time an element has left, as the kernel reports it.
func remaining(e nftables.SetElement) time.Duration {
	if e.Timeout == 0 {
		return 0
	}
	// An element about to expire must not read as permanent.
	return max(e.Expires, time.Millisecond)
}

// decodeIntervals pairs the start and end elements of an interval set
// dump (which comes in no useful order) into ranges. End elements
// without a start are skipped: nft writes one at the bottom of the
// address space, and an expired interval can leave its end behind until
// the kernel's garbage collection runs.
func decodeIntervals(es []nftables.SetElement) []kernelRange {
	es = slices.Clone(es)
	slices.SortFunc(es, func(a, b nftables.SetElement) int {
		if c := bytes.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		// Adjacent intervals share a key: the end of one sorts before
		// the start of the next.
		switch {
		case a.IntervalEnd == b.IntervalEnd:
			return 0
		case a.IntervalEnd:
			return -1
		}
		return 1
	})
	var out []kernelRange
	for i := 0; i < len(es); i++ {
		if es[i].IntervalEnd {
			continue
		}
		start, ok := netip.AddrFromSlice(es[i].Key)
		if !ok {
			continue
		}
		r := kernelRange{start: start, timeout: remaining(es[i])}
		if i+1 < len(es) && es[i+1].IntervalEnd {
			r.end, _ = netip.AddrFromSlice(es[i+1].Key)
			i++
		}
		r.prefix = rangePrefix(r.start, r.end)
		out = append(out, r)
	}
	return out
}

// rangePrefix returns the prefix that is exactly [start, end), or the
// zero Prefix.
func rangePrefix(start, end netip.Addr) netip.Prefix {
	var last netip.Addr
	if end.IsValid() {
		last = end.Prev()
	} else {
		last = lastAddr(netip.PrefixFrom(start, 0))
	}
	if !last.IsValid() || last.Less(start) || start.Is4() != last.Is4() {
		return netip.Prefix{}
	}
	bits := commonBits(start, last)
	p := netip.PrefixFrom(start, bits)
	if p.Masked().Addr() != start || lastAddr(p) != last {
		return netip.Prefix{}
	}
	return p
}

// commonBits is the length of the longest prefix a and b share.
func commonBits(a, b netip.Addr) int {
	x, y := a.AsSlice(), b.AsSlice()
	for i := range x {
		if d := x[i] ^ y[i]; d != 0 {
			n := 0
			for d&0x80 == 0 {
				d <<= 1
				n++
			}
			return i*8 + n
		}
	}
	return len(x) * 8
}
