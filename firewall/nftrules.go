package firewall

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// This file turns a Config into the rules of the nftables input chain:
// the same list, in the same order, as Config.rules gives iptables.

// Names in the kernel: table inet dialgate, base chain input.
const (
	NFTTable = "dialgate"
	NFTChain = "input"
	// nftPriority is filter - 10: ahead of every filter-priority chain of
	// other tables (iptables-nft's INPUT, firewalld, a hand-written
	// inet filter), as the iptables backend's jump sits first in INPUT.
	nftPriority = -10
)

// nftFormat goes into the fingerprint; bump it when the encoding of the
// rules changes without the Config changing, so Apply replaces them.
const nftFormat = "dialgate-nft-1"

// nftRule is one rule of the chain. A rule may look up anonymous sets
// (the ICMP types), which the kernel binds to the rule: they are created
// in the same transaction and go when the rule goes. In exprs, a Lookup
// of such a set carries the set's 1-based index in anon as its SetID and
// no name until the transaction gives it a real one.
type nftRule struct {
	exprs []expr.Any
	anon  []anonSet
}

type anonSet struct {
	key   nftables.SetDatatype
	elems []nftables.SetElement
}

// nftPlan is what Config makes of the chain: its rules and their
// fingerprint, which the first rule carries as its comment.
type nftPlan struct {
	rules []nftRule
	fp    string
}

// match is one condition of a rule: expressions, and the anonymous set
// the last of them looks up, if any.
type match struct {
	exprs []expr.Any
	anon  *anonSet
}

// cond is a match made of plain expressions.
func cond(e ...expr.Any) match { return match{exprs: e} }

// rule joins matches and ends with a verdict, or with final if it is not
// a verdict (reject).
func rule(final expr.Any, ms ...match) nftRule {
	var r nftRule
	for _, mt := range ms {
		r.exprs = append(r.exprs, mt.exprs...)
		if mt.anon != nil {
			r.anon = append(r.anon, *mt.anon)
			r.exprs[len(r.exprs)-1] = &expr.Lookup{SourceRegister: 1, SetID: uint32(len(r.anon))}
		}
	}
	r.exprs = append(r.exprs, final)
	return r
}

var (
	accept = &expr.Verdict{Kind: expr.VerdictAccept}
	drop   = &expr.Verdict{Kind: expr.VerdictDrop}
)

func cmpEq(data []byte) expr.Any { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data} }

func l4proto(proto string) match {
	p := byte(unix.IPPROTO_UDP)
	if proto == "tcp" {
		p = unix.IPPROTO_TCP
	}
	return l4protoNum(p)
}

func l4protoNum(p byte) match {
	return cond(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, cmpEq([]byte{p}))
}

// nfproto must come before anything that reads the network header: an
// inet chain sees both families.
func nfproto(f Family) match {
	p := byte(unix.NFPROTO_IPV4)
	if f == V6 {
		p = unix.NFPROTO_IPV6
	}
	return cond(&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, cmpEq([]byte{p}))
}

func loadSaddr(f Family) expr.Any {
	if f == V4 {
		return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
	}
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16}
}

// saddrIn matches a source address in prefix p (nfproto included).
func saddrIn(p netip.Prefix) match {
	f := familyOf(p)
	mt := nfproto(f)
	mt.exprs = append(mt.exprs, loadSaddr(f))
	if !isHost(p) {
		n := p.Addr().BitLen() / 8
		mask := make([]byte, n)
		for i := 0; i < p.Bits(); i++ {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		mt.exprs = append(mt.exprs, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(n), Mask: mask, Xor: make([]byte, n)})
	}
	mt.exprs = append(mt.exprs, cmpEq(p.Addr().AsSlice()))
	return mt
}

// saddrSets matches a source address in any (or, inverted, none) of the
// named sets of family f. The address is loaded once; lookups do not
// change the register.
func saddrSets(f Family, invert bool, sets ...string) match {
	mt := nfproto(f)
	mt.exprs = append(mt.exprs, loadSaddr(f))
	for _, s := range sets {
		mt.exprs = append(mt.exprs, &expr.Lookup{SourceRegister: 1, SetName: s, Invert: invert})
	}
	return mt
}

// dport matches the destination port against one range; l4proto must
// have been matched before.
//
// A list of ranges would be one rule with an anonymous interval set, but
// a freshly created interval set can miss lookups around the commit of
// its transaction (see NFTables): each rule replacement would drop some
// allowed packets. One rule per range costs a comparison per rule and no
// set.
func dport(r PortRange) match {
	load := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
	be := binaryutil.BigEndian.PutUint16
	if r.From == r.To {
		return cond(load, cmpEq(be(r.From)))
	}
	return cond(load, &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: be(r.From), ToData: be(r.To)})
}

