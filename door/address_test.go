package door

import (
	"net/netip"
	"slices"
	"testing"
)

func TestParseHostAddr(t *testing.T) {
	cases := map[string]string{
		"203.0.113.7":         "203.0.113.7",
		"203.0.113.7:5060":    "203.0.113.7",
		"[2001:db8::7]:5060":  "2001:db8::7",
		"2001:db8::7":         "2001:db8::7",
		"[2001:db8::7]":       "2001:db8::7",
		" 198.51.100.2 ":      "198.51.100.2",
		"::ffff:203.0.113.7":  "203.0.113.7",
		"":                    "",
		"sip:100@203.0.113.7": "",
		"fe80::1%eth0":        "",
		"203.0.113.7; reboot": "",
		"localhost:5060":      "",
	}
	for in, want := range cases {
		a, err := ParseHostAddr(in)
		if want == "" {
			if err == nil {
				t.Errorf("%q accepted as %v", in, a)
			}
			continue
		}
		if err != nil || a != netip.MustParseAddr(want) {
			t.Errorf("%q: got %v, %v; want %s", in, a, err, want)
		}
	}
}

func TestAddrVarsFor(t *testing.T) {
	if got := addrVarsFor("PJSIP/100-00000001"); !slices.Equal(got, []string{"CHANNEL(pjsip,remote_addr)"}) {
		t.Errorf("pjsip: %v", got)
	}
	if got := addrVarsFor("SIP/traveler-0000002a"); got[0] != "CHANNEL(recvip)" || len(got) != 2 {
		t.Errorf("sip: %v", got)
	}
	if got := addrVarsFor("IAX2/x-1"); len(got) != 3 {
		t.Errorf("other: %v", got)
	}
}
