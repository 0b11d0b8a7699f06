package dialplan

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

const testSecret = "s3cr3t-Sixteen+chars"

func TestManagerStanzaGolden(t *testing.T) {
	got, err := ManagerStanza("dialgate", testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "manager_default", got)

	got, err = ManagerStanza("dialgate-pbx2", testSecret, []netip.Prefix{
		netip.MustParsePrefix("127.0.0.1/32"),
		netip.MustParsePrefix("10.1.2.3/24"), // written as its network
		netip.MustParsePrefix("10.1.2.0/24"), // the same network again: once
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("fd00:1::/64"),
	})
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "manager_custom", got)
}

// The stanza grants exactly class system, never the classes that would
// let the login run CLI commands, originate calls or rewrite config.
func TestManagerStanzaPrivileges(t *testing.T) {
	got, err := ManagerStanza("dialgate", testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	var settings []string
	for _, l := range strings.Split(got, "\n") {
		if l != "" && !strings.HasPrefix(l, ";") {
			settings = append(settings, l)
		}
	}
	want := []string{
		"[dialgate]",
		"secret = " + testSecret,
		"deny = 0.0.0.0/0.0.0.0",
		"deny = ::/0",
		"permit = 127.0.0.1/255.255.255.255",
		"read = system,security",
		"write = system",
		"writetimeout = 5000",
	}
	if strings.Join(settings, "\n") != strings.Join(want, "\n") {
		t.Errorf("settings:\n%s\nwant:\n%s", strings.Join(settings, "\n"), strings.Join(want, "\n"))
	}
}

func TestManagerStanzaValidation(t *testing.T) {
	for _, tc := range []struct {
		name, user, secret string
		permit             []netip.Prefix
	}{
		{"empty user", "", testSecret, nil},
		{"user newline", "dialgate\n[admin]", testSecret, nil},
		{"user bracket", "dialgate]", testSecret, nil},
		{"user space", "dial gate", testSecret, nil},
		{"user general", "General", testSecret, nil},
		{"user long", strings.Repeat("u", 80), testSecret, nil},
		{"secret short", "dialgate", "short", nil},
		{"secret space", "dialgate", "0123456789 abcdefgh", nil},
		{"secret newline", "dialgate", "0123456789abcdefgh\nread = all", nil},
		{"secret tab", "dialgate", "0123456789\tabcdefgh", nil},
		{"secret comment", "dialgate", "0123456789abcdefgh;x", nil},
		{"secret backslash", "dialgate", `0123456789abcdefgh\;`, nil},
		{"secret non-ASCII", "dialgate", "0123456789abcdefghé", nil},
		{"permit all v4", "dialgate", testSecret, []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}},
		{"permit all v6", "dialgate", testSecret, []netip.Prefix{netip.MustParsePrefix("::/0")}},
		{"permit invalid", "dialgate", testSecret, []netip.Prefix{{}}},
		{"permit mapped", "dialgate", testSecret, []netip.Prefix{netip.MustParsePrefix("::ffff:127.0.0.1/128")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ManagerStanza(tc.user, tc.secret, tc.permit)
			if err == nil {
				t.Fatalf("accepted:\n%s", got)
			}
			if !errors.Is(err, ErrOption) {
				t.Errorf("error %v does not wrap ErrOption", err)
			}
			if len(tc.secret) > 8 && strings.Contains(err.Error(), tc.secret) {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}
