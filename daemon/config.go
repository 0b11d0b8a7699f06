package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/door"
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
	DB         string           `toml:"db"`
	Socket     string           `toml:"socket"`
	LogLevel   string           `toml:"log_level"`
	Firewall   FirewallConfig   `toml:"firewall"`
	FQDN       FQDNConfig       `toml:"fqdn"`
	AGI        AGIConfig        `toml:"agi"`
	Door       DoorConfig       `toml:"door"`
	AMI        AMIConfig        `toml:"ami"`
	Metrics    MetricsConfig    `toml:"metrics"`
	Audit      AuditConfig      `toml:"audit"`
	Blocking   BlockingConfig   `toml:"blocking"`
	Responsive ResponsiveConfig `toml:"responsive"`
	Store      StoreConfig      `toml:"store"`

	// Warnings are settings that are accepted but risky (FastAGI reachable
	// from afar, a secret in a world-readable file, ...). The daemon logs
	// them at WARN when it loads the config; init and status print them.
	Warnings []string `toml:"-"`
}

// AMIConfig is the [ami] table: the Asterisk Manager Interface login
// used to find where an account's extension is registered from and to
// reload the dialplan. The file holds the secret: it is created 0600.
type AMIConfig struct {
	Enabled  bool   `toml:"enabled"`
	Addr     string `toml:"addr"`
	Username string `toml:"username"`
	Secret   string `toml:"secret"`
	// MD5 logs in with a challenge, so the secret never crosses the wire.
	MD5 bool `toml:"md5"`
	// LookupTimeout bounds a registered-contact lookup during a call; past
	// it the door uses the channel's own address.
	LookupTimeout Duration `toml:"lookup_timeout"`
	// FollowReregister moves a live grant when the extension registers
	// again from a new address.
	FollowReregister bool `toml:"follow_reregister"`
}

// AGIConfig is the [agi] table: the FastAGI server Asterisk calls.
type AGIConfig struct {
	// Listen is host:port; loopback by default because FastAGI has no
	// authentication. Empty disables the phone door.
	Listen string `toml:"listen"`
	// Allow lists the Asterisk servers (networks) whose connections are
	// served; others are closed before a byte is read.
	Allow       []string `toml:"allow"`
	MaxSessions int      `toml:"max_sessions"`

	allow []netip.Prefix
}

// AllowPrefixes returns the parsed agi.allow list.
func (a AGIConfig) AllowPrefixes() []netip.Prefix { return a.allow }

// DoorConfig is the [door] table: how the phone door grants access.
type DoorConfig struct {
	Lifetime      Duration `toml:"lifetime"`       // default grant lifetime (an account may set its own)
	MaxGrants     int      `toml:"max_grants"`     // live grants per account; the oldest gives way
	Tries         int      `toml:"tries"`          // passcode attempts per call
	DigitTimeout  Duration `toml:"digit_timeout"`  // GET DATA timeout
	MaxFailures   int      `toml:"max_failures"`   // lockout after this many failures...
	FailureWindow Duration `toml:"failure_window"` // ...within this window
	LockFor       Duration `toml:"lock_for"`
	// RatePerMinute is shared by every caller who keys an account number;
	// IdentityRatePerMinute is each bound identity's own (calling
	// extension, bound caller ID); MaxChecksPerMinute caps them all.
	RatePerMinute         int    `toml:"rate_per_minute"`
	IdentityRatePerMinute int    `toml:"identity_rate_per_minute"`
	MaxChecksPerMinute    int    `toml:"max_checks_per_minute"`
	HashMemoryKiB         uint32 `toml:"hash_memory_kib"` // argon2id cost of new passcode hashes
	HashTime              uint32 `toml:"hash_time"`
	HashThreads           uint8  `toml:"hash_threads"`
	Sounds                Sounds `toml:"sounds"`
}

