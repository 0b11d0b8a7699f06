package tm3

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// portRange is an inclusive destination-port range.
type portRange struct{ lo, hi int }

func (r portRange) String() string {
	if r.lo == r.hi {
		return strconv.Itoa(r.lo)
	}
	return strconv.Itoa(r.lo) + ":" + strconv.Itoa(r.hi)
}

// service is one protocol/port range of a permission code.
type service struct {
	code  int
	proto string
	ports portRange
}

// services are dialgate's default ports per permission code (DESIGN.md,
// "Permission codes"): add-ip's ports plus 443 for the web GUI and 10000,
// stock Webmin's port, for Webmin.
var services = []service{
	{1, "udp", portRange{5060, 5069}},
	{2, "tcp", portRange{5060, 5069}},
	{3, "udp", portRange{4569, 4569}},
	{4, "tcp", portRange{80, 80}},
	{4, "tcp", portRange{443, 443}},
	{4, "tcp", portRange{9080, 9080}},
	{5, "tcp", portRange{9001, 9001}},
	{5, "tcp", portRange{10000, 10000}},
	{6, "tcp", portRange{21, 21}},
	{7, "udp", portRange{69, 69}},
	{8, "tcp", portRange{22, 22}},
	{8, "tcp", portRange{9022, 9022}},
	{9, "tcp", portRange{4445, 4445}},
}

// rtp is the RTP media range that dialgate opens to everyone by default
// (Asterisk's rtp.conf).
var rtp = portRange{10000, 20000}

// wellKnownPorts are the few service names a hand-edited file may use
// instead of numbers (iptables looks them up in /etc/services).
var wellKnownPorts = map[string]int{
	"ftp": 21, "ssh": 22, "http": 80, "www": 80, "tftp": 69, "https": 443,
	"sip": 5060, "sip-tls": 5061, "iax": 4569, "webmin": 10000,
}

func parsePort(s string) (int, error) {
	if p, ok := wellKnownPorts[strings.ToLower(s)]; ok {
		return p, nil
	}
	if s == "" || len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("port %s is not a number 0-65535", quote(s))
	}
	p, err := strconv.Atoi(s)
	if err != nil || p > 65535 {
		return 0, fmt.Errorf("port %s is not a number 0-65535", quote(s))
	}
	return p, nil
}

// parsePortRange reads "N", "N:M", "N:" (to 65535) or ":M" (from 0), the
// forms iptables accepts.
func parsePortRange(s string) (portRange, error) {
	lo, hi, isRange := strings.Cut(s, ":")
	if !isRange {
		p, err := parsePort(s)
		return portRange{p, p}, err
	}
	r := portRange{0, 65535}
	var err error
	if lo != "" {
		if r.lo, err = parsePort(lo); err != nil {
			return r, err
		}
	}
	if hi != "" {
		if r.hi, err = parsePort(hi); err != nil {
			return r, err
		}
	}
	if r.lo > r.hi {
		return r, fmt.Errorf("port range %s is reversed", quote(s))
	}
	return r, nil
}

// parsePortList reads a multiport list "80,443,9000:9010".
func parsePortList(s string) ([]portRange, error) {
	var out []portRange
	for _, f := range strings.Split(s, ",") {
		r, err := parsePortRange(f)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// subtract returns the parts of rs not covered by cover.
func subtract(rs []portRange, cover []portRange) []portRange {
	slices.SortFunc(cover, func(a, b portRange) int { return a.lo - b.lo })
	var out []portRange
	for _, r := range rs {
		lo := r.lo
		for _, c := range cover {
			if c.hi < lo || c.lo > r.hi {
				continue
			}
			if c.lo > lo {
				out = append(out, portRange{lo, c.lo - 1})
			}
			lo = max(lo, c.hi+1)
		}
		if lo <= r.hi {
			out = append(out, portRange{lo, r.hi})
		}
	}
	return out
}

// portMapping is how one rule's protocol and ports map to codes.
type portMapping struct {
	codes    []int
	unmapped []portRange // ports of proto no code covers (outside RTP)
	rtpOnly  bool        // every port left over is in the RTP range
	everyOne bool        // the rule matched every port of proto
}

// mapPorts maps a rule to codes. proto is "" (any protocol), "tcp" or
// "udp"; ports nil means no port match.
func mapPorts(proto string, ports []portRange) portMapping {
	if proto == "" {
		return portMapping{codes: []int{0}}
	}
	var m portMapping
	if ports == nil {
		ports = []portRange{{0, 65535}}
		m.everyOne = true
	}
	var cover []portRange
	for _, s := range services {
		if s.proto != proto {
			continue
		}
		for _, r := range ports {
			if s.ports.lo <= r.hi && r.lo <= s.ports.hi {
				m.codes = append(m.codes, s.code)
				break
			}
		}
		cover = append(cover, s.ports)
	}
	m.codes = normPerms(m.codes)
	left := subtract(ports, cover)
	if proto == "udp" {
		m.unmapped = subtract(left, []portRange{rtp})
	} else {
		m.unmapped = left
	}
	m.rtpOnly = len(left) > 0 && len(m.unmapped) == 0
	return m
}

// describeRanges renders "udp/5070:5080,6000" with at most a few ranges.
func describeRanges(proto string, rs []portRange) string {
	const show = 6
	parts := make([]string, 0, show+1)
	for i, r := range rs {
		if i == show {
			parts = append(parts, fmt.Sprintf("and %d more", len(rs)-show))
			break
		}
		parts = append(parts, r.String())
	}
	return proto + "/" + strings.Join(parts, ",")
}

func codesString(codes []int) string {
	s := make([]string, len(codes))
	for i, c := range codes {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}
