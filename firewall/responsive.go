package firewall

import (
	"fmt"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Responsive SIP (issue 13): sources that are not whitelisted may send
// SIP REGISTER requests over UDP to the SIP ports (the udp ranges of
// Services[CodeSIPUDP]) at a small rate per source, limited in the
// kernel, so that a phone on an unknown address can reach Asterisk and
// be granted by the daemon. Nothing else from them passes: not INVITE,
// not OPTIONS, not a REGISTER over the rate.
//
// The rules sit after every whitelist accept and before the drop
// accounting, so whitelisted sources never touch them and what they
// refuse is still counted. A flow they admit is marked with the
// conntrack mark bit ResponsiveMark, and the established accept near
// the top of the chain skips marked flows: once Asterisk has answered a
// REGISTER (its 401) the UDP flow is ESTABLISHED, yet its later packets
// still go through the rules, where the sets accept them once the source
// is granted, the responsive rule accepts another REGISTER within the
// rate, and everything else is dropped.
//
//   - IPTables, per family: a rule marks the flow of every REGISTER from
//     a stranger (`-j CONNMARK --or-mark`), then a rule with the same
//     match and `-m hashlimit --hashlimit-mode srcip --hashlimit-upto
//     N/minute` accepts it within the rate. "REGISTER " must be the
//     first bytes of the UDP payload: a string match confined to the
//     bytes right after the IP and UDP headers (offset 28 for IPv4, 48
//     for IPv6; a packet with IP options or extension headers fails
//     closed). The hashlimit table's name carries the rate and burst
//     (dialgate-resp-v4-6m3b): the kernel shares a table among rules of
//     the same name and keeps the configuration it was made with, so a
//     new rate gets a new table.
//   - NFTables, per family: one rule per SIP port range, `udp dport R
//     @th,64,72 "REGISTER " update @resp-vN { saddr limit rate N/minute
//     burst B packets } ct mark set ct mark | 0x04000000 accept`, the set
//     a dynamic one of addresses whose elements expire when the source
//     has been quiet long enough for its bucket to be full again.
//
// Over TCP (the tcp ranges of Services[CodeSIPTCP]), when TCP is set, a stranger may open
// connections at the same rate, sharing the bucket of its REGISTER
// datagrams: a SYN without payload is marked and accepted within the
// rate. On a marked TCP flow a segment without payload (the handshake's
// ACK, ACKs, FIN, RST) passes, a segment whose payload starts with
// "REGISTER " passes, anything else is dropped (the connection stalls).
// Only the IPv4 header without options and the IPv6 header without
// extension headers are understood; anything else fails closed.
//
//   - IPTables: `-m u32` follows the TCP data offset. "No payload" is a
//     read of the 4 bytes ending with the first payload byte failing
//     (`! --u32 "32>>26&0x3C@17=0:0xFFFFFFFF"` for IPv4), so a 1-byte
//     payload already counts as payload; "REGISTER " is three reads at
//     the payload's start.
//   - NFTables: payload expressions are at fixed offsets, so the data
//     offset is enumerated: "no payload" is one rule per data offset
//     5-15 (`tcp doff D ip length 20+4D`, IPv6 `ip6 nexthdr tcp ip6
//     length 4D`), and "REGISTER " is recognised after a 20-byte header
//     (doff 5) or a 32-byte one (doff 8, timestamps); a data segment
//     with any other header (SACK blocks, say) is dropped.
//
// A TCP segment is not a SIP message: a REGISTER split over segments
// stalls (its second segment does not start with "REGISTER "), and a
// segment starting with a REGISTER may carry another request after it.
// Only connections are limited by the rate, not the REGISTERs sent on
// one.
type ResponsiveConfig struct {
	Enabled bool
	// PerMinute is the REGISTER requests per minute and source, 1-600;
	// 0 is DefaultResponsivePerMinute.
	PerMinute int
	// Burst is how many may come at once, 1-100; 0 is
	// DefaultResponsiveBurst.
	Burst int
	// TCP admits strangers' connections too (see above for what a TCP
	// segment can and cannot be held to); off, only UDP REGISTERs are.
	TCP bool
}

// Responsive defaults.
const (
	DefaultResponsivePerMinute = 6
	DefaultResponsiveBurst     = 3
)

// ResponsiveMark is the conntrack mark bit of flows the responsive rules
// admitted (bit 26). Nothing else of dialgate uses conntrack marks;
// other software using the same bit would see its flows skip the
// established accept while responsive SIP is on.
const ResponsiveMark = 0x04000000

// respSetMaxElem bounds the nftables rate set per family; a full set
// takes no new sources (their REGISTERs are dropped) until elements
// expire. The hashlimit tables get the same bound.
const respSetMaxElem = 1 << 16

// Validate checks the rate and burst (zero means the default), whether
// or not responsive SIP is enabled.
func (r ResponsiveConfig) Validate() error {
	if r.PerMinute < 0 || r.PerMinute > 600 {
		return fmt.Errorf("responsive sip: per minute %d: must be 1-600", r.PerMinute)
	}
	if r.Burst < 0 || r.Burst > 100 {
		return fmt.Errorf("responsive sip: burst %d: must be 1-100", r.Burst)
	}
	return nil
}

// rate returns the effective per-minute rate and burst.
func (r ResponsiveConfig) rate() (perMinute, burst int) {
	perMinute, burst = r.PerMinute, r.Burst
	if perMinute == 0 {
		perMinute = DefaultResponsivePerMinute
	}
	if burst == 0 {
		burst = DefaultResponsiveBurst
	}
	return perMinute, burst
}

// refill is how long a quiet source takes to get its whole burst back:
// how long the kernel must remember it, rounded up to whole seconds.
func (r ResponsiveConfig) refill() time.Duration {
	perMinute, burst := r.rate()
	secs := (burst*60 + perMinute - 1) / perMinute
	return time.Duration(secs) * time.Second
}

// respPorts are the udp ranges of the SIP over UDP service.
func (c Config) respPorts() []PortRange {
	var out []PortRange
	for _, p := range c.Services[CodeSIPUDP] {
		if p.Proto == "udp" {
			out = append(out, p)
		}
	}
	return out
}

// respTCPPorts are the tcp ranges of the SIP over TCP service.
func (c Config) respTCPPorts() []PortRange {
	if !c.Responsive.TCP {
		return nil
	}
	var out []PortRange
	for _, p := range c.Services[CodeSIPTCP] {
		if p.Proto == "tcp" {
			out = append(out, p)
		}
	}
	return out
}

// respRegister is what a datagram's payload must start with.
const respRegister = "REGISTER "

// hashlimitName is the hashlimit table of family f.
func (r ResponsiveConfig) hashlimitName(f Family) string {
	perMinute, burst := r.rate()
	return fmt.Sprintf("dialgate-resp-%s-%dm%db", f, perMinute, burst)
}

// responsiveRules adds the iptables rules (see ResponsiveConfig).
func (c Config) responsiveRules(f Family, add func(...string)) {
	if !c.Responsive.Enabled {
		return
	}
	from := 28 // IPv4 header without options, UDP header
	if f == V6 {
		from = 48
	}
	for _, spec := range portRules(c.respPorts()) {
		spec = append(spec, "-m", "string", "--string", respRegister, "--algo", "bm",
			"--from", fmt.Sprint(from), "--to", fmt.Sprint(from+len(respRegister)))
		add(append(spec[:len(spec):len(spec)], "-j", "CONNMARK", "--or-mark", fmt.Sprintf("%#x", ResponsiveMark))...)
		add(append(spec[:len(spec):len(spec)], c.hashlimit(f)...)...)
	}
	hdr, noPayload, register := respTCPMatches(f)
	mark := fmt.Sprintf("%#x", ResponsiveMark)
	for _, spec := range portRules(c.respTCPPorts()) {
		// The marked flow's rules come first: the SYN's mark rule below
		// marks before its rate is checked, and a SYN over the rate must
		// not find its flow marked here.
		marked := append(spec[:len(spec):len(spec)], "-m", "connmark", "--mark", mark+"/"+mark)
		add(append(marked[:len(marked):len(marked)], "-m", "u32", "--u32", hdr, "-m", "u32", "!", "--u32", noPayload, "-j", "ACCEPT")...)
		add(append(marked[:len(marked):len(marked)], "-m", "u32", "--u32", register, "-j", "ACCEPT")...)
		syn := append(spec[:len(spec):len(spec)], "-m", "tcp", "--tcp-flags", "FIN,SYN,RST,ACK", "SYN",
			"-m", "u32", "--u32", hdr, "-m", "u32", "!", "--u32", noPayload)
		add(append(syn[:len(syn):len(syn)], "-j", "CONNMARK", "--or-mark", mark)...)
		add(append(syn[:len(syn):len(syn)], c.hashlimit(f)...)...)
	}
}

// hashlimit is the rate match and accept of the iptables rules. UDP
// and TCP share the table: one bucket per source.
func (c Config) hashlimit(f Family) []string {
	perMinute, burst := c.Responsive.rate()
	return []string{"-m", "hashlimit",
		"--hashlimit-upto", fmt.Sprintf("%d/minute", perMinute), "--hashlimit-burst", fmt.Sprint(burst),
		"--hashlimit-mode", "srcip", "--hashlimit-name", c.Responsive.hashlimitName(f),
		"--hashlimit-htable-max", fmt.Sprint(respSetMaxElem),
		"--hashlimit-htable-expire", fmt.Sprint(c.Responsive.refill().Milliseconds()),
		"-j", "ACCEPT"}
}

// respTCPMatches are the u32 expressions of family f's TCP rules: hdr
// holds for the plain IP header (IPv4 without options, IPv6 whose next
// header is TCP); hasPayload for a segment with at least one byte of
// payload (the 4-byte read ending at the first payload byte succeeds;
// used negated); register for a payload starting with "REGISTER ".
// Each of them assumes hdr.
func respTCPMatches(f Family) (hdr, hasPayload, register string) {
	// IPv4: IHL 5, TCP header at 20, its data offset in byte 32.
	hdr, doff, base := "0>>22&0x3C=0x14", "32>>26&0x3C@", 20
	if f == V6 {
		hdr, doff, base = "4>>8&0xFF=0x6", "52>>26&0x3C@", 40
	}
	hasPayload = fmt.Sprintf("%s%d=0x0:0xFFFFFFFF", doff, base-3)
	register = fmt.Sprintf("%s&&%s%d=0x52454749&&%s%d=0x53544552&&%s%d>>24=0x20",
		hdr, doff, base, doff, base+4, doff, base+8)
	return hdr, hasPayload, register
}

// established is the iptables established accept: with responsive SIP
// on, marked flows are not accepted here.
func (c Config) established() []string {
	r := []string{"-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED"}
	if c.Responsive.Enabled {
		mark := fmt.Sprintf("%#x", ResponsiveMark)
		r = append(r, "-m", "connmark", "!", "--mark", mark+"/"+mark)
	}
	return append(r, "-j", "ACCEPT")
}

// nftRespSetName is family f's rate set: resp-v4, resp-v6.
func nftRespSetName(f Family) string { return "resp-" + f.String() }

// nftRespSet is family f's rate set as Apply creates it (always, whether
// or not responsive SIP is on, so the table's shape does not depend on
// it): addresses, filled by the rules, each element with its own
// timeout, given by the rule.
func nftRespSet(f Family, id uint32) *nftables.Set {
	key := nftables.TypeIPAddr
	if f == V6 {
		key = nftables.TypeIP6Addr
	}
	return &nftables.Set{Table: inetTable(), ID: id, Name: nftRespSetName(f), KeyType: key,
		Dynamic: true, HasTimeout: true, Size: respSetMaxElem,
		Comment: fmt.Sprintf("responsive sip rate per source, %s", f)}
}

// respShapeOK reports whether kernel set s is the rate set of family f.
func respShapeOK(f Family, s *nftables.Set) bool {
	return s != nil && s.KeyType.Name == nftRespSet(f, 0).KeyType.Name && s.HasTimeout && s.Dynamic && !s.Interval && !s.IsMap && !s.Constant
}

// nftMarkClear matches flows without ResponsiveMark: `ct mark &
// 0x04000000 == 0`. The mark is a host-endian 32-bit value.
func nftMarkClear() match {
	return cond(
		&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ResponsiveMark),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		cmpEq(binaryutil.NativeEndian.PutUint32(0)))
}