// Sounds are the Asterisk sound files the door plays (core sounds by
// default); an administrator may record their own. Goodbye is played by
// the generated dialplan, not the door.
type Sounds struct {
	AccountPrompt string `toml:"account_prompt"`
	Prompt        string `toml:"prompt"`
	Incorrect     string `toml:"incorrect"`
	Denied        string `toml:"denied"`
	IPPrompt      string `toml:"ip_prompt"`
	YouEntered    string `toml:"you_entered"`
	Dot           string `toml:"dot"`
	Granted       string `toml:"granted"`
	Hours         string `toml:"hours"`
	Minutes       string `toml:"minutes"`
	Minute        string `toml:"minute"`
	And           string `toml:"and"`
	Admitted      string `toml:"admitted"`
	Locked        string `toml:"locked"`
	Failed        string `toml:"failed"`
	Goodbye       string `toml:"goodbye"`
}

// defaultSounds are door.DefaultSounds in the config's shape.
func defaultSounds() Sounds {
	s := door.DefaultSounds
	return Sounds{
		AccountPrompt: s.AccountPrompt, Prompt: s.Prompt, Incorrect: s.Incorrect, Denied: s.Denied,
		IPPrompt: s.IPPrompt, YouEntered: s.YouEntered, Dot: s.Dot, Granted: s.Granted,
		Hours: s.Hours, Minutes: s.Minutes, Minute: s.Minute, And: s.And,
		Admitted: s.Admitted, Locked: s.Locked, Failed: s.Failed, Goodbye: "vm-goodbye",
	}
}

// staleSounds are defaults of earlier versions that are not Asterisk core
// sounds (a stock server plays silence for them). `dialgate init` wrote
// them into config files, so a file naming them gets today's default.
var staleSounds = map[string]string{"please-enter-the": "ip_prompt", "an-error-has-occurred": "failed"}

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
	// Backend is "iptables" (iptables/ip6tables + ipset, the default),
	// "nftables" (one inet table) or "auto" (the loaded one, else
	// nftables when the kernel has it, else iptables).
	Backend string `toml:"backend"`
	// ForceWide lets lan hold networks wider than an entry may be
	// (0.0.0.0/0 included) and open cover service ports or more than
	// maxOpenPorts ports outside the RTP range. One typo then opens the
	// server to the world: it is off by default.
	ForceWide bool `toml:"force_wide"`

	parsed firewall.Config
}

// FQDNConfig is the [fqdn] table: the dynamic-DNS refresher.
type FQDNConfig struct {
	// Timeout bounds one name's resolution.
	Timeout Duration `toml:"timeout"`
	// Interval is how often each name is re-resolved (an entry may ask
	// for less).
	Interval Duration `toml:"interval"`
	// Grace is how long a name that stops resolving keeps its last-known
	// addresses.
	Grace Duration `toml:"grace"`
	// Workers bounds the lookups in flight.
	Workers int `toml:"workers"`
	// Tick is how often the refresher looks for names that are due.
	Tick Duration `toml:"tick"`
}

// Duration is a time.Duration written as "5m" in TOML.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b)) // also "90d"
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
		FQDN: FQDNConfig{Timeout: Duration{3 * time.Second}, Interval: Duration{5 * time.Minute},
			Grace: Duration{24 * time.Hour}, Workers: 64, Tick: Duration{15 * time.Second}},
		AGI: AGIConfig{
			Listen: "127.0.0.1:4573",
			Allow:  []string{"127.0.0.0/8", "::1/128"},
			allow:  []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		},
		AMI: AMIConfig{Addr: "127.0.0.1:5038", Username: "dialgate", MD5: true, LookupTimeout: Duration{2 * time.Second}},
		Door: DoorConfig{
			Lifetime: Duration{8 * time.Hour}, MaxGrants: 3, Tries: 3,
			DigitTimeout: Duration{10 * time.Second},
			MaxFailures:  5, FailureWindow: Duration{15 * time.Minute}, LockFor: Duration{15 * time.Minute},
			RatePerMinute: 60, IdentityRatePerMinute: 6, MaxChecksPerMinute: 300,
			HashMemoryKiB: auth.DefaultParams.Memory, HashTime: auth.DefaultParams.Time, HashThreads: auth.DefaultParams.Threads,
			Sounds: defaultSounds(),
		},
	}
	c.Firewall.parsed = firewall.DefaultConfig()
	c.Firewall.Backend = firewall.KindIPTables
	c.Audit = defaultAudit()
	c.Store = defaultStore()
	c.Blocking = BlockingConfig{After: 5, Window: Duration{10 * time.Minute}, BlockFor: Duration{time.Hour}}
	c.Responsive = ResponsiveConfig{PerMinute: firewall.DefaultResponsivePerMinute, Burst: firewall.DefaultResponsiveBurst,
		Grant: "sip", GrantFor: Duration{time.Hour}}
	return c
}

