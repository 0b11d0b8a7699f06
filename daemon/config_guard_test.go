package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigGuards: one typo in [firewall] must not open the server to
// the world. lan gets the entries' width rules, open may not cover a
// service port nor more than 1000 ports beyond RTP; force_wide insists.
// Each refusal names the key and the value.
func TestConfigGuards(t *testing.T) {
	cases := []struct {
		name, text string
		errs       []string // substrings of the error; none: accepted
	}{
		{"lan everyone v4", "[firewall]\nlan = [\"0.0.0.0/0\"]\n", []string{"firewall.lan", `"0.0.0.0/0"`, "force_wide"}},
		{"lan everyone v6", "[firewall]\nlan = [\"::/0\"]\n", []string{"firewall.lan", `"::/0"`, "force_wide"}},
		{"lan among good ones", "[firewall]\nlan = [\"10.0.0.0/8\", \"0.0.0.0/0\"]\n", []string{"firewall.lan", `"0.0.0.0/0"`}},
		{"lan wider than /8", "[firewall]\nlan = [\"64.0.0.0/2\"]\n", []string{"firewall.lan", `"64.0.0.0/2"`, "/8"}},
		{"lan wider than /16 v6", "[firewall]\nlan = [\"2000::/3\"]\n", []string{"firewall.lan", `"2000::/3"`, "/16"}},
		{"lan multicast", "[firewall]\nlan = [\"224.0.0.0/8\"]\n", []string{"firewall.lan", `"224.0.0.0/8"`, "multicast"}},
		{"lan unspecified", "[firewall]\nlan = [\"0.0.0.0/8\"]\n", []string{"firewall.lan", "unspecified"}},
		{"lan 4in6", "[firewall]\nlan = [\"::ffff:10.0.0.0/104\"]\n", []string{"firewall.lan", "IPv4 form"}},
		{"lan default ranges", "[firewall]\nlan = [\"10.0.0.0/8\", \"172.16.0.0/12\", \"192.168.0.0/16\", \"fc00::/7\"]\n", nil},
		{"lan public /24", "[firewall]\nlan = [\"198.51.100.0/24\", \"2001:db8::/48\"]\n", nil},
		{"lan link-local v6", "[firewall]\nlan = [\"fe80::/10\"]\n", nil},
		{"lan forced", "[firewall]\nforce_wide = true\nlan = [\"0.0.0.0/0\"]\n", nil},
		{"open every tcp port", "[firewall]\nopen = [\"tcp/1:65535\"]\n", []string{"firewall.open", `"tcp/1:65535"`, "force_wide"}},
		{"open ssh", "[firewall]\nopen = [\"udp/10000:20000\", \"tcp/22\"]\n", []string{"firewall.open", `"tcp/22"`, "ssh"}},
		{"open sip", "[firewall]\nopen = [\"udp/5000:5100\"]\n", []string{"firewall.open", `"udp/5000:5100"`, "sip-udp"}},
		{"open moved ssh", "[firewall]\nopen = [\"tcp/2222\"]\n[firewall.ports]\nssh = [\"tcp/2222\"]\n", []string{"firewall.open", `"tcp/2222"`, "ssh"}},
		{"open too many high ports", "[firewall]\nopen = [\"udp/20001:40000\"]\n", []string{"firewall.open", `"udp/20001:40000"`, "1000"}},
		{"open many small ranges", "[firewall]\nopen = [\"tcp/30000:30600\", \"tcp/31000:31600\"]\n", []string{"firewall.open", `"tcp/31000:31600"`}},
		{"open rtp", "[firewall]\nopen = [\"udp/10000:20000\"]\n", nil},
		{"open rtp and a few", "[firewall]\nopen = [\"udp/10000:20000\", \"udp/3478\", \"tcp/8088:8089\"]\n", nil},
		{"open forced", "[firewall]\nforce_wide = true\nopen = [\"tcp/1:65535\"]\n", nil},
		{"force_wide is a known key", "[firewall]\nforce_wide = false\n", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseConfig("test.toml", []byte(c.text))
			if len(c.errs) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want an error with %q", c.errs)
			}
			for _, want := range c.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

// TestConfigWarnings: risky settings that are accepted are reported in
// Config.Warnings (the daemon logs them, init and status print them).
func TestConfigWarnings(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string // substrings, one warning each; none: no warning
	}{
		{"defaults", "", nil},
		{"agi on all addresses", "[agi]\nlisten = \"0.0.0.0:4573\"\n", []string{`agi.listen "0.0.0.0:4573"`}},
		{"agi on a public address", "[agi]\nlisten = \"203.0.113.5:4573\"\nallow = [\"203.0.113.9/32\"]\n", []string{`agi.listen "203.0.113.5:4573"`}},
		{"agi off", "[agi]\nlisten = \"\"\n", nil},
		{"agi v6 loopback", "[agi]\nlisten = \"[::1]:4573\"\n", nil},
		{"allow a /16", "[agi]\nallow = [\"127.0.0.0/8\", \"10.1.0.0/16\"]\n", []string{`agi.allow "10.1.0.0/16"`}},
		{"allow a /24", "[agi]\nallow = [\"10.1.2.0/24\", \"2001:db8::/64\"]\n", nil},
		{"allow a v6 /48", "[agi]\nallow = [\"2001:db8::/48\"]\n", []string{`agi.allow "2001:db8::/48"`}},
		{"force_wide", "[firewall]\nforce_wide = true\n", []string{"force_wide"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parseConfig("test.toml", []byte(c.text))
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Warnings) != len(c.want) {
				t.Fatalf("warnings %q, want %d with %q", cfg.Warnings, len(c.want), c.want)
			}
			for i, w := range c.want {
				if !strings.Contains(cfg.Warnings[i], w) {
					t.Errorf("warning %q lacks %q", cfg.Warnings[i], w)
				}
			}
		})
	}
}

// TestConfigSecretModeWarning: a config holding ami.secret that group or
// others can read is loaded, with a warning naming the file and the fix.
func TestConfigSecretModeWarning(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, text string
		mode       os.FileMode
		warn       bool
	}{
		{"secret 0600", "[ami]\nsecret = \"s3cret\"\n", 0o600, false},
		{"secret 0640", "[ami]\nsecret = \"s3cret\"\n", 0o640, true},
		{"secret 0604", "[ami]\nsecret = \"s3cret\"\n", 0o604, true},
		{"no secret 0644", "[ami]\nsecret = \"\"\n", 0o644, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".toml")
			if err := os.WriteFile(p, []byte(c.text), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, c.mode); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadConfig(p, true)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(cfg.Warnings, "\n")
			if c.warn != strings.Contains(got, "ami.secret") {
				t.Fatalf("warnings %q; want an ami.secret warning: %v", cfg.Warnings, c.warn)
			}
			if c.warn && (!strings.Contains(got, p) || !strings.Contains(got, "chmod 600")) {
				t.Errorf("warning %q should name the file and the fix", got)
			}
		})
	}
}
