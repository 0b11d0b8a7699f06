package firewall

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestStateAddKeepsLongestLife(t *testing.T) {
	p := netip.MustParsePrefix("203.0.113.7/32")
	cases := []struct {
		name  string
		adds  []time.Duration
		wantT time.Duration
	}{
		{"single timed", []time.Duration{time.Hour}, time.Hour},
		{"permanent wins", []time.Duration{time.Hour, 0, time.Minute}, 0},
		{"longer timeout wins", []time.Duration{time.Minute, time.Hour}, time.Hour},
		{"shorter does not shrink", []time.Duration{time.Hour, time.Minute}, time.Hour},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s State
			for _, d := range c.adds {
				s.Add(1, p, d)
			}
			if got := s.Sets[1][p]; got != c.wantT || len(s.Sets[1]) != 1 {
				t.Fatalf("got %v (%d members), want %v", got, len(s.Sets[1]), c.wantT)
			}
		})
	}
	var s State
	s.Add(1, netip.MustParsePrefix("::ffff:203.0.113.7/128"), 0)
	if _, ok := s.Sets[1][p]; !ok {
		t.Fatalf("v4-mapped address not folded to v4: %v", s.Sets[1])
	}
}

func TestAdmits(t *testing.T) {
	cfg := DefaultConfig()
	s := State{Config: cfg}
	s.Add(CodeSSH, netip.MustParsePrefix("198.51.100.0/24"), 0)
	s.Add(CodeAll, netip.MustParsePrefix("2001:db8::7/128"), 0)
	cases := []struct {
		src   string
		proto string
		port  uint16
		want  bool
	}{
		{"198.51.100.9", "tcp", 22, true},
		{"198.51.100.9", "tcp", 9022, true},
		{"198.51.100.9", "udp", 5060, false},
		{"198.51.101.9", "tcp", 22, false},
		{"2001:db8::7", "tcp", 2222, true},
		{"192.168.1.5", "tcp", 22, true}, // LAN
		{"127.0.0.1", "tcp", 1, true},
		{"203.0.113.1", "udp", 15000, true}, // RTP open to all
		{"::ffff:198.51.100.9", "tcp", 22, true},
	}
	for _, c := range cases {
		if got := s.Admits(netip.MustParseAddr(c.src), c.proto, c.port); got != c.want {
			t.Errorf("Admits(%s %s/%d) = %v, want %v", c.src, c.proto, c.port, got, c.want)
		}
	}
	if err := s.CheckKeeps(netip.MustParseAddr("198.51.101.9"), "tcp", 22); err == nil || !strings.Contains(err.Error(), "198.51.101.9") {
		t.Errorf("CheckKeeps: %v", err)
	}
	s.Config.LAN = nil
	if s.Admits(netip.MustParseAddr("192.168.1.5"), "tcp", 22) {
		t.Error("LAN admitted with an empty LAN list")
	}
}

func TestConfigValidate(t *testing.T) {
	many := make([]PortRange, 16)
	for i := range many {
		many[i] = PortRange{"tcp", uint16(100 + i), uint16(100 + i)}
	}
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"default", func(*Config) {}, ""},
		{"unmasked lan", func(c *Config) { c.LAN = []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8")} }, "10.1.2.3/8"},
		{"code 0 ports", func(c *Config) { c.Services[0] = []PortRange{{"tcp", 1, 1}} }, "code 0"},
		{"bad proto", func(c *Config) { c.Services[4] = []PortRange{{"sctp", 1, 1}} }, "sctp"},
		{"too many ports", func(c *Config) { c.Services[4] = many }, "more than 15"},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		c.mod(&cfg)
		err := cfg.Validate()
		if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: got %v, want error containing %q", c.name, err, c.want)
		}
	}
}

func TestParsePortRange(t *testing.T) {
	cases := map[string]string{
		"udp/5060:5069": "udp/5060:5069", "tcp/22": "tcp/22", "udp/10000-20000": "udp/10000:20000",
		"tcp/0": "", "icmp/1": "", "tcp/9:8": "", "tcp/70000": "", "22": "",
	}
	for in, want := range cases {
		p, err := ParsePortRange(in)
		if want == "" {
			if err == nil {
				t.Errorf("%q: accepted as %v", in, p)
			}
			continue
		}
		if err != nil || p.String() != want {
			t.Errorf("%q: got %v, %v; want %s", in, p, err, want)
		}
	}
}

func TestRulesFingerprintTracksConfig(t *testing.T) {
	a, b := DefaultConfig(), DefaultConfig()
	if fingerprint0(a.rules(V4)) != fingerprint0(b.rules(V4)) {
		t.Fatal("same config, different fingerprints")
	}
	b.Reject = true
	if fingerprint0(a.rules(V4)) == fingerprint0(b.rules(V4)) {
		t.Fatal("config change not reflected in the fingerprint")
	}
	r := a.rules(V6)
	last := strings.Join(r[len(r)-1], " ")
	if last != "-j DROP" {
		t.Fatalf("last rule %q, want the final DROP", last)
	}
	for _, rule := range r {
		if strings.Contains(strings.Join(rule, " "), "10.0.0.0/8") {
			t.Fatalf("v4 LAN range in the v6 chain: %v", rule)
		}
	}
}