// DefaultConfigAt is the configuration a config file at path starts
// from. The installed file, DefaultConfigPath, gets the system paths; any
// other file (a lab, a second instance) keeps its database and socket
// beside itself, dialgate.db and dialgate.sock, unless it sets db or
// socket.
func DefaultConfigAt(path string) Config {
	c := DefaultConfig()
	if abs, err := filepath.Abs(path); err == nil && abs != DefaultConfigPath {
		dir := filepath.Dir(abs)
		c.DB, c.Socket = filepath.Join(dir, "dialgate.db"), filepath.Join(dir, "dialgate.sock")
	}
	return c
}

// FirewallRules returns the parsed [firewall] table, with the block
// rule when failed-authentication blocking is on.
func (c Config) FirewallRules() firewall.Config {
	fc := c.Firewall.parsed
	fc.Block = c.Blocking.On(c.AMI)
	fc.Responsive = c.Responsive.firewall()
	return fc
}

// LoadConfig reads path. A missing file at the default path yields the
// defaults, so `dialgate serve` works out of the box; a missing file that
// was asked for explicitly is an error. Unknown keys are errors: a typo
// in a firewall config must not be silently ignored.
func LoadConfig(path string, explicit bool) (Config, error) {
	c := DefaultConfigAt(path)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	c, err = parseConfig(path, data)
	if err != nil {
		return c, err
	}
	var secrets []string
	if c.AMI.Secret != "" {
		secrets = append(secrets, "ami.secret")
	}
	if c.Store.Password != "" {
		secrets = append(secrets, "store.password")
	}
	if len(secrets) > 0 {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o044 != 0 {
			c.Warnings = append(c.Warnings, fmt.Sprintf("config %s: holds %s but is readable by group or others (mode %04o); chmod 600 %s", path, strings.Join(secrets, " and "), fi.Mode().Perm(), path))
		}
	}
	return c, nil
}

// privateLAN are the ranges no Internet host can send from; a lan range
// inside one of them may be as wide as the block itself (fc00::/7 is wider
// than an entry's /16 limit).
var privateLAN = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
}

// checkLAN applies the entries' width rules to a [firewall] lan range.
func checkLAN(p netip.Prefix) error {
	for _, b := range privateLAN {
		if p.Bits() >= b.Bits() && b.Contains(p.Addr()) {
			return nil
		}
	}
	return auth.CheckNetwork(p)
}

// maxOpenPorts bounds the ports [firewall] open may admit from everyone
// outside rtpRange, without force_wide.
const maxOpenPorts = 1000

// rtpRange is Asterisk's RTP range (rtp.conf's default), the one set of
// ports a PBX must open to the world.
var rtpRange = firewall.PortRange{Proto: "udp", From: 10000, To: 20000}

