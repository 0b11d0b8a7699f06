package ami

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// SecurityEvent is one of Asterisk's security events (manager read class
// "security"), as res_security_log and the channel drivers raise them.
type SecurityEvent struct {
	// Kind is the event name: SuccessfulAuth, InvalidPassword,
	// ChallengeResponseFailed, InvalidAccountID, FailedACL, ...
	Kind string
	// Service is "SIP" (chan_sip), "PJSIP" (chan_pjsip), "AMI", "IAX2"...
	Service string
	// AccountID is the user the request claimed, as sent: untrusted.
	AccountID string
	// Transport is "UDP", "TCP" or "TLS" (the RemoteAddress's).
	Transport string
	// Remote is the source of the request.
	Remote netip.AddrPort
}

// Failed reports whether the event is a failed authentication or an
// access-control refusal: what a password guesser or scanner causes.
func (e SecurityEvent) Failed() bool {
	switch e.Kind {
	case "InvalidPassword", "ChallengeResponseFailed", "InvalidAccountID", "FailedACL":
		return true
	}
	return false
}

// ParseSecurityEvent reads a security event. It returns false for other
// events and for ones whose RemoteAddress does not parse: AMI values are
// untrusted text, and an event that names no source can block nobody.
func ParseSecurityEvent(m Message) (SecurityEvent, bool) {
	if !strings.Contains(m.Get("Privilege"), "security") {
		return SecurityEvent{}, false
	}
	tr, ap, err := ParseSecurityAddress(m.Get("RemoteAddress"))
	if err != nil {
		return SecurityEvent{}, false
	}
	return SecurityEvent{Kind: m.Event(), Service: m.Get("Service"), AccountID: m.Get("AccountID"), Transport: tr, Remote: ap}, true
}

// ParseSecurityAddress reads a security event's address,
// "IPV4/UDP/203.0.113.7/5062" or "IPV6/TCP/2001:db8::7/5061", strictly:
// the family must match the address, the port must be a number.
func ParseSecurityAddress(s string) (transport string, ap netip.AddrPort, err error) {
	parts := strings.SplitN(s, "/", 4)
	if len(parts) != 4 {
		return "", netip.AddrPort{}, fmt.Errorf("security address %q: want FAMILY/TRANSPORT/ADDRESS/PORT", s)
	}
	fam, tr, host, port := parts[0], parts[1], parts[2], parts[3]
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return "", netip.AddrPort{}, fmt.Errorf("security address %q: bad address", s)
	}
	if (fam == "IPV4") != (a.Unmap().Is4()) || fam != "IPV4" && fam != "IPV6" {
		return "", netip.AddrPort{}, fmt.Errorf("security address %q: family %s does not match the address", s, fam)
	}
	switch tr {
	case "UDP", "TCP", "TLS", "WS", "WSS":
	default:
		return "", netip.AddrPort{}, fmt.Errorf("security address %q: unknown transport %q", s, tr)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", netip.AddrPort{}, fmt.Errorf("security address %q: bad port", s)
	}
	return tr, netip.AddrPortFrom(a.Unmap(), uint16(n)), nil
}