// nftMarkSet is `ct mark set ct mark | ResponsiveMark`.
func nftMarkSet() match {
	return cond(
		&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(^uint32(ResponsiveMark)),
			Xor:  binaryutil.NativeEndian.PutUint32(ResponsiveMark)},
		&expr.Ct{Register: 1, Key: expr.CtKeyMARK, SourceRegister: true})
}

// nftResponsiveRules adds the nftables rules (see ResponsiveConfig).
func (c Config) nftResponsiveRules(add func(nftRule)) {
	if !c.Responsive.Enabled {
		return
	}
	perMinute, burst := c.Responsive.rate()
	for _, g := range byProto(c.respPorts()) {
		for _, r := range g.ranges {
			for _, f := range families {
				limit := cond(loadSaddr(f), &expr.Dynset{SrcRegKey: 1, SetName: nftRespSetName(f),
					Operation: uint32(unix.NFT_DYNSET_OP_UPDATE), Timeout: c.Responsive.refill(),
					Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(perMinute),
						Unit: expr.LimitTimeMinute, Burst: uint32(burst)}}})
				add(rule(accept, l4proto("udp"), dport(r), udpPayloadPrefix(respRegister), nfproto(f), limit, nftMarkSet()))
			}
		}
	}
	for _, g := range byProto(c.respTCPPorts()) {
		for _, r := range g.ranges {
			for _, f := range families {
				limit := cond(loadSaddr(f), &expr.Dynset{SrcRegKey: 1, SetName: nftRespSetName(f),
					Operation: uint32(unix.NFT_DYNSET_OP_UPDATE), Timeout: c.Responsive.refill(),
					Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(perMinute),
						Unit: expr.LimitTimeMinute, Burst: uint32(burst)}}})
				// On a marked flow: no payload, or "REGISTER " after a
				// header of 20 or 32 bytes (first, as for iptables).
				for doff := byte(5); doff <= 15; doff++ {
					add(rule(accept, l4proto("tcp"), dport(r), nftMarkHas(), nfproto(f), nftNoPayload(f, doff)))
				}
				for _, doff := range []byte{5, 8} {
					add(rule(accept, l4proto("tcp"), dport(r), nftMarkHas(), nfproto(f), nftPlainHdr(f), nftDoff(doff),
						thPayloadPrefix(4*uint32(doff), respRegister)))
				}
				// A SYN without payload, within the rate: marked.
				for doff := byte(5); doff <= 15; doff++ {
					add(rule(accept, l4proto("tcp"), dport(r), nftTCPFlags(0x17, 0x02), nfproto(f), nftNoPayload(f, doff), limit, nftMarkSet()))
				}
			}
		}
	}
}