// checkOpen refuses an open list that admits everyone to a service port
// or to more than maxOpenPorts ports outside the RTP range.
func checkOpen(open []firewall.PortRange, services map[int][]firewall.PortRange) error {
	outside := 0
	for _, o := range open {
		for code := 1; code < firewall.NumCodes; code++ {
			for _, sp := range services[code] {
				if sp.Proto == o.Proto && sp.From <= o.To && o.From <= sp.To {
					return fmt.Errorf("%q admits everyone to %s, the ports of %s (code %d)", o.String(), sp, firewall.CodeName(code), code)
				}
			}
		}
		n := int(o.To) - int(o.From) + 1
		if o.Proto == rtpRange.Proto {
			lo, hi := max(o.From, rtpRange.From), min(o.To, rtpRange.To)
			if lo <= hi {
				n -= int(hi) - int(lo) + 1
			}
		}
		outside += n
		if outside > maxOpenPorts {
			return fmt.Errorf("%q: more than %d ports open to everyone outside the RTP range %s", o.String(), maxOpenPorts, rtpRange)
		}
	}
	return nil
}

// warnings lists risky settings that are accepted: FastAGI has no
// authentication, so whoever reaches it can ask the door for grants.
func (c Config) warnings() []string {
	var w []string
	if c.AGI.Listen != "" {
		if ap, err := netip.ParseAddrPort(c.AGI.Listen); err == nil && !ap.Addr().IsLoopback() {
			w = append(w, fmt.Sprintf("agi.listen %q is not a loopback address: FastAGI has no authentication, only agi.allow stands between the door and the network", c.AGI.Listen))
		}
	}
	for _, p := range c.AGI.allow {
		limit := 24
		if p.Addr().Is6() && !p.Addr().Is4In6() {
			limit = 64
		}
		if !p.Addr().IsLoopback() && p.Bits() < limit {
			w = append(w, fmt.Sprintf("agi.allow %q is wider than /%d: list the Asterisk servers, not their networks", p, limit))
		}
	}
	if c.Firewall.ForceWide {
		w = append(w, "firewall.force_wide = true: the width checks of firewall.lan and firewall.open are off")
	}
	return append(w, c.Store.warnings()...)
}

