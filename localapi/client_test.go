package localapi

import (
	"net/netip"
	"testing"
)

func TestSSHFromEnv(t *testing.T) {
	cases := []struct {
		conn, client string
		want         string
	}{
		{"203.0.113.9 51234 198.51.100.1 22", "", "203.0.113.9:22"},
		{"2001:db8::9 51234 2001:db8::1 9022", "", "[2001:db8::9]:9022"},
		{"::ffff:203.0.113.9 5 198.51.100.1 22", "", "203.0.113.9:22"},
		{"", "203.0.113.9 51234 22", "203.0.113.9:22"},
		{"garbage", "also garbage here", ""},
		{"", "", ""},
	}
	for _, c := range cases {
		env := map[string]string{"SSH_CONNECTION": c.conn, "SSH_CLIENT": c.client}
		got := SSHFromEnv(func(k string) string { return env[k] })
		var want netip.AddrPort
		if c.want != "" {
			want = netip.MustParseAddrPort(c.want)
		}
		if got != want {
			t.Errorf("SSH_CONNECTION=%q SSH_CLIENT=%q: got %v, want %v", c.conn, c.client, got, want)
		}
	}
}
