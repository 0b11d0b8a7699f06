package ami

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/dialgate/dialgate/ami/amitest"
)

func TestParseHostPort(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" means error
	}{
		{"203.0.113.7", "203.0.113.7:0"},
		{"203.0.113.7:5060", "203.0.113.7:5060"},
		{"[2001:db8::7]:5060", "[2001:db8::7]:5060"},
		{"[2001:db8::7]", "[2001:db8::7]:0"},
		{"[::ffff:203.0.113.7]:5060", "203.0.113.7:5060"},
		{"127.0.0.1:65535", "127.0.0.1:65535"},

		{"", ""},
		{"pbx.example.com", ""},
		{"pbx.example.com:5060", ""},
		{"2001:db8::7", ""},      // bare IPv6: ambiguous with a port appended
		{"2001:db8::7:5060", ""}, // what Asterisk prints for an IPv6 Via
		{"[203.0.113.7]:5060", ""},
		{"[2001:db8::7", ""},
		{"[2001:db8::7]5060", ""},
		{"[fe80::1%eth0]:5060", ""},
		{"203.0.113.7:", ""},
		{"203.0.113.7:0", ""},
		{"203.0.113.7:65536", ""},
		{"203.0.113.7:+5060", ""},
		{"203.0.113.7:50 60", ""},
		{" 203.0.113.7", ""},
		{"203.0.113.7 ", ""},
		{"203.0.113", ""},
		{"203.0.113.007", ""},
		{"(null)", ""},
		{"-none-", ""},
	} {
		got, err := ParseHostPort(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ParseHostPort(%q) = %v, want error", tc.in, got)
		case tc.want != "" && (err != nil || got.String() != tc.want):
			t.Errorf("ParseHostPort(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestSIPURIAddress(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" means no address
	}{
		{"sip:traveler@127.0.0.1:5070", "127.0.0.1:5070"},
		{"sip:alice@203.0.113.7:5060;ob", "203.0.113.7:5060"},
		{"sip:alice@203.0.113.7;transport=tcp", "203.0.113.7:0"},
		{"sips:alice@[2001:db8::7]:5061;transport=tls", "[2001:db8::7]:5061"},
		{"SIP:alice@203.0.113.7:5060", "203.0.113.7:5060"},
		{"<sip:alice@203.0.113.7:5060>;expires=3600", "203.0.113.7:5060"},
		{"\"Alice\" <sip:alice@203.0.113.7:5060;ob>", "203.0.113.7:5060"},
		{"sip:203.0.113.7:5060", "203.0.113.7:5060"},
		{"sip:+15551234;phone-context=example.com@203.0.113.7:5060;user=phone", "203.0.113.7:5060"},
		{"sip:alice@203.0.113.7:5060?Subject=x", "203.0.113.7:5060"},
		{"sip:alice@203.0.113.7:5060;x-ast-orig-host=192.168.1.20:5060", "203.0.113.7:5060"},

		{"sip:alice@pbx.example.com:5060", ""},
		{"sip:alice@2001:db8::7:5060", ""},
		{"tel:+15551234", ""},
		{"http://203.0.113.7/", ""},
		{"sip:", ""},
		{"", ""},
		{"203.0.113.7:5060", ""},
	} {
		got, ok := SIPURIAddress(tc.in)
		switch {
		case tc.want == "" && ok:
			t.Errorf("SIPURIAddress(%q) = %v, want none", tc.in, got)
		case tc.want != "" && (!ok || got.String() != tc.want):
			t.Errorf("SIPURIAddress(%q) = %v, %v; want %s", tc.in, got, ok, tc.want)
		}
	}
}

func TestParsePeerAddress(t *testing.T) {
	msg := func(ip, port string) Message {
		return Message{Headers: []Header{{"Response", "Success"}, {"Address-IP", ip}, {"Address-Port", port}}}
	}
	for _, tc := range []struct {
		ip, port string
		want     string
		ok       bool
		err      error
	}{
		{"127.0.0.1", "5070", "127.0.0.1:5070", true, nil},
		{"2001:db8::7", "5060", "[2001:db8::7]:5060", true, nil}, // chan_sip: no brackets
		{"[2001:db8::7]", "5060", "[2001:db8::7]:5060", true, nil},
		{"::ffff:203.0.113.7", "5060", "203.0.113.7:5060", true, nil},
		{"(null)", "0", "", false, nil},
		{"", "", "", false, nil},
		{"0.0.0.0", "0", "", false, nil},
		{"pbx.example.com", "5060", "", false, ErrProtocol},
		{"127.0.0.1", "x", "", false, ErrProtocol},
		{"127.0.0.1", "70000", "", false, ErrProtocol},
	} {
		got, ok, err := parsePeerAddress(msg(tc.ip, tc.port))
		if ok != tc.ok || !errors.Is(err, tc.err) || (ok && got.String() != tc.want) {
			t.Errorf("Address-IP %q port %q: %v, %v, %v; want %s, %v, %v", tc.ip, tc.port, got, ok, err, tc.want, tc.ok, tc.err)
		}
	}
}

func TestSIPPeerAddress(t *testing.T) {
	srv := startFake(t, amitest.Options{
		NoPJSIP: true, // the recorded build
		SIPPeers: []amitest.SIPPeer{
			{Name: "traveler", Addr: netip.MustParseAddrPort("127.0.0.1:5070"), UserAgent: "sipp-harness"},
			{Name: "v6", Addr: netip.MustParseAddrPort("[2001:db8::7]:5060")},
			{Name: "home"},
		},
	})
	c := dial(t, testConfig(t, srv))
	for _, tc := range []struct {
		peer string
		want string
		ok   bool
		err  error
	}{
		{"traveler", "127.0.0.1:5070", true, nil},
		{"v6", "[2001:db8::7]:5060", true, nil},
		{"home", "", false, nil},
		{"nobody", "", false, ErrNotFound},
		{"", "", false, ErrInvalidHeader},
	} {
		got, ok, err := c.SIPPeerAddress(ctxT(t), tc.peer)
		if ok != tc.ok || !errors.Is(err, tc.err) || (ok && got.String() != tc.want) {
			t.Errorf("SIPPeerAddress(%q) = %v, %v, %v; want %s, %v, %v", tc.peer, got, ok, err, tc.want, tc.ok, tc.err)
		}
	}
	// The peer registers later.
	srv.SetSIPPeer(amitest.SIPPeer{Name: "home", Addr: netip.MustParseAddrPort("198.51.100.9:5060")})
	if got, ok, err := c.SIPPeerAddress(ctxT(t), "home"); !ok || err != nil || got.String() != "198.51.100.9:5060" {
		t.Errorf("after registering: %v, %v, %v", got, ok, err)
	}
	if _, err := c.PJSIPContactAddresses(ctxT(t), "traveler"); !errors.Is(err, ErrUnknownAction) {
		t.Errorf("PJSIP on a chan_sip-only Asterisk: %v", err)
	}
}

// pjsipFake serves one endpoint with every kind of contact.
func pjsipFake(t *testing.T, opts amitest.Options) *amitest.Server {
	opts.Endpoints = append(opts.Endpoints,
		amitest.Endpoint{Name: "alice", Contacts: []amitest.Contact{
			// Behind NAT, rewrite_contact=yes: the URI has the public
			// address, the Via the phone's private one.
			{URI: "sip:alice@203.0.113.7:61234;ob", ViaAddress: "192.168.1.20:5060", UserAgent: "Zoiper"},
			// Same public address again: reported once.
			{URI: "sip:alice@203.0.113.7:61234;ob;transport=tcp", ViaAddress: "203.0.113.7:61234"},
			{URI: "sips:alice@[2001:db8::7]:5061;transport=tls", ViaAddress: "[2001:db8::7]:5061", Status: "Unreachable"},
			// A hostname in the URI: only the Via tells.
			{URI: "sip:alice@alice-phone.example.com:5060", ViaAddress: "198.51.100.4:5060"},
			// An unbracketed IPv6 Via, as Asterisk prints it: skipped.
			{URI: "sip:alice@phone6.example.com", ViaAddress: "2001:db8::9:5060"},
			// Configured, not registered: left out.
			{URI: "sip:alice@192.0.2.1:5060", Static: true},
		}},
		amitest.Endpoint{Name: "bob"},
	)
	return startFake(t, opts)
}

func TestPJSIPContacts(t *testing.T) {
	srv := pjsipFake(t, amitest.Options{NoChanSIP: true})
	c := dial(t, testConfig(t, srv))

	contacts, err := c.PJSIPContacts(ctxT(t), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(contacts) != 5 {
		t.Fatalf("%d contacts, want 5: %+v", len(contacts), contacts)
	}
	first := contacts[0]
	if first.AOR != "alice" || first.UserAgent != "Zoiper" || first.Status != "Reachable" ||
		first.Addr.String() != "203.0.113.7:61234" || first.Via.String() != "192.168.1.20:5060" || first.Expires.IsZero() {
		t.Errorf("first contact %+v", first)
	}
	if contacts[2].Status != "Unreachable" {
		t.Errorf("third contact %+v", contacts[2])
	}

	addrs, err := c.PJSIPContactAddresses(ctxT(t), "alice")
	want := []string{"203.0.113.7:61234", "192.168.1.20:5060", "[2001:db8::7]:5061", "198.51.100.4:5060"}
	if err != nil || !reflect.DeepEqual(strs(addrs), want) {
		t.Errorf("PJSIPContactAddresses = %v, %v; want %v", addrs, err, want)
	}
	// The "pjsip/" prefix is accepted, as Asterisk does.
	if addrs, err := c.PJSIPContactAddresses(ctxT(t), "PJSIP/alice"); err != nil || len(addrs) != 4 {
		t.Errorf("PJSIP/alice: %v, %v", addrs, err)
	}
	if addrs, err := c.PJSIPContactAddresses(ctxT(t), "bob"); err != nil || len(addrs) != 0 {
		t.Errorf("bob, not registered: %v, %v", addrs, err)
	}
	// res_pjsip's error ends in a bare LF; the next action still works.
	if _, err := c.PJSIPContactAddresses(ctxT(t), "carol"); !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrActionFailed) {
		t.Errorf("unknown endpoint: %v", err)
	}
	if err := c.Ping(ctxT(t)); err != nil {
		t.Errorf("Ping after the error: %v", err)
	}
	if _, _, err := c.SIPPeerAddress(ctxT(t), "alice"); !errors.Is(err, ErrUnknownAction) {
		t.Errorf("chan_sip on a PJSIP-only Asterisk: %v", err)
	}
}

func strs(addrs []netip.AddrPort) []string {
	var s []string
	for _, a := range addrs {
		s = append(s, a.String())
	}
	return s
}

func TestRegisteredAddresses(t *testing.T) {
	peers := []amitest.SIPPeer{
		{Name: "traveler", Addr: netip.MustParseAddrPort("127.0.0.1:5070")},
		{Name: "home"},
	}
	for _, tc := range []struct {
		name        string
		opts        amitest.Options
		lookup      string
		want        []string
		err, notErr error
	}{
		{"chan_sip only, registered", amitest.Options{NoPJSIP: true, SIPPeers: peers}, "traveler", []string{"127.0.0.1:5070"}, nil, nil},
		{"chan_sip only, not registered", amitest.Options{NoPJSIP: true, SIPPeers: peers}, "home", []string{}, nil, nil},
		{"chan_sip only, unknown", amitest.Options{NoPJSIP: true, SIPPeers: peers}, "nobody", nil, ErrNotFound, nil},
		{"both, PJSIP endpoint", amitest.Options{SIPPeers: peers}, "alice", []string{"203.0.113.7:61234", "192.168.1.20:5060", "[2001:db8::7]:5061", "198.51.100.4:5060"}, nil, nil},
		{"both, chan_sip peer", amitest.Options{SIPPeers: peers}, "traveler", []string{"127.0.0.1:5070"}, nil, nil},
		{"both, unknown", amitest.Options{SIPPeers: peers}, "nobody", nil, ErrNotFound, nil},
		{"PJSIP only, unknown", amitest.Options{NoChanSIP: true}, "nobody", nil, ErrNotFound, ErrUnknownAction},
		{"neither", amitest.Options{NoChanSIP: true, NoPJSIP: true}, "alice", nil, ErrUnknownAction, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := pjsipFake(t, tc.opts)
			c := dial(t, testConfig(t, srv))
			addrs, err := c.RegisteredAddresses(ctxT(t), tc.lookup)
			if !errors.Is(err, tc.err) || (tc.notErr != nil && errors.Is(err, tc.notErr)) {
				t.Errorf("err = %v, want %v", err, tc.err)
			}
			got := strs(addrs)
			if addrs != nil && got == nil {
				got = []string{}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("addresses %q, want %q", got, tc.want)
			}
		})
	}
}
