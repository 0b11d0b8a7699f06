package door

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// addrVarsFor returns the channel functions that carry the caller's
// address for the channel's driver, best first, so the caller waits for
// no query that cannot answer: chan_pjsip's remote address, chan_sip's
// received and peer addresses; all of them for a driver not known here.
func addrVarsFor(channel string) []string {
	pjsip := []string{"CHANNEL(pjsip,remote_addr)"}
	sip := []string{"CHANNEL(recvip)", "CHANNEL(peerip)"}
	switch {
	case strings.HasPrefix(channel, "PJSIP/"):
		return pjsip
	case strings.HasPrefix(channel, "SIP/"):
		return sip
	}
	return append(pjsip, sip...)
}

// ParseHostAddr reads an address as Asterisk and AMI print them:
// "203.0.113.7", "203.0.113.7:5060", "[2001:db8::7]:5060" or
// "2001:db8::7". Anything else is refused.
func ParseHostAddr(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), nil
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil && a.Zone() == "" {
		return a.Unmap(), nil
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil && a.Zone() == "" {
			return a.Unmap(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
}
