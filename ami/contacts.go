package ami

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// SIPPeerAddress returns the address a chan_sip peer is registered from,
// as SIPshowpeer reports it (Address-IP, Address-Port). ok is false when
// the peer is known but not registered: Asterisk then says "(null)". A
// peer Asterisk does not know gives an error matching ErrNotFound.
//
// For a peer with a fixed host= in sip.conf the address is that host's,
// registered or not.
func (c *Client) SIPPeerAddress(ctx context.Context, peer string) (addr netip.AddrPort, ok bool, err error) {
	if peer == "" {
		return netip.AddrPort{}, false, fmt.Errorf("ami: SIPshowpeer: %w: empty peer name", ErrInvalidHeader)
	}
	resp, err := c.Action(ctx, "SIPshowpeer", Header{Key: "Peer", Value: peer})
	if err != nil {
		return netip.AddrPort{}, false, notFound(err, "peer", peer)
	}
	return parsePeerAddress(resp)
}

// parsePeerAddress reads Address-IP and Address-Port from a SIPshowpeer
// response. chan_sip prints the IP without brackets, IPv6 included.
func parsePeerAddress(resp Message) (netip.AddrPort, bool, error) {
	ipText := resp.Get("Address-IP")
	switch ipText {
	case "", "(null)", "-none-":
		return netip.AddrPort{}, false, nil
	}
	ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(ipText, "["), "]"))
	if err != nil || ip.Zone() != "" {
		return netip.AddrPort{}, false, fmt.Errorf("ami: SIPshowpeer: %w: Address-IP %q is not an IP address", ErrProtocol, ipText)
	}
	port, err := strconv.ParseUint(resp.Get("Address-Port"), 10, 16)
	if err != nil {
		return netip.AddrPort{}, false, fmt.Errorf("ami: SIPshowpeer: %w: Address-Port %q is not a port", ErrProtocol, resp.Get("Address-Port"))
	}
	if ip.IsUnspecified() {
		return netip.AddrPort{}, false, nil
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), true, nil
}

// Contact is one registered contact of a PJSIP endpoint, from a
// ContactStatusDetail event.
type Contact struct {
	AOR string
	// URI is the contact as Asterisk stores it, e.g.
	// "sip:alice@203.0.113.7:5060;ob". With rewrite_contact=yes Asterisk
	// has replaced the host with the address the REGISTER came from.
	URI string
	// Addr is the URI's host and port if the host is an IP address, else
	// invalid. Its port is 0 when the URI has none (5060, or 5061 for
	// sips).
	Addr netip.AddrPort
	// Via is the ViaAddress: the sent-by of the REGISTER's last Via, the
	// address the phone believes it has. Behind NAT that is a private
	// address. Invalid when absent, or when it cannot be read without
	// ambiguity (an IPv6 sent-by without brackets).
	Via netip.AddrPort
	// Status is Asterisk's qualify status: Reachable, Unreachable,
	// NonQualified, Unknown.
	Status    string
	UserAgent string
	// Expires is when the registration runs out.
	Expires time.Time
}

// PJSIPContacts returns the registered contacts of a PJSIP endpoint, from
// the ContactStatusDetail events of PJSIPShowEndpoint. Contacts that are
// configured statically on the AOR rather than registered are left out.
// An endpoint Asterisk does not know gives an error matching ErrNotFound;
// without chan_pjsip loaded, one matching ErrUnknownAction.
func (c *Client) PJSIPContacts(ctx context.Context, endpoint string) ([]Contact, error) {
	if endpoint == "" {
		return nil, fmt.Errorf("ami: PJSIPShowEndpoint: %w: empty endpoint name", ErrInvalidHeader)
	}
	_, events, err := c.ActionList(ctx, "PJSIPShowEndpoint", Header{Key: "Endpoint", Value: endpoint})
	if err != nil {
		return nil, notFound(err, "endpoint", endpoint)
	}
	var contacts []Contact
	for _, ev := range events {
		if !strings.EqualFold(ev.Event(), "ContactStatusDetail") {
			continue
		}
		ct, ok := parseContactStatusDetail(ev)
		if ok {
			contacts = append(contacts, ct)
		}
	}
	return contacts, nil
}

// parseContactStatusDetail reads one ContactStatusDetail event. ok is
// false for contacts that are not registrations.
func parseContactStatusDetail(ev Message) (Contact, bool) {
	if strings.EqualFold(ev.Get("Status"), "Removed") {
		return Contact{}, false // deleted while we were listing
	}
	// Asterisk prints the expiry as Unix seconds; static contacts from
	// the AOR's contact= option never expire and print 0.
	secs, err := strconv.ParseInt(ev.Get("RegExpire"), 10, 64)
	if err != nil || secs <= 0 {
		return Contact{}, false
	}
	ct := Contact{
		AOR:       ev.Get("AOR"),
		URI:       ev.Get("URI"),
		Status:    ev.Get("Status"),
		UserAgent: ev.Get("UserAgent"),
		Expires:   time.Unix(secs, 0),
	}
	ct.Addr, _ = SIPURIAddress(ct.URI)
	// Asterisk appends ":port" to the Via host as it stored it, which for
	// IPv6 has no brackets: "2001:db8::7:5060" cannot be split safely, so
	// ParseHostPort's refusal of unbracketed IPv6 is what we want here.
	if via, err := ParseHostPort(ev.Get("ViaAddress")); err == nil {
		ct.Via = via
	}
	return ct, true
}

