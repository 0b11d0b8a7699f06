package firewall

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Config is the static part of the firewall: everything the rules are
// built from. Changing it means a chain rebuild; changing who is in the
// sets does not.
type Config struct {
	// LAN ranges are admitted to every service. Empty on cloud servers,
	// where a provider may route private ranges to the host.
	LAN []netip.Prefix
	// Services maps permission codes 1-9 to their ports.
	Services map[int][]PortRange
	// Open lists ports open to everyone (RTP media by default).
	Open []PortRange
	// ICMP admits the essential ICMP/ICMPv6 types (errors, echo reply,
	// neighbour discovery). Turning it off breaks IPv6 on most links.
	ICMP bool
	// Reject answers refused packets with an ICMP error instead of a
	// silent drop.
	Reject bool
	// SIPDomains are secret SIP domains: a REGISTER for one of them is
	// let in from anywhere, other REGISTER and OPTIONS probes from
	// addresses not whitelisted for SIP are dropped (the Travelin' Man 3
	// defence against SIP scanners).
	SIPDomains []string
	// SIPPorts are the ports the secret-domain rules watch, udp and tcp.
	SIPPorts PortRange
	// Block drops the sources in the block sets (see blocks.go) ahead of
	// every rule but loopback.
	Block bool
	// Responsive lets strangers send SIP REGISTER at a limited rate (see
	// ResponsiveConfig).
	Responsive ResponsiveConfig
}

// MaxSIPDomainLen keeps "REGISTER sip:<domain>" within the 128 bytes the
// iptables string match accepts.
const MaxSIPDomainLen = 100

// DefaultLAN is RFC 1918 plus IPv6 unique local addresses.
func DefaultLAN() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("fc00::/7"),
	}
}

// DefaultConfig is what a fresh install gets.
func DefaultConfig() Config {
	return Config{
		LAN:      DefaultLAN(),
		Services: DefaultServices(),
		Open:     []PortRange{{"udp", 10000, 20000}},
		ICMP:     true,
		SIPPorts: PortRange{"udp", 5060, 5061},
		Responsive: ResponsiveConfig{
			PerMinute: DefaultResponsivePerMinute,
			Burst:     DefaultResponsiveBurst,
		},
	}
}

// multiport accepts at most 15 ports, a range counting as two.
const maxMultiport = 15

// Validate reports the first problem with c, naming the offending value.
func (c Config) Validate() error {
	for _, p := range c.LAN {
		if !p.IsValid() || p != p.Masked() {
			return fmt.Errorf("lan range %s: not a canonical network prefix", p)
		}
	}
	for code, ports := range c.Services {
		if code < 1 || code >= NumCodes {
			return fmt.Errorf("services: code %d: must be 1-9 (0 admits everything and has no ports)", code)
		}
		if err := checkPorts(fmt.Sprintf("services code %d", code), ports); err != nil {
			return err
		}
	}
	for _, d := range c.SIPDomains {
		if d == "" || len(d) > MaxSIPDomainLen || strings.ContainsAny(d, " \t\r\n\"'\\") {
			return fmt.Errorf("sip domain %q: 1-%d characters, no spaces or quotes", d, MaxSIPDomainLen)
		}
	}
	if len(c.SIPDomains) > 0 && (c.SIPPorts.From == 0 || c.SIPPorts.To < c.SIPPorts.From) {
		return fmt.Errorf("sip domain ports: bad range %s", c.SIPPorts)
	}
	if err := c.Responsive.Validate(); err != nil {
		return err
	}
	return checkPorts("open ports", c.Open)
}

func checkPorts(what string, ports []PortRange) error {
	n := map[string]int{}
	for _, p := range ports {
		if (p.Proto != "tcp" && p.Proto != "udp") || p.From == 0 || p.To < p.From {
			return fmt.Errorf("%s: bad port range %s", what, p)
		}
		n[p.Proto] += 1
		if p.From != p.To {
			n[p.Proto]++
		}
		if n[p.Proto] > maxMultiport {
			return fmt.Errorf("%s: more than %d %s ports (a range counts as two)", what, maxMultiport, p.Proto)
		}
	}
	return nil
}

// Member is one address or network in a permission set. A zero Timeout
// is permanent; otherwise the kernel removes the member when it runs out.
type Member struct {
	Prefix  netip.Prefix
	Timeout time.Duration
}

// State is the complete desired firewall: the rules' configuration and
// the members of each permission set.
type State struct {
	Config Config
	// Sets maps a permission code (0-9) to its members (prefix -> timeout,
	// zero for permanent), both families mixed; the backend splits them.
	Sets map[int]map[netip.Prefix]time.Duration
}