// mergePorts sorts ranges and joins the ones that overlap or touch
// (5060:5069 and 5061), so that each port is matched by one rule.
func mergePorts(ranges []PortRange) []PortRange {
	rs := slices.Clone(ranges)
	slices.SortFunc(rs, func(a, b PortRange) int { return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To)) })
	var out []PortRange
	for _, r := range rs {
		if n := len(out); n > 0 && uint32(r.From) <= uint32(out[n-1].To)+1 {
			out[n-1].To = max(out[n-1].To, r.To)
			continue
		}
		out = append(out, r)
	}
	return out
}

// icmpTypes matches the ICMP (or ICMPv6) type against a list, in an
// anonymous set. Its one-byte key makes it a bitmap (or hash) set, whose
// elements switch generation with the transaction: unlike an interval
// set it is safe to create together with the rule.
func icmpTypes(key nftables.SetDatatype, types ...byte) match {
	set := &anonSet{key: key}
	for _, t := range types {
		set.elems = append(set.elems, nftables.SetElement{Key: []byte{t}})
	}
	load := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1}
	return match{exprs: []expr.Any{load, nil}, anon: set}
}

// udpPayloadPrefix matches datagrams whose payload starts with s. The UDP
// header is 8 bytes, so the payload is the transport header from offset
// 8. A comparison covers at most 16 bytes (one register), so longer
// strings are compared piecewise; a datagram shorter than s fails the
// load and so the match.
func udpPayloadPrefix(s string) match { return thPayloadPrefix(8, s) }

// thPayloadPrefix matches packets whose bytes from the transport
// header's offset off on start with s.
func thPayloadPrefix(off uint32, s string) match {
	var mt match
	for i := 0; i < len(s); i += 16 {
		chunk := s[i:min(i+16, len(s))]
		mt.exprs = append(mt.exprs,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off + uint32(i), Len: uint32(len(chunk))},
			cmpEq([]byte(chunk)))
	}
	return mt
}

// ICMP types, as Config.rules lists them for iptables.
var (
	// echo-reply, destination-unreachable, source-quench, time-exceeded,
	// parameter-problem
	icmp4Types = []byte{0, 3, 4, 11, 12}
	// destination-unreachable, packet-too-big, time-exceeded,
	// parameter-problem, echo-reply, router solicitation and
	// advertisement, neighbour solicitation and advertisement
	icmp6Types = []byte{1, 2, 3, 4, 129, 133, 134, 135, 136}
)

// nftPlanFor builds the chain for c. c must be valid.
func nftPlanFor(c Config) (nftPlan, error) {
	var rs []nftRule
	add := func(r nftRule) { rs = append(rs, r) }

	var lo [16]byte // iifname is compared as the full, zero-padded IFNAMSIZ buffer
	copy(lo[:], "lo")
	add(rule(accept, cond(&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, cmpEq(lo[:]))))
	if c.Block {
		// Blocked sources (see blocks.go), ahead of the established
		// accept, as in Config.rules.
		for _, f := range families {
			add(rule(drop, saddrSets(f, false, nftBlockSetName(f))))
		}
	}
	established := []match{cond(
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	)}
	if c.Responsive.Enabled {
		// Flows the responsive rules admitted go through the rules again
		// (see responsive.go).
		established = append(established, nftMarkClear())
	}
	add(rule(accept, established...))
	if c.ICMP {
		add(rule(accept, l4protoNum(unix.IPPROTO_ICMP), icmpTypes(nftables.TypeICMPType, icmp4Types...)))
		add(rule(accept, l4protoNum(unix.IPPROTO_ICMPV6), icmpTypes(nftables.TypeICMP6Type, icmp6Types...)))
	}
	for _, p := range c.LAN {
		add(rule(accept, saddrIn(p)))
	}
	for _, g := range byProto(c.Open) {
		for _, r := range g.ranges {
			add(rule(accept, l4proto(g.proto), dport(r)))
		}
	}
	c.nftSIPRules(add)
	for _, f := range families {
		add(rule(accept, saddrSets(f, false, nftSetName(CodeAll, f, hostSet))))
		add(rule(accept, saddrSets(f, false, nftSetName(CodeAll, f, netSet))))
	}
	for code := 1; code < NumCodes; code++ {
		for _, g := range byProto(c.Services[code]) {
			for _, r := range g.ranges {
				for _, f := range families {
					for _, k := range []setKind{hostSet, netSet} {
						add(rule(accept, l4proto(g.proto), dport(r), saddrSets(f, false, nftSetName(code, f, k))))
					}
				}
			}
		}
	}
	c.nftResponsiveRules(add)
	for _, f := range families {
		for _, r := range nftDropRules(f) {
			add(r)
		}
	}
	if c.Reject {
		add(rule(&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}))
	} else {
		add(rule(drop))
	}
	fp, err := nftFingerprint(rs)
	if err != nil {
		return nftPlan{}, err
	}
	return nftPlan{rules: rs, fp: fp}, nil
}

