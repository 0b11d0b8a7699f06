package tm3

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// Networks dialgate admits by its own rules (DESIGN.md: loopback, and the
// default LAN ranges).
var (
	loopbackNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	lanNets      = []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("fc00::/7"),
	}
	linkLocalNets = []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("fe80::/10")}
)

// Narrowest prefix lengths imported; dialgate refuses wider networks
// without --force, so they are left for the administrator.
const (
	minBitsV4 = 8
	minBitsV6 = 16
)

// within reports whether all of p lies inside one of nets.
func within(p netip.Prefix, nets []netip.Prefix) bool {
	for _, n := range nets {
		if n.Addr().Is4() == p.Addr().Is4() && n.Bits() <= p.Bits() && n.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// source is a classified -s value or account-file address: either an
// entry (kind, value) or a reason to skip it.
type source struct {
	kind, value string
	skip        string
}

// classify parses one source strictly: an IPv4/IPv6 address, a network
// in CIDR form (or with an IPv4 dotted mask, which iptables accepts), or
// an RFC 1123 host name.
func classify(s string) source {
	skip := func(why string) source { return source{skip: why} }
	if s == "" {
		return skip("empty source address")
	}
	if strings.EqualFold(s, "localhost") || strings.EqualFold(s, "localhost.") {
		return skip(ReasonSelfHandled + " (loopback)")
	}
	addrPart, maskPart, hasMask := strings.Cut(s, "/")
	addr, err := netip.ParseAddr(addrPart)
	if err != nil {
		if _, herr := canonicalHost(addrPart); herr == nil {
			if hasMask {
				return skip("host name " + quote(addrPart) + " with a mask is not representable; add the network by hand")
			}
			name, _ := canonicalHost(s)
			return source{kind: KindFQDN, value: name}
		}
		return skip(quote(s) + " is not an IP address, a network or a valid host name")
	}
	if addr.Zone() != "" {
		return skip("zoned address " + quote(s) + " is not allowed")
	}
	addr = addr.Unmap()
	bits := addr.BitLen()
	if hasMask {
		b, ok := parseMask(maskPart, addr.Is4())
		if !ok {
			return skip("mask " + quote(maskPart) + " of " + quote(s) + " is not a prefix length or contiguous netmask")
		}
		bits = b
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return skip(quote(s) + " is not a valid network")
	}
	switch {
	case bits == 0:
		return skip(quote(s) + " would admit everyone")
	case addr.Is4() && bits < minBitsV4:
		return skip(quote(s) + " is wider than /8; dialgate refuses it without --force, add it by hand if it is meant")
	case addr.Is6() && bits < minBitsV6:
		return skip(quote(s) + " is wider than /16; dialgate refuses it without --force, add it by hand if it is meant")
	case p.Addr().IsMulticast():
		return skip(quote(s) + " is a multicast address")
	case p.Addr().IsUnspecified():
		return skip(quote(s) + " starts at the unspecified address (\"this network\")")
	case within(p, loopbackNets):
		return skip(ReasonSelfHandled + " (loopback)")
	case within(p, lanNets):
		return skip(ReasonSelfHandled + " (LAN range)")
	case within(p, linkLocalNets):
		return skip(quote(s) + " is link-local, never seen from the Internet")
	}
	if bits == addr.BitLen() {
		switch {
		case addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			return skip(quote(s) + " is the broadcast address")
		}
		return source{kind: KindIP, value: addr.String()}
	}
	return source{kind: KindCIDR, value: p.String()}
}

// parseMask reads a prefix length or, for IPv4, a dotted netmask that must
// be contiguous.
func parseMask(m string, v4 bool) (int, bool) {
	if m != "" && len(m) <= 3 && strings.Trim(m, "0123456789") == "" {
		n, _ := strconv.Atoi(m)
		if (v4 && n <= 32) || (!v4 && n <= 128) {
			return n, true
		}
		return 0, false
	}
	if !v4 {
		return 0, false
	}
	a, err := netip.ParseAddr(m)
	if err != nil || !a.Is4() {
		return 0, false
	}
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	ones := 0
	for v&0x80000000 != 0 {
		ones++
		v <<= 1
	}
	if v != 0 {
		return 0, false // not contiguous
	}
	return ones, true
}

// canonicalHost checks a DNS host name by RFC 1123 (labels of letters,
// digits and inner hyphens, 1-63 long, 253 in all) with dialgate's extra
// rules (two labels at least, a top label that is not all digits) and
// returns it lower-cased without a final dot.
func canonicalHost(s string) (string, error) {
	name := strings.ToLower(strings.TrimSuffix(s, "."))
	bad := func() (string, error) { return "", errBadHost }
	if name == "" || len(name) > 253 {
		return bad()
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return bad()
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return bad()
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return bad()
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return bad()
	}
	return name, nil
}

var errBadHost = errors.New("not a valid host name")