// Add puts p into the set of code, keeping the longest life when p is
// already there (permanent beats any timeout).
func (s *State) Add(code int, p netip.Prefix, timeout time.Duration) {
	if s.Sets == nil {
		s.Sets = map[int]map[netip.Prefix]time.Duration{}
	}
	set := s.Sets[code]
	if set == nil {
		set = map[netip.Prefix]time.Duration{}
		s.Sets[code] = set
	}
	p = normalize(p)
	if old, ok := set[p]; ok && (old == 0 || (timeout != 0 && timeout < old)) {
		return
	}
	set[p] = timeout
}

// NormalizePrefix is the form a State keys its members by: IPv4-mapped
// IPv6 unmapped, host bits cleared.
func NormalizePrefix(p netip.Prefix) netip.Prefix { return normalize(p) }

func normalize(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() {
		bits := p.Bits() - 96
		if bits < 0 {
			bits = 0
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), bits)
	}
	return p.Masked()
}

// ErrLockout is returned when a state would cut off an address that must
// keep access (the administrator's SSH session).
var ErrLockout = errors.New("change would lock out the current SSH session")

// Admits reports whether the state lets a new connection from src reach
// proto/port, evaluating the same rule order the kernel does. It is how
// dialgate checks, before touching the kernel, that a change does not cut
// off the administrator.
func (s State) Admits(src netip.Addr, proto string, port uint16) bool {
	src = src.Unmap()
	if src.IsLoopback() {
		return true
	}
	for _, p := range s.Config.LAN {
		if p.Contains(src) {
			return true
		}
	}
	for _, o := range s.Config.Open {
		if o.Contains(proto, port) {
			return true
		}
	}
	inSet := func(code int) bool {
		for p := range s.Sets[code] {
			if p.Contains(src) {
				return true
			}
		}
		return false
	}
	if inSet(CodeAll) {
		return true
	}
	for code := 1; code < NumCodes; code++ {
		for _, pr := range s.Config.Services[code] {
			if pr.Contains(proto, port) && inSet(code) {
				return true
			}
		}
	}
	return false
}

// CheckKeeps returns an error wrapping ErrLockout when s would not admit
// src to proto/port.
func (s State) CheckKeeps(src netip.Addr, proto string, port uint16) error {
	if !src.IsValid() || s.Admits(src, proto, port) {
		return nil
	}
	return fmt.Errorf("%w: %s would no longer reach %s/%d (whitelist it first, or use --force)", ErrLockout, src, proto, port)
}

// Family is an address family the firewall manages.
type Family int

const (
	V4 Family = 4
	V6 Family = 6
)

func (f Family) String() string { return fmt.Sprintf("v%d", int(f)) }

func (f Family) has(p netip.Prefix) bool { return p.Addr().Is4() == (f == V4) }

// SetName is the kernel name of the set for code and family:
// dialgate-<code>-v4 / -v6.
func SetName(code int, f Family) string { return fmt.Sprintf("dialgate-%d-%s", code, f) }

// DropsSetName is the ipset counting family f's dropped packets per
// source and service: dialgate-drops-v4 / -v6.
func DropsSetName(f Family) string { return "dialgate-drops-" + f.String() }

// SeenSetName is the ipset whose time left tells when each source and
// service of DropsSetName(f) was last dropped.
func SeenSetName(f Family) string { return "dialgate-seen-" + f.String() }

// Chain names. The live chain is always reached through a jump from
// INPUT; the spare name is where a rebuild builds its replacement.
const (
	Chain      = "DIALGATE"
	chainSpare = "DIALGATE-NEW"
)

const commentPrefix = "dialgate:"

