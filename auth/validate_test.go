package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/dialgate/dialgate/store"
)

func TestValidateAccountName(t *testing.T) {
	good := []string{"bob", "a", "road-warrior_2", "x.y", strings.Repeat("a", 32)}
	bad := []string{"", "Bob", "-bob", "bo b", "bob;rm -rf", "bob\n", strings.Repeat("a", 33), "böb", "../etc"}
	for _, n := range good {
		if err := ValidateAccountName(n); err != nil {
			t.Errorf("%q refused: %v", n, err)
		}
	}
	for _, n := range bad {
		err := ValidateAccountName(n)
		if err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("%q accepted (err=%v)", n, err)
		}
	}
}

// TestParsePerms: codes 0-9 separated by commas, each once, 0 alone.
// Every other spelling is refused naming the bad token and showing the
// form, in particular the issue-11 values: "10" is not codes 1 and 0 (all
// services), "99999999999" is not code 9.
func TestParsePerms(t *testing.T) {
	cases := []struct {
		in, want, err string
	}{
		{"1,2,8", "1,2,8", ""},
		{"8, 2 ,1", "1,2,8", ""},
		{" 1 , 2 ", "1,2", ""},
		{"0", "0", ""},
		{" 0 ", "0", ""},
		{"9", "9", ""},
		{"1,2,3,4,5,6,7,8,9", "1,2,3,4,5,6,7,8,9", ""},
		{"", "", "empty"},
		{"  ", "", "empty"},
		{"10", "", `"10" is not a code`},
		{"12", "", `"12" is not a code`},
		{"128", "", `"128" is not a code`},
		{"99999999999", "", `"99999999999" is not a code`},
		{"12a", "", `"12a"`},
		{"1,,2", "", "empty code"},
		{"1,", "", "empty code"},
		{",1", "", "empty code"},
		{"a", "", `"a" is not a code`},
		{"1,a", "", `"a"`},
		{"1 2 8", "", `"1 2 8" is not a code`},
		{"1,1", "", "code 1 given twice"},
		{"0,1", "", "0 already means all"},
		{"1,0", "", "0 already means all"},
		{"0,0", "", "code 0 given twice"},
		{"-1", "", `"-1"`},
		{"1;8", "", `"1;8"`},
		{"１", "", `"１"`}, // a full-width digit is not a code
	}
	for _, c := range cases {
		p, err := ParsePerms(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrInvalid) {
				t.Errorf("ParsePerms(%q) = %v, %v; want an ErrInvalid with %s", c.in, p, err, c.err)
			} else if !strings.Contains(err.Error(), "1,2,8") {
				t.Errorf("ParsePerms(%q): %v; the error should show the form 1,2,8", c.in, err)
			}
			continue
		}
		if err != nil || p.String() != c.want {
			t.Errorf("ParsePerms(%q) = %q, %v; want %q", c.in, p.String(), err, c.want)
		}
	}
}