func parseConfig(path string, data []byte) (Config, error) {
	c := DefaultConfigAt(path)
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
			if err != nil || p != p.Masked() || p.Addr().Zone() != "" {
				return c, fmt.Errorf("config %s: firewall.lan: %q is not a network prefix such as 10.0.0.0/8", path, s)
			}
			if p.Addr().Is4In6() {
				return c, fmt.Errorf("config %s: firewall.lan: %q: write IPv4 networks in IPv4 form", path, s)
			}
			if err := checkLAN(p); err != nil && !c.Firewall.ForceWide {
				why := strings.TrimPrefix(err.Error(), auth.ErrNeedsForce.Error()+": ")
				return c, fmt.Errorf("config %s: firewall.lan: %q refused: %s, and a lan range is admitted to every service; list narrower networks, or set force_wide = true in [firewall] to insist", path, s, why)
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
	if err := checkOpen(fw.Open, fw.Services); err != nil && !c.Firewall.ForceWide {
		return c, fmt.Errorf("config %s: firewall.open: %v; open only the RTP range, or set force_wide = true in [firewall] to insist", path, err)
	}
	if c.Firewall.ICMP != nil {
		fw.ICMP = *c.Firewall.ICMP
	}
	fw.Reject = c.Firewall.Reject
	switch c.Firewall.Backend {
	case firewall.KindIPTables, firewall.KindNFTables, firewall.KindAuto:
	default:
		return c, fmt.Errorf("config %s: firewall.backend: %q, want iptables, nftables or auto", path, c.Firewall.Backend)
	}
	if err := fw.Validate(); err != nil {
		return c, fmt.Errorf("config %s: firewall: %w", path, err)
	}
	c.Firewall.parsed = fw
	for key, p := range map[string]string{"db": c.DB, "socket": c.Socket} {
		if !filepath.IsAbs(p) {
			return c, fmt.Errorf("config %s: %s: %q must be an absolute path", path, key, p)
		}
	}
	if err := c.FQDN.validate(); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.AGI.parse(); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.Metrics.validate(); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.Audit.validate(); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.AMI.validate(); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.Blocking.validate(); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.Responsive.validate(); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.Store.validate(c.DB); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	fresh := defaultSounds()
	for _, p := range []*string{&c.Door.Sounds.IPPrompt, &c.Door.Sounds.Failed} {
		if key, stale := staleSounds[*p]; stale {
			*p = map[string]string{"ip_prompt": fresh.IPPrompt, "failed": fresh.Failed}[key]
		}
	}
	if err := c.Door.validate(); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return c, fmt.Errorf("config %s: log_level: %q, want debug, info, warn or error", path, c.LogLevel)
	}
	c.Warnings = c.warnings()
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
# iptables (iptables/ip6tables + ipset), nftables (one inet table), or
# auto (the one already loaded, else nftables if the kernel has it).
backend = "iptables"
# Networks admitted to every service. On a cloud server, where the
# provider may route private ranges to you, set lan = [].
lan = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
# Ports open to everybody: RTP media, as in Asterisk's rtp.conf.
open = ["udp/10000:20000"]
# lan takes networks no wider than /8 (IPv4) or /16 (IPv6) outside the
# private ranges, and open neither the service ports below nor more than
# 1000 ports beyond udp/10000:20000. force_wide = true lifts both checks:
# DANGEROUS, one typo (lan = ["0.0.0.0/0"]) then admits the whole Internet.
force_wide = false
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
# Dynamic-DNS names are re-resolved every interval (an entry may ask for
# less), at most workers at a time, each within timeout. A name that stops
# resolving keeps its last-known addresses for grace, then loses them.
timeout = "3s"
interval = "5m"
grace = "24h"
workers = 64
tick = "15s"

[agi]
# The FastAGI server Asterisk's dialplan calls (agi://127.0.0.1:4573/authorize).
# FastAGI has no authentication: keep it on loopback, or list the remote
# Asterisk servers in allow.
listen = "127.0.0.1:4573"
allow = ["127.0.0.0/8", "::1/128"]
max_sessions = 0          # 0: no limit

[door]
lifetime = "8h"           # how long a phone grant lasts (per-account override)
max_grants = 3            # live grants per account; the oldest gives way
tries = 3                 # passcode attempts per call
digit_timeout = "10s"
max_failures = 5          # lock a caller ID / account after this many failures
failure_window = "15m"    # ...within this window
lock_for = "15m"
# Passcode checks a minute: shared by every caller who keys an account
# number; for each caller identified by extension or bound caller ID; in all.
rate_per_minute = 60
identity_rate_per_minute = 6
max_checks_per_minute = 300
# argon2id cost of new passcodes (OWASP: 7 MiB, 5 passes); two lanes let a
# two-core PBX compute one check in half the time at the same attacker cost.
hash_memory_kib = 7168
hash_time = 5
hash_threads = 2

[ami]
# Asterisk Manager Interface, to grant the address an account's extension
# is registered from and to reload the dialplan. Create the manager.conf
# user with: dialgate dialplan manager-conf
enabled = false
addr = "127.0.0.1:5038"
username = "dialgate"
secret = ""
md5 = true                # challenge login: the secret never crosses the wire
lookup_timeout = "2s"     # then the door uses the channel's own address
follow_reregister = false # move a live grant when the phone registers from a new address

[blocking]
# Sources that fail SIP (or IAX2, AMI) authentication after times within
# window are dropped by the kernel for block_for, every service: what
# fail2ban does, from Asterisk's own security events instead of its log.
# Needs [ami] enabled and the manager user's read class "security".
# Whitelisted sources (entries, grants, LAN ranges) are never blocked.
# after = 0: off.
after = 5
window = "10m"
block_for = "1h"

[responsive]
# Zero-touch travelers. Sources that are not whitelisted may send SIP
# REGISTER (nothing else) over UDP to the SIP ports, per_minute per
# source (burst at once), limited in the kernel; a flow admitted only to
# register stays limited to REGISTER. A phone whose extension is bound to
# an account (dialgate account set NAME --extension EXT) and that
# registers with valid credentials gets its address granted for
# grant_for, renewed on every re-registration and ended when it
# unregisters. Grants need [ami] (read = system,security). grant = "sip"
# admits SIP only (codes 1, 2); "account" the account's own services.
enabled = false
per_minute = 6
burst = 3
# tcp = true admits TCP connections too (not TLS); a firewall can hold a
# TCP segment only to starting with "REGISTER ", so read the README first.
tcp = false
grant = "sip"
grant_for = "1h"

[metrics]
# Prometheus endpoint (/metrics), loopback only; empty: off.
listen = ""

[audit]
# The audit log keeps records for max_age ("90d", "2160h"; "0s": any age)
# and at most max_records of them, the newest (0: any number); the daemon
# drops the rest as it purges expired grants. Each field of a record is
# cut to 512 bytes, so a huge refused value cannot bloat the log.
max_age = "365d"
max_records = 100000

[store]
# Where accounts, entries, passcodes and grants live: "bbolt" (the db file,
# this PBX alone) or "etcd" (shared by several PBXes, each keeping a local
# replica it filters from while etcd is out of reach; see the README,
# Several PBXes on one etcd). "dialgate store migrate" moves a database.
backend = "bbolt"
# endpoints = ["https://10.0.0.11:2379", "https://10.0.0.12:2379", "https://10.0.0.13:2379"]
prefix = "/dialgate/"     # one per dialgate cluster sharing an etcd
# ca = "/etc/dialgate/etcd/ca.pem"          # the CA of the etcd servers
# cert = "/etc/dialgate/etcd/client.pem"    # this PBX's client certificate
# key = "/etc/dialgate/etcd/client-key.pem"
# replica = ""            # default: replica.db beside db
# node = ""               # default: the host name; names this PBX in the audit log
dial_timeout = "5s"
request_timeout = "5s"
max_txn_ops = 128         # keys one change may write: at most etcd's --max-txn-ops

[door.sounds]             # Asterisk sound files (all core sounds)
account_prompt = "agent-user"      # "agent login": key your account number
prompt = "agent-pass"              # key your passcode
incorrect = "auth-incorrect"       # wrong passcode, key it again
denied = "vm-incorrect"            # wrong passcode, no tries left
ip_prompt = "vm-enter-num-to-call" # key an address, * for the dots (may_key_ip)
you_entered = "you-entered"
dot = "letters/dot"
granted = "auth-thankyou"          # then "5 hours and 30 minutes"
hours = "hours"
minutes = "minutes"
minute = "minute"
and = "vm-and"
admitted = "auth-thankyou"         # already admitted by a LAN range
locked = "beeperr"
failed = "im-sorry"                # refused for another reason, or an error
goodbye = "vm-goodbye"             # played by the dialplan after the door
`, c.DB, c.Socket)
}

func (a *AGIConfig) parse() error {
	if a.Listen != "" {
		if _, err := netip.ParseAddrPort(a.Listen); err != nil {
			return fmt.Errorf("agi.listen: %q is not an address:port such as 127.0.0.1:4573", a.Listen)
		}
	}
	a.allow = nil
	for _, s := range a.Allow {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil || p != p.Masked() {
			return fmt.Errorf("agi.allow: %q is not a network prefix such as 127.0.0.0/8", s)
		}
		a.allow = append(a.allow, p)
	}
	if a.Listen != "" && len(a.allow) == 0 {
		return fmt.Errorf("agi.allow: empty; FastAGI has no authentication, list the Asterisk servers allowed to connect")
	}
	if a.MaxSessions < 0 {
		return fmt.Errorf("agi.max_sessions: %d must not be negative", a.MaxSessions)
	}
	return nil
}

func (d DoorConfig) validate() error {
	checks := []struct {
		ok   bool
		what string
	}{
		{d.Lifetime.Duration >= time.Second && d.Lifetime.Duration <= 30*24*time.Hour, "door.lifetime: between 1s and 720h"},
		{d.MaxGrants >= 1 && d.MaxGrants <= 100, "door.max_grants: between 1 and 100"},
		{d.Tries >= 1 && d.Tries <= 10, "door.tries: between 1 and 10"},
		{d.DigitTimeout.Duration >= time.Second && d.DigitTimeout.Duration <= time.Minute, "door.digit_timeout: between 1s and 1m"},
		{d.MaxFailures >= 1 && d.MaxFailures <= 100, "door.max_failures: between 1 and 100"},
		{d.FailureWindow.Duration >= time.Minute, "door.failure_window: at least 1m"},
		{d.LockFor.Duration >= time.Minute, "door.lock_for: at least 1m"},
		{d.RatePerMinute >= 1, "door.rate_per_minute: at least 1"},
		{d.IdentityRatePerMinute >= 1, "door.identity_rate_per_minute: at least 1"},
		{d.MaxChecksPerMinute >= d.RatePerMinute && d.MaxChecksPerMinute >= d.IdentityRatePerMinute, "door.max_checks_per_minute: at least rate_per_minute and identity_rate_per_minute"},
		{d.HashMemoryKiB >= 1024 && d.HashMemoryKiB <= 1<<20, "door.hash_memory_kib: between 1024 and 1048576"},
		{d.HashThreads >= 1 && d.HashThreads <= 16, "door.hash_threads: between 1 and 16"},
		{d.HashTime >= 1 && d.HashTime <= 10, "door.hash_time: between 1 and 10"},
	}
	for _, c := range checks {
		if !c.ok {
			return errors.New(c.what)
		}
	}
	for name, v := range map[string]string{
		"account_prompt": d.Sounds.AccountPrompt, "prompt": d.Sounds.Prompt, "incorrect": d.Sounds.Incorrect,
		"denied": d.Sounds.Denied, "ip_prompt": d.Sounds.IPPrompt, "you_entered": d.Sounds.YouEntered,
		"dot": d.Sounds.Dot, "granted": d.Sounds.Granted, "hours": d.Sounds.Hours, "minutes": d.Sounds.Minutes,
		"minute": d.Sounds.Minute, "and": d.Sounds.And, "admitted": d.Sounds.Admitted,
		"locked": d.Sounds.Locked, "failed": d.Sounds.Failed, "goodbye": d.Sounds.Goodbye,
	} {
		if v == "" || strings.ContainsAny(v, " \t\r\n\"") {
			return fmt.Errorf("door.sounds.%s: %q must be a sound file name without spaces or quotes", name, v)
		}
	}
	return nil
}

func (f FQDNConfig) validate() error {
	switch {
	case f.Timeout.Duration <= 0 || f.Timeout.Duration > time.Minute:
		return fmt.Errorf("fqdn.timeout: %v must be between 0 and 1m", f.Timeout)
	case f.Interval.Duration < time.Second:
		return fmt.Errorf("fqdn.interval: %v must be at least 1s", f.Interval)
	case f.Grace.Duration < 0:
		return fmt.Errorf("fqdn.grace: %v must not be negative", f.Grace)
	case f.Workers < 1 || f.Workers > 1024:
		return fmt.Errorf("fqdn.workers: %d must be between 1 and 1024", f.Workers)
	case f.Tick.Duration < 100*time.Millisecond:
		return fmt.Errorf("fqdn.tick: %v must be at least 100ms", f.Tick)
	}
	return nil
}

func (a AMIConfig) validate() error {
	if !a.Enabled {
		return nil
	}
	if _, _, err := net.SplitHostPort(a.Addr); err != nil {
		return fmt.Errorf("ami.addr: %q is not host:port such as 127.0.0.1:5038", a.Addr)
	}
	if a.Username == "" || strings.ContainsAny(a.Username, " \t\r\n:") {
		return fmt.Errorf("ami.username: %q: a manager.conf user name", a.Username)
	}
	if a.Secret == "" || strings.ContainsAny(a.Secret, "\r\n") {
		return errors.New("ami.secret: required when ami.enabled, one line (see `dialgate dialplan manager-conf`)")
	}
	if a.LookupTimeout.Duration <= 0 || a.LookupTimeout.Duration > 30*time.Second {
		return fmt.Errorf("ami.lookup_timeout: %v must be between 0 and 30s", a.LookupTimeout)
	}
	return nil
}
