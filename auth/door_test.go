package auth

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/dialgate/dialgate/store"
)

func TestCheckGrantable(t *testing.T) {
	cases := []struct {
		in   string
		want string // canonical address, "" for refused
	}{
		{"203.0.113.7", "203.0.113.7"},
		{"2001:db8::7", "2001:db8::7"},
		{"::ffff:203.0.113.7", "203.0.113.7"},
		{"8.8.8.8", "8.8.8.8"},
		{"64:ff9b::cb00:7107", "64:ff9b::cb00:7107"}, // NAT64 of 203.0.113.7: a real host
		{"2002:cb00:7107::1", "2002:cb00:7107::1"},   // 6to4 of 203.0.113.7
		{"0.0.0.0", ""},
		{"0.1.2.3", ""},
		{"127.0.0.1", ""},
		{"127.8.9.10", ""},
		{"169.254.1.1", ""},
		{"224.0.0.1", ""},
		{"240.0.0.1", ""},
		{"255.0.0.0", ""},
		{"255.255.255.255", ""},
		{"::", ""},
		{"::1", ""},
		{"fe80::1", ""},
		{"ff02::1", ""},
		{"::ffff:127.0.0.1", ""},
		{"64:ff9b::7f00:1", ""},   // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:101", ""}, // NAT64 of 169.254.1.1
		{"64:ff9b:1::7f00:1", ""}, // local-use NAT64
		{"2002:7f00:1::", ""},     // 6to4 of 127.0.0.1
		{"2002:0:1::", ""},        // 6to4 of 0.0.0.1
		{"2002:f000:1::", ""},     // 6to4 of 240.0.0.1
	}
	for _, c := range cases {
		got, err := CheckGrantable(netip.MustParseAddr(c.in))
		if c.want == "" {
			if err == nil || !errors.Is(err, ErrNotGrantable) {
				t.Errorf("%s: got %v, %v; want refused with ErrNotGrantable", c.in, got, err)
			}
			continue
		}
		if err != nil || got.String() != c.want {
			t.Errorf("%s: got %v, %v; want %s", c.in, got, err, c.want)
		}
	}
	if _, err := CheckGrantable(netip.Addr{}); !errors.Is(err, ErrNotGrantable) {
		t.Errorf("zero address: %v", err)
	}
	if _, err := CheckGrantable(netip.MustParseAddr("fe80::1%eth0")); !errors.Is(err, ErrNotGrantable) {
		t.Errorf("zoned address: %v", err)
	}
}

func TestEmbeddedIPv4(t *testing.T) {
	cases := map[string]string{
		"64:ff9b::c0a8:105":  "192.168.1.5",
		"64:ff9b:1::a00:1":   "10.0.0.1",
		"2002:c0a8:105::":    "192.168.1.5",
		"2001:db8::c0a8:105": "",
		"192.168.1.5":        "",
		"::ffff:192.168.1.5": "",
	}
	for in, want := range cases {
		got, ok := EmbeddedIPv4(netip.MustParseAddr(in))
		if want == "" && ok || want != "" && (!ok || got.String() != want) {
			t.Errorf("%s: %v %v, want %q", in, got, ok, want)
		}
	}
}

func TestCanonicalCallerID(t *testing.T) {
	cases := map[string]string{
		"+15551234567":          "+15551234567",
		"+1 (555) 123-4567":     "+15551234567",
		"555.123.4567":          "5551234567",
		" 201 ":                 "201",
		"00":                    "00",
		"":                      "",
		"unknown":               "",
		"anonymous":             "",
		"Anonymous":             "",
		"1":                     "",
		"+":                     "",
		"1+2":                   "",
		"++15551234567":         "",
		"201;evil":              "",
		"123456789012345678901": "",
		"sip:201@pbx":           "",
	}
	for in, want := range cases {
		got, ok := CanonicalCallerID(in)
		if ok != (want != "") || got != want {
			t.Errorf("CanonicalCallerID(%q) = %q, %v; want %q", in, got, ok, want)
		}
		if _, err := ParseCallerID(in); (err == nil) != (want != "") {
			t.Errorf("ParseCallerID(%q): %v", in, err)
		}
	}
}

func TestValidateAccountNumber(t *testing.T) {
	for in, ok := range map[string]bool{
		"": true, "10": true, "101": true, "4711": true, "9999999999": true,
		"1": false, "012": false, "10a": false, "12345678901": false, "1 2": false, "*47": false,
	} {
		if err := ValidateAccountNumber(in); (err == nil) != ok {
			t.Errorf("ValidateAccountNumber(%q) = %v, want ok=%v", in, err, ok)
		}
	}
}

func TestLockoutRemaining(t *testing.T) {
	db := openStore(t)
	p := DefaultLockoutPolicy
	check := func(at time.Duration, wantLeft int, wantLocked bool) {
		t.Helper()
		err := db.View(func(tx store.Tx) error {
			left, until, err := p.Remaining(tx, "cid:555", lockT0.Add(at))
			if err != nil {
				return err
			}
			if left != wantLeft || !until.IsZero() != wantLocked {
				t.Errorf("at +%v: left %d, locked until %v; want %d, locked %v", at, left, until, wantLeft, wantLocked)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	check(0, 5, false)
	fail(t, db, p, []string{"cid:555"}, lockT0)
	fail(t, db, p, []string{"cid:555"}, lockT0.Add(time.Minute))
	check(2*time.Minute, 3, false)
	check(15*time.Minute+30*time.Second, 4, false) // the first failure aged out
	for range 3 {
		fail(t, db, p, []string{"cid:555"}, lockT0.Add(2*time.Minute))
	}
	check(3*time.Minute, 0, true)
	check(17*time.Minute, 5, false) // lock over, failures cleared with it
}