// nftSIPRules is sipDomainRules for nftables: a REGISTER for a secret
// domain is accepted from anywhere, other REGISTER and OPTIONS requests
// are dropped unless the source is whitelisted for SIP over UDP or for
// everything.
//
// Unlike the iptables string match, which searches the whole packet,
// these rules look at the start of the payload, where a SIP request
// line is: "REGISTER sip:<domain>" must be the first bytes of the
// datagram. That is stricter (the domain in some header does not count)
// and needs no xt compatibility match.
//
// Only UDP is covered. Over TCP the request line is not in the packet
// that opens the connection: the SYN carries no payload, so it never
// matches and falls through to the per-service rules, which drop a
// stranger; and every later segment is ESTABLISHED, accepted by the
// conntrack rule before these. The iptables backend's TCP string rules
// are inert for the same reason, so leaving TCP out loses nothing.
func (c Config) nftSIPRules(add func(nftRule)) {
	if len(c.SIPDomains) == 0 {
		return
	}
	ports := PortRange{Proto: "udp", From: c.SIPPorts.From, To: c.SIPPorts.To}
	for _, d := range c.SIPDomains {
		add(rule(accept, l4proto("udp"), dport(ports), udpPayloadPrefix("REGISTER sip:"+d)))
	}
	for _, probe := range []string{"REGISTER sip:", "OPTIONS sip:"} {
		for _, f := range families {
			add(rule(drop, l4proto("udp"), dport(ports), udpPayloadPrefix(probe),
				saddrSets(f, true,
					nftSetName(CodeAll, f, hostSet), nftSetName(CodeAll, f, netSet),
					nftSetName(CodeSIPUDP, f, hostSet), nftSetName(CodeSIPUDP, f, netSet))))
		}
	}
}

type protoPorts struct {
	proto  string
	ranges []PortRange
}

// byProto groups ranges by protocol, in the order portRules uses, each
// group's ranges merged.
func byProto(ports []PortRange) []protoPorts {
	var out []protoPorts
	for _, proto := range []string{"tcp", "udp"} {
		var rs []PortRange
		for _, p := range ports {
			if p.Proto == proto {
				rs = append(rs, p)
			}
		}
		if len(rs) > 0 {
			out = append(out, protoPorts{proto, mergePorts(rs)})
		}
	}
	return out
}

// nftFingerprint hashes the chain as the kernel receives it: the wire
// encoding of every expression and anonymous set, plus the format
// version and the chain's hook.
func nftFingerprint(rs []nftRule) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s %s prio %d\n", nftFormat, NFTTable, NFTChain, nftPriority)
	var n [4]byte
	for _, r := range rs {
		for _, e := range r.exprs {
			b, err := expr.Marshal(byte(nftables.TableFamilyINet), e)
			if err != nil {
				return "", fmt.Errorf("encode rule: %w", err)
			}
			binary.BigEndian.PutUint32(n[:], uint32(len(b)))
			h.Write(n[:])
			h.Write(b)
		}
		for _, s := range r.anon {
			fmt.Fprintf(h, "set %s", s.key.Name)
			for _, e := range s.elems {
				fmt.Fprintf(h, " %x/%v", e.Key, e.IntervalEnd)
			}
		}
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// nftDropRules count what reaches the final verdict in family f's drop
// set (see drops.go): `update @drops-vN { saddr . meta l4proto . th
// dport }` for tcp and udp, and with port 0 for other protocols (whose
// transport header holds no port).
//
// A concatenation puts each field in a 32-bit register of its own after
// the address: reg 1 holds the address (4 or 16 bytes), then the
// protocol and the port. The numbers are those the kernel hands back
// (a 32-bit register at a 16-byte boundary is named as the 16-byte
// one), so that the rules read back as written.
func nftDropRules(f Family) []nftRule {
	protoReg, portReg := uint32(9), uint32(10) // NFT_REG32_01, _02
	if f == V6 {
		protoReg, portReg = 2, 13 // NFT_REG_2 (= NFT_REG32_04), NFT_REG32_05
	}
	update := &expr.Dynset{SrcRegKey: 1, SetName: nftDropsSetName(f), Operation: uint32(unix.NFT_DYNSET_OP_UPDATE)}
	key := func(port expr.Any) match {
		return cond(loadSaddr(f), &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: protoReg}, port)
	}
	// No anonymous {tcp, udp} set (see nftPlanFor's test): a rule each.
	var rs []nftRule
	for _, proto := range []string{"tcp", "udp"} {
		rs = append(rs, rule(update, nfproto(f), l4proto(proto),
			key(&expr.Payload{DestRegister: portReg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})))
	}
	portless := cond(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{unix.IPPROTO_UDP}})
	return append(rs, rule(update, nfproto(f), portless, key(&expr.Immediate{Register: portReg, Data: []byte{0, 0}})))
}
