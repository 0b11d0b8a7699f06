package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/dialgate/dialgate/firewall"
)

// Default paths. Every one can be changed in the config file, and the
// config file itself with --config, so tests and several instances can
// run side by side.
const (
	DefaultConfigPath = "/etc/dialgate/dialgate.toml"
	DefaultDBPath     = "/var/lib/dialgate/dialgate.db"
	DefaultSocketPath = "/run/dialgate/dialgate.sock"
)

// Config is the daemon's configuration file, /etc/dialgate/dialgate.toml.
type Config struct {
	DB       string         `toml:"db"`
	Socket   string         `toml:"socket"`
	LogLevel string         `toml:"log_level"`
	Firewall FirewallConfig `toml:"firewall"`
	FQDN     FQDNConfig     `toml:"fqdn"`
}

// FirewallConfig is the [firewall] table.
type FirewallConfig struct {
	// LAN ranges admitted to everything; absent means the RFC 1918 +
	// fc00::/7 default, an empty list means none (cloud servers).
	LAN []string `toml:"lan"`
	// Ports overrides the ports of a service, keyed by its name
	// (sip-udp, sip-tcp, iax, web, webmin, ftp, tftp, ssh, fop).
	Ports map[string][]string `toml:"ports"`
	// Open lists ports open to everybody; absent means RTP udp/10000:20000.
	Open   []string `toml:"open"`
	ICMP   *bool    `toml:"icmp"`
	Reject bool     `toml:"reject"`

	parsed firewall.Config
}

// FQDNConfig is the [fqdn] table.
type FQDNConfig struct {
	// Timeout bounds one name's resolution.
	Timeout Duration `toml:"timeout"`
}

// Duration is a time.Duration written as "5m" in TOML.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// DefaultConfig is the configuration of a fresh install.
func DefaultConfig() Config {
	c := Config{
		DB:       DefaultDBPath,
		Socket:   DefaultSocketPath,
		LogLevel: "info",
		FQDN:     FQDNConfig{Timeout: Duration{3 * time.Second}},
	}
	c.Firewall.parsed = firewall.DefaultConfig()
	return c
}

// FirewallRules returns the parsed [firewall] table.
func (c Config) FirewallRules() firewall.Config { return c.Firewall.parsed }

// LoadConfig reads path. A missing file at the default path yields the
// defaults, so `dialgate serve` works out of the box; a missing file that
// was asked for explicitly is an error. Unknown keys are errors: a typo
// in a firewall config must not be silently ignored.
func LoadConfig(path string, explicit bool) (Config, error) {
	c := DefaultConfig()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	return parseConfig(path, data)
}

func parseConfig(path string, data []byte) (Config, error) {
	c := DefaultConfig()
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&c)
	if err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return c, fmt.Errorf("config %s: unknown key %s", path, strings.Join(keys, ", "))
	}
	fw := firewall.DefaultConfig()
	if md.IsDefined("firewall", "lan") {
		fw.LAN = nil
		for _, s := range c.Firewall.LAN {
			p, err := netip.ParsePrefix(strings.TrimSpace(s))
			if err != nil || p != p.Masked() {
				return c, fmt.Errorf("config %s: firewall.lan: %q is not a network prefix such as 10.0.0.0/8", path, s)
			}
			fw.LAN = append(fw.LAN, p)
		}
	}
	for name, specs := range c.Firewall.Ports {
		code := -1
		for i := 1; i < firewall.NumCodes; i++ {
			if firewall.CodeName(i) == name {
				code = i
			}
		}
		if code < 1 {
			return c, fmt.Errorf("config %s: firewall.ports.%s: unknown service (want one of sip-udp, sip-tcp, iax, web, webmin, ftp, tftp, ssh, fop)", path, name)
		}
		ranges, err := parseRanges(specs)
		if err != nil {
			return c, fmt.Errorf("config %s: firewall.ports.%s: %w", path, name, err)
		}
		fw.Services[code] = ranges
	}
	if md.IsDefined("firewall", "open") {
		if fw.Open, err = parseRanges(c.Firewall.Open); err != nil {
			return c, fmt.Errorf("config %s: firewall.open: %w", path, err)
		}
	}
	if c.Firewall.ICMP != nil {
		fw.ICMP = *c.Firewall.ICMP
	}
	fw.Reject = c.Firewall.Reject
	if err := fw.Validate(); err != nil {
		return c, fmt.Errorf("config %s: firewall: %w", path, err)
	}
	c.Firewall.parsed = fw
	for key, p := range map[string]string{"db": c.DB, "socket": c.Socket} {
		if !filepath.IsAbs(p) {
			return c, fmt.Errorf("config %s: %s: %q must be an absolute path", path, key, p)
		}
	}
	if c.FQDN.Timeout.Duration <= 0 || c.FQDN.Timeout.Duration > time.Minute {
		return c, fmt.Errorf("config %s: fqdn.timeout: %v must be between 0 and 1m", path, c.FQDN.Timeout)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return c, fmt.Errorf("config %s: log_level: %q, want debug, info, warn or error", path, c.LogLevel)
	}
	return c, nil
}

func parseRanges(specs []string) ([]firewall.PortRange, error) {
	out := make([]firewall.PortRange, 0, len(specs))
	for _, s := range specs {
		r, err := firewall.ParsePortRange(s)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// DefaultConfigText is what `dialgate init` writes: every setting, at its
// default, with a word on why one would change it.
func DefaultConfigText(c Config) string {
	return fmt.Sprintf(`# dialgate configuration. Every setting shown is the default.

# Where the state (accounts, entries, grants, audit log) lives.
db = %q
# The LocalAPI socket the dialgate CLI talks to (mode 0600, root only).
socket = %q
log_level = "info"

[firewall]
# Networks admitted to every service. On a cloud server, where the
# provider may route private ranges to you, set lan = [].
lan = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
# Ports open to everybody: RTP media, as in Asterisk's rtp.conf.
open = ["udp/10000:20000"]
# Essential ICMP and ICMPv6 (neighbour discovery): keep on.
icmp = true
# Answer refused packets with an ICMP error instead of dropping them.
reject = false

# Ports of each service (permission code). Uncomment to change.
[firewall.ports]
# sip-udp = ["udp/5060:5069"]     # code 1
# sip-tcp = ["tcp/5060:5069"]     # code 2
# iax     = ["udp/4569"]          # code 3
# web     = ["tcp/80", "tcp/443", "tcp/9080"]  # code 4
# webmin  = ["tcp/9001"]          # code 5 (10000 on stock Webmin)
# ftp     = ["tcp/21"]            # code 6
# tftp    = ["udp/69"]            # code 7
# ssh     = ["tcp/22", "tcp/9022"] # code 8
# fop     = ["tcp/4445"]          # code 9

[fqdn]
# How long one dynamic-DNS name may take to resolve.
timeout = "3s"
`, c.DB, c.Socket)
}