func TestPermsWithin(t *testing.T) {
	set := func(s string) store.PermSet {
		if s == "" {
			return 0
		}
		p, err := ParsePerms(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		entry, account string
		want           bool
	}{
		{"", "1", true},      // inherits
		{"1", "1,8", true},   // narrower
		{"1,8", "1,8", true}, // equal
		{"9", "0", true},     // account 0 covers everything
		{"0", "0", true},
		{"9", "1", false},
		{"1,9", "1,8", false},
		{"0", "1,2,3,4,5,6,7,8,9", false}, // 0 opens every port, not only the services'
	}
	for _, c := range cases {
		if got := PermsWithin(set(c.entry), set(c.account)); got != c.want {
			t.Errorf("PermsWithin(%q, %q) = %v, want %v", c.entry, c.account, got, c.want)
		}
	}
}

func TestValidateComment(t *testing.T) {
	good := []string{"", "Bob's phone", "hotel \"Ritz\"; $(rm -rf /) `x`", "Zürich office"}
	bad := []string{"line\nbreak", "esc\x1b[31m", "nul\x00", strings.Repeat("x", 129), "bad\xffutf8"}
	for _, c := range good {
		if err := ValidateComment(c); err != nil {
			t.Errorf("%q refused: %v", c, err)
		}
	}
	for _, c := range bad {
		if err := ValidateComment(c); err == nil {
			t.Errorf("%q accepted", c)
		}
	}
}

func TestParseEntry(t *testing.T) {
	cases := []struct {
		kind  store.EntryKind
		in    string
		force bool
		want  string
		err   string // substring; "force" means ErrNeedsForce
	}{
		{store.KindIP, "203.0.113.7", false, "203.0.113.7", ""},
		{store.KindIP, " 2001:DB8::7 ", false, "2001:db8::7", ""},
		{store.KindIP, "::ffff:203.0.113.7", false, "203.0.113.7", ""},
		{store.KindIP, "127.0.0.1", false, "127.0.0.1", ""},
		{store.KindIP, "203.0.113.256", false, "", "not an IPv4"},
		{store.KindIP, "203.0.113.0/24", false, "", "use the cidr kind"},
		{store.KindIP, "0.0.0.0", false, "", "force"},
		{store.KindIP, "0.0.0.0", true, "0.0.0.0", ""},
		{store.KindIP, "224.0.0.1", false, "", "force"},
		{store.KindIP, "ff02::1", false, "", "force"},
		{store.KindIP, "255.255.255.255", false, "", "force"},
		{store.KindIP, "fe80::1%eth0", false, "", "zoned"},
		{store.KindIP, "1.2.3.4; iptables -F", false, "", "not an IPv4"},
		{store.KindCIDR, "198.51.100.0/24", false, "198.51.100.0/24", ""},
		{store.KindCIDR, "198.51.100.7/24", false, "", "did you mean 198.51.100.0/24"},
		{store.KindCIDR, "0.0.0.0/0", false, "", "force"},
		{store.KindCIDR, "::/0", false, "", "force"},
		{store.KindCIDR, "0.0.0.0/0", true, "0.0.0.0/0", ""},
		{store.KindCIDR, "128.0.0.0/1", false, "", "force"},
		{store.KindCIDR, "2001:db8::/32", false, "2001:db8::/32", ""},
		{store.KindCIDR, "224.0.0.0/8", false, "", "force"},
		{store.KindCIDR, "::ffff:1.2.3.0/120", false, "", "IPv4 form"},
		{store.KindCIDR, "10.0.0.0", false, "", "not a network"},
		{store.KindFQDN, "PBX.Example.org.", false, "pbx.example.org", ""},
		{store.KindFQDN, "home-1.dyndns.example", false, "home-1.dyndns.example", ""},
		{store.KindFQDN, "localhost", false, "", "two labels"},
		{store.KindFQDN, "1.2.3.4", false, "", "use the ip kind"},
		{store.KindFQDN, "a..b", false, "", "1-63"},
		{store.KindFQDN, "-a.example", false, "", "start or end"},
		{store.KindFQDN, "a b.example", false, "", "not allowed"},
		{store.KindFQDN, `x".example`, false, "", "not allowed"},
		{store.KindFQDN, strings.Repeat("a", 64) + ".example", false, "", "1-63"},
		{"mac", "x", false, "", "entry kind"},
	}
	for _, c := range cases {
		got, err := ParseEntry(c.kind, c.in, c.force)
		switch {
		case c.err == "force":
			if !errors.Is(err, ErrNeedsForce) {
				t.Errorf("%s %q: got %q, %v; want ErrNeedsForce", c.kind, c.in, got, err)
			}
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s %q: got %q, %v; want error containing %q", c.kind, c.in, got, err, c.err)
			}
		default:
			if err != nil || got != c.want {
				t.Errorf("%s %q: got %q, %v; want %q", c.kind, c.in, got, err, c.want)
			}
		}
	}
}

func FuzzParseEntry(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "2001:db8::/32", "pbx.example.org", "0.0.0.0/0", "::ffff:1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, k := range []store.EntryKind{store.KindIP, store.KindCIDR, store.KindFQDN} {
			v, err := ParseEntry(k, s, false)
			if err != nil {
				continue
			}
			// Canonical forms are fixed points and never contain
			// anything a shell or iptables could read as syntax.
			if v2, err := ParseEntry(k, v, false); err != nil || v2 != v {
				t.Fatalf("%s %q -> %q not canonical: %q %v", k, s, v, v2, err)
			}
			if strings.ContainsAny(v, " \t\n;\"'`$|&") {
				t.Fatalf("%s %q -> %q carries syntax", k, s, v)
			}
		}
	})
}