// PJSIPContactAddresses returns the addresses a PJSIP endpoint's
// registered contacts are at: for each contact the URI's address, then
// the Via address if it differs, without repeats. Contacts whose URI host
// is a name contribute only their Via address. A known endpoint with no
// registration gives an empty list and no error.
func (c *Client) PJSIPContactAddresses(ctx context.Context, endpoint string) ([]netip.AddrPort, error) {
	contacts, err := c.PJSIPContacts(ctx, endpoint)
	if err != nil {
		return nil, err
	}
	var addrs []netip.AddrPort
	add := func(a netip.AddrPort) {
		for _, b := range addrs {
			if a == b {
				return
			}
		}
		addrs = append(addrs, a)
	}
	for _, ct := range contacts {
		if ct.Addr.IsValid() {
			add(ct.Addr)
		}
		if ct.Via.IsValid() {
			add(ct.Via)
		}
	}
	return addrs, nil
}

// RegisteredAddresses returns the addresses the PJSIP endpoint or chan_sip
// peer called name is registered from, whichever channel driver knows it:
// PJSIP is asked first, chan_sip if PJSIP is not loaded or does not know
// the name. The error matches ErrNotFound when neither knows it. A known
// name with no registration gives an empty list and no error.
func (c *Client) RegisteredAddresses(ctx context.Context, name string) ([]netip.AddrPort, error) {
	addrs, err := c.PJSIPContactAddresses(ctx, name)
	if err == nil || !(errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnknownAction)) {
		return addrs, err
	}
	pjsipErr := err
	addr, ok, err := c.SIPPeerAddress(ctx, name)
	switch {
	case errors.Is(err, ErrUnknownAction) && errors.Is(pjsipErr, ErrUnknownAction):
		return nil, fmt.Errorf("ami: %q: neither chan_pjsip nor chan_sip is loaded: %w", name, err)
	case errors.Is(err, ErrUnknownAction):
		return nil, pjsipErr // PJSIP's "no such endpoint" is the answer
	case err != nil:
		return nil, err
	case !ok:
		return []netip.AddrPort{}, nil
	}
	return []netip.AddrPort{addr}, nil
}

// notFound marks Asterisk's "no such peer/endpoint" answers with
// ErrNotFound. chan_sip says "Peer <name> not found."; res_pjsip says
// "Unable to retrieve endpoint <name>".
func notFound(err error, what, name string) error {
	var ae *ActionError
	if !errors.As(err, &ae) {
		return err
	}
	msg := strings.ToLower(ae.Message())
	if strings.Contains(msg, "not found") || strings.HasPrefix(msg, "unable to retrieve endpoint") {
		return fmt.Errorf("%w: %s %q: %w", ErrNotFound, what, name, err)
	}
	return err
}

// ParseHostPort parses an address as Asterisk prints one: "203.0.113.7",
// "203.0.113.7:5060", "[2001:db8::7]" or "[2001:db8::7]:5060". It is
// strict: hostnames, IPv6 without brackets (ambiguous once a port is
// appended), zones, empty or zero ports and surrounding spaces are all
// errors. The port is 0 when absent. IPv4-mapped IPv6 addresses come back
// as IPv4.
func ParseHostPort(s string) (netip.AddrPort, error) {
	bad := func(why string) (netip.AddrPort, error) {
		return netip.AddrPort{}, fmt.Errorf("ami: %q is not an IP address with optional port: %s", s, why)
	}
	var host, port string
	hasPort := false
	switch {
	case s == "":
		return bad("empty")
	case s[0] == '[':
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return bad("no closing bracket")
		}
		host = s[1:end]
		switch rest := s[end+1:]; {
		case rest == "":
		case rest[0] == ':':
			port, hasPort = rest[1:], true
		default:
			return bad("junk after the bracket")
		}
		if !strings.Contains(host, ":") {
			return bad("brackets around something that is not IPv6")
		}
	case strings.Count(s, ":") > 1:
		return bad("IPv6 addresses need brackets")
	default:
		host, port, hasPort = strings.Cut(s, ":")
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return bad("not an IP address")
	}
	if ip.Zone() != "" {
		return bad("zoned address")
	}
	var p uint64
	if hasPort {
		// ParseUint would accept a sign-free "05060", which Asterisk
		// never prints but which is harmless; it refuses "+", spaces and
		// anything over 65535.
		p, err = strconv.ParseUint(port, 10, 16)
		if err != nil || p == 0 {
			return bad("bad port")
		}
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(p)), nil
}

// SIPURIAddress returns the host and port of a SIP URI when the host is
// an IP address: "sip:alice@203.0.113.7:5060;transport=udp" gives
// 203.0.113.7:5060. The port is 0 when the URI has none. The URI may be
// in angle brackets; user parameters and URI parameters are skipped.
// ok is false for a hostname, another scheme, or garbage.
func SIPURIAddress(uri string) (addr netip.AddrPort, ok bool) {
	s := strings.TrimSpace(uri)
	if i := strings.IndexByte(s, '<'); i >= 0 {
		s = s[i+1:]
		if j := strings.IndexByte(s, '>'); j >= 0 {
			s = s[:j]
		}
	}
	scheme, rest, found := strings.Cut(s, ":")
	if !found || !(strings.EqualFold(scheme, "sip") || strings.EqualFold(scheme, "sips")) {
		return netip.AddrPort{}, false
	}
	// An unescaped '@' may only end the userinfo, which can itself hold
	// ';' (tel-style users), so look for '@' before cutting parameters.
	if at := strings.IndexByte(rest, '@'); at >= 0 {
		rest = rest[at+1:]
	}
	if end := strings.IndexAny(rest, ";?>"); end >= 0 {
		rest = rest[:end]
	}
	a, err := ParseHostPort(rest)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return a, true
}
