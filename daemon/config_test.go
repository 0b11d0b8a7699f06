package daemon

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/firewall"
)

func TestDefaultConfigTextParses(t *testing.T) {
	c, err := parseConfig("default", []byte(DefaultConfigText(DefaultConfig())))
	if err != nil {
		t.Fatal(err)
	}
	want := firewall.DefaultConfig()
	got := c.FirewallRules()
	if len(got.LAN) != len(want.LAN) || len(got.Open) != 1 || !got.ICMP || got.Reject {
		t.Fatalf("default text does not round-trip to the defaults: %+v", got)
	}
	if c.DB != DefaultDBPath || c.Socket != DefaultSocketPath || c.FQDN.Timeout.Duration != 3*time.Second {
		t.Fatalf("paths/timeouts: %+v", c)
	}
	if c.Door != DefaultConfig().Door {
		t.Fatalf("[door] written by init differs from the defaults:\n%+v\n%+v", c.Door, DefaultConfig().Door)
	}
}

func TestParseConfig(t *testing.T) {
	cases := []struct {
		name, text string
		err        string
		check      func(t *testing.T, c Config)
	}{
		{name: "empty is defaults", text: "", check: func(t *testing.T, c Config) {
			if len(c.FirewallRules().LAN) != 4 {
				t.Errorf("LAN %v", c.FirewallRules().LAN)
			}
		}},
		{name: "cloud server", text: "[firewall]\nlan = []\n", check: func(t *testing.T, c Config) {
			if len(c.FirewallRules().LAN) != 0 {
				t.Errorf("lan = [] kept %v", c.FirewallRules().LAN)
			}
		}},
		{name: "custom ports", text: "[firewall.ports]\nssh = [\"tcp/2222\"]\nwebmin = [\"tcp/10000\"]\n", check: func(t *testing.T, c Config) {
			s := c.FirewallRules().Services
			if len(s[firewall.CodeSSH]) != 1 || s[firewall.CodeSSH][0].From != 2222 || s[firewall.CodeWebmin][0].From != 10000 {
				t.Errorf("services %v", s)
			}
		}},
		{name: "no rtp", text: "[firewall]\nopen = []\n", check: func(t *testing.T, c Config) {
			if len(c.FirewallRules().Open) != 0 {
				t.Errorf("open %v", c.FirewallRules().Open)
			}
		}},
		{name: "lan v6 only", text: "[firewall]\nlan = [\"fd00::/8\"]\n", check: func(t *testing.T, c Config) {
			if got := c.FirewallRules().LAN; len(got) != 1 || got[0] != netip.MustParsePrefix("fd00::/8") {
				t.Errorf("lan %v", got)
			}
		}},
		{name: "typo key", text: "[firewall]\nlans = []\n", err: "unknown key firewall.lans"},
		{name: "bad lan", text: "[firewall]\nlan = [\"10.0.0.1/8\"]\n", err: `"10.0.0.1/8"`},
		{name: "unknown service", text: "[firewall.ports]\nsmtp = [\"tcp/25\"]\n", err: "firewall.ports.smtp"},
		{name: "bad port", text: "[firewall.ports]\nssh = [\"tcp/99999\"]\n", err: "tcp/99999"},
		{name: "relative db", text: "db = \"dialgate.db\"\n", err: "absolute"},
		{name: "bad timeout", text: "[fqdn]\ntimeout = \"forever\"\n", err: "forever"},
		{name: "bad level", text: "log_level = \"loud\"\n", err: "log_level"},
		{name: "not toml", text: "lan = [", err: "config"},
		{name: "stale non-core sounds from an old init", text: "[door.sounds]\nip_prompt = \"please-enter-the\"\nfailed = \"an-error-has-occurred\"\n",
			check: func(t *testing.T, c Config) {
				if c.Door.Sounds.IPPrompt != "vm-enter-num-to-call" || c.Door.Sounds.Failed != "im-sorry" {
					t.Errorf("sounds %+v", c.Door.Sounds)
				}
			}},
		{name: "own sound kept", text: "[door.sounds]\nfailed = \"custom/door-error\"\n", check: func(t *testing.T, c Config) {
			if c.Door.Sounds.Failed != "custom/door-error" {
				t.Errorf("failed = %q", c.Door.Sounds.Failed)
			}
		}},
		{name: "door rates", text: "[door]\nrate_per_minute = 30\nidentity_rate_per_minute = 3\nmax_checks_per_minute = 100\n", check: func(t *testing.T, c Config) {
			dc := c.Door.doorConfig()
			if dc.RatePerMinute != 30 || dc.IdentityRatePerMinute != 3 || dc.MaxChecksPerMinute != 100 {
				t.Errorf("%+v", dc)
			}
		}},
		{name: "ceiling below a rate", text: "[door]\nrate_per_minute = 100\nmax_checks_per_minute = 50\n", err: "door.max_checks_per_minute"},
		{name: "bad threads", text: "[door]\nhash_threads = 0\n", err: "door.hash_threads"},
		{name: "sound with a space", text: "[door.sounds]\ndot = \"letters/dot x\"\n", err: "door.sounds.dot"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parseConfig("test.toml", []byte(c.text))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want error containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, cfg)
		})
	}
}

func TestLoadConfigMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "none.toml")
	if _, err := LoadConfig(p, false); err != nil {
		t.Errorf("missing default config should mean defaults: %v", err)
	}
	if _, err := LoadConfig(p, true); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing explicit config: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}
