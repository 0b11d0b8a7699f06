package firewall

import (
	"fmt"
	"strconv"
	"strings"
)

// Permission codes, as an administrator types them. They follow the
// Travelin' Man 3 numbering so existing habits and scripts carry over.
const (
	CodeAll    = 0
	CodeSIPUDP = 1
	CodeSIPTCP = 2
	CodeIAX    = 3
	CodeWeb    = 4
	CodeWebmin = 5
	CodeFTP    = 6
	CodeTFTP   = 7
	CodeSSH    = 8
	CodeFOP    = 9
	// NumCodes is one past the highest permission code.
	NumCodes = 10
)

var codeNames = [NumCodes]string{"all", "sip-udp", "sip-tcp", "iax", "web", "webmin", "ftp", "tftp", "ssh", "fop"}

// CodeName returns the short service name of a permission code.
func CodeName(code int) string {
	if code < 0 || code >= NumCodes {
		return "code" + strconv.Itoa(code)
	}
	return codeNames[code]
}

// PortRange is one protocol and an inclusive port range.
type PortRange struct {
	Proto string // "tcp" or "udp"
	From  uint16
	To    uint16
}

// String renders the range the way the config file and iptables spell it:
// "udp/5060:5069" or "tcp/22".
func (p PortRange) String() string {
	if p.From == p.To {
		return fmt.Sprintf("%s/%d", p.Proto, p.From)
	}
	return fmt.Sprintf("%s/%d:%d", p.Proto, p.From, p.To)
}

// Contains reports whether proto/port falls in the range.
func (p PortRange) Contains(proto string, port uint16) bool {
	return p.Proto == proto && port >= p.From && port <= p.To
}

func (p PortRange) iptables() string {
	if p.From == p.To {
		return strconv.Itoa(int(p.From))
	}
	return fmt.Sprintf("%d:%d", p.From, p.To)
}

// ParsePortRange parses "udp/5060:5069", "tcp/22" or "udp/10000-20000".
func ParsePortRange(s string) (PortRange, error) {
	proto, ports, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok || (proto != "tcp" && proto != "udp") {
		return PortRange{}, fmt.Errorf("port range %q: want tcp/PORT[:PORT] or udp/PORT[:PORT]", s)
	}
	lo, hi, isRange := strings.Cut(ports, ":")
	if !isRange {
		lo, hi, isRange = strings.Cut(ports, "-")
	}
	if !isRange {
		hi = lo
	}
	from, err1 := strconv.ParseUint(lo, 10, 16)
	to, err2 := strconv.ParseUint(hi, 10, 16)
	if err1 != nil || err2 != nil || from == 0 || to < from {
		return PortRange{}, fmt.Errorf("port range %q: ports must be 1-65535 with low <= high", s)
	}
	return PortRange{Proto: proto, From: uint16(from), To: uint16(to)}, nil
}

// DefaultServices returns the default ports of each permission code (code
// 0 has none: it admits everything). They follow Travelin' Man 3's add-ip,
// plus 443 for the web GUI.
func DefaultServices() map[int][]PortRange {
	return map[int][]PortRange{
		CodeSIPUDP: {{"udp", 5060, 5069}},
		CodeSIPTCP: {{"tcp", 5060, 5069}},
		CodeIAX:    {{"udp", 4569, 4569}},
		CodeWeb:    {{"tcp", 80, 80}, {"tcp", 443, 443}, {"tcp", 9080, 9080}},
		CodeWebmin: {{"tcp", 9001, 9001}},
		CodeFTP:    {{"tcp", 21, 21}},
		CodeTFTP:   {{"udp", 69, 69}},
		CodeSSH:    {{"tcp", 22, 22}, {"tcp", 9022, 9022}},
		CodeFOP:    {{"tcp", 4445, 4445}},
	}
}