// rules returns the rule specs of the chain for family f, in order. The
// first rule carries a fingerprint of the whole list so Apply can tell
// cheaply whether the kernel already has this exact chain.
func (c Config) rules(f Family) [][]string {
	var r [][]string
	add := func(spec ...string) { r = append(r, spec) }
	add("-i", "lo", "-j", "ACCEPT")
	if c.Block {
		// Ahead of the established accept: a blocked source's earlier
		// "connections" (a UDP exchange Asterisk answered) stop too.
		add("-m", "set", "--match-set", BlockSetName(f), "src", "-j", "DROP")
	}
	add(c.established()...)
	if c.ICMP {
		if f == V4 {
			for _, t := range []string{"echo-reply", "destination-unreachable", "source-quench", "time-exceeded", "parameter-problem"} {
				add("-p", "icmp", "--icmp-type", t, "-j", "ACCEPT")
			}
		} else {
			for _, t := range []string{"destination-unreachable", "packet-too-big", "time-exceeded", "parameter-problem", "echo-reply",
				"router-solicitation", "router-advertisement", "neighbour-solicitation", "neighbour-advertisement"} {
				add("-p", "ipv6-icmp", "--icmpv6-type", t, "-j", "ACCEPT")
			}
		}
	}
	for _, p := range c.LAN {
		if f.has(p) {
			add("-s", p.String(), "-j", "ACCEPT")
		}
	}
	for _, spec := range portRules(c.Open) {
		add(append(spec, "-j", "ACCEPT")...)
	}
	c.sipDomainRules(f, add)
	add("-m", "set", "--match-set", SetName(CodeAll, f), "src", "-j", "ACCEPT")
	for code := 1; code < NumCodes; code++ {
		for _, spec := range portRules(c.Services[code]) {
			add(append(spec, "-m", "set", "--match-set", SetName(code, f), "src", "-j", "ACCEPT")...)
		}
	}
	// Responsive SIP (see responsive.go): strangers only, after every
	// whitelist accept.
	c.responsiveRules(f, add)
	// Drop accounting (see drops.go): whatever reaches the final verdict
	// is counted per source and service first.
	add("-m", "set", "!", "--match-set", DropsSetName(f), "src,dst", "-j", "SET", "--add-set", DropsSetName(f), "src,dst")
	add("-j", "SET", "--add-set", SeenSetName(f), "src,dst", "--exist")
	if c.Reject {
		if f == V4 {
			add("-j", "REJECT", "--reject-with", "icmp-admin-prohibited")
		} else {
			add("-j", "REJECT", "--reject-with", "icmp6-adm-prohibited")
		}
	} else {
		add("-j", "DROP")
	}
	sum := fingerprint(r)
	r[0] = []string{"-i", "lo", "-m", "comment", "--comment", commentPrefix + sum, "-j", "ACCEPT"}
	return r
}

// portRules groups ranges by protocol into multiport matches.
func portRules(ports []PortRange) [][]string {
	byProto := map[string][]string{}
	for _, p := range ports {
		byProto[p.Proto] = append(byProto[p.Proto], p.iptables())
	}
	protos := make([]string, 0, len(byProto))
	for p := range byProto {
		protos = append(protos, p)
	}
	slices.Sort(protos)
	var out [][]string
	for _, proto := range protos {
		out = append(out, []string{"-p", proto, "-m", "multiport", "--dports", strings.Join(byProto[proto], ",")})
	}
	return out
}

func fingerprint(rules [][]string) string {
	h := sha256.New()
	for _, r := range rules {
		h.Write([]byte(strings.Join(r, "\x00")))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// members returns the members of code's set for family f, sorted, with
// duplicates folded.
func (s State) members(code int, f Family) []Member {
	var out []Member
	for p, t := range s.Sets[code] {
		if f.has(p) {
			out = append(out, Member{Prefix: p, Timeout: t})
		}
	}
	slices.SortFunc(out, func(a, b Member) int {
		return cmp.Or(a.Prefix.Addr().Compare(b.Prefix.Addr()), cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()))
	})
	return out
}

func sortEntries(es []SetEntry) {
	slices.SortFunc(es, func(a, b SetEntry) int {
		return cmp.Or(a.Prefix.Addr().Compare(b.Prefix.Addr()), cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()))
	})
}

// sipDomainRules admits a REGISTER for a secret domain from anywhere and
// drops other REGISTER and OPTIONS probes, on udp and tcp. Sources
// whitelisted for that transport are exempt from the drops: a trusted
// trunk's OPTIONS keepalive must still reach Asterisk.
func (c Config) sipDomainRules(f Family, add func(...string)) {
	if len(c.SIPDomains) == 0 {
		return
	}
	ports := fmt.Sprintf("%d:%d", c.SIPPorts.From, c.SIPPorts.To)
	for _, proto := range []string{"udp", "tcp"} {
		match := []string{"-p", proto, "-m", "multiport", "--dports", ports, "-m", "string", "--algo", "bm"}
		for _, d := range c.SIPDomains {
			add(append(slices.Clone(match), "--string", "REGISTER sip:"+d, "-j", "ACCEPT")...)
		}
		sipCode := CodeSIPUDP
		if proto == "tcp" {
			sipCode = CodeSIPTCP
		}
		for _, probe := range []string{"REGISTER sip:", "OPTIONS sip:"} {
			add(append(slices.Clone(match), "--string", probe,
				"-m", "set", "!", "--match-set", SetName(CodeAll, f), "src",
				"-m", "set", "!", "--match-set", SetName(sipCode, f), "src", "-j", "DROP")...)
		}
	}
}

// checkCode refuses a permission code no set exists for.
func checkCode(code int) error {
	if code < 0 || code >= NumCodes {
		return fmt.Errorf("firewall: permission code %d out of range 0-%d", code, NumCodes-1)
	}
	return nil
}