// nftMarkHas matches flows with ResponsiveMark: `ct mark & 0x04000000
// == 0x04000000`.
func nftMarkHas() match {
	return cond(
		&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ResponsiveMark),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		cmpEq(binaryutil.NativeEndian.PutUint32(ResponsiveMark)))
}

// nftTCPFlags is `tcp flags & mask == want`.
func nftTCPFlags(mask, want byte) match { return nftTCPByte(13, mask, want) }

// nftDoff is `tcp doff d`.
func nftDoff(d byte) match { return nftTCPByte(12, 0xf0, d<<4) }

// nftTCPByte is `@th,off*8,8 & mask == want`.
func nftTCPByte(off uint32, mask, want byte) match {
	return cond(
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{mask}, Xor: []byte{0}},
		cmpEq([]byte{want}))
}

// nftPlainHdr matches family f's IP header without options or
// extension headers, TCP following: IPv4 `ip version 4 ip hdrlength 5`
// (the first byte 0x45), IPv6 `ip6 nexthdr tcp`.
func nftPlainHdr(f Family) match {
	if f == V4 {
		return cond(&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 0, Len: 1}, cmpEq([]byte{0x45}))
	}
	return cond(&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 6, Len: 1}, cmpEq([]byte{unix.IPPROTO_TCP}))
}

// nftNoPayload matches a TCP segment of data offset d without payload:
// the plain header, `tcp doff d` and an IP length of just the headers.
func nftNoPayload(f Family, d byte) match {
	var mt match
	mt.exprs = append(mt.exprs, nftPlainHdr(f).exprs...)
	mt.exprs = append(mt.exprs, nftDoff(d).exprs...)
	l := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 2, Len: 2}
	n := uint16(20 + 4*uint16(d))
	if f == V6 {
		l.Offset, n = 4, 4*uint16(d)
	}
	mt.exprs = append(mt.exprs, l, cmpEq(binaryutil.BigEndian.PutUint16(n)))
	return mt
}
