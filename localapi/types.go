package localapi

import (
	"time"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/store"
)

// LocalAPI wire types. They are the contract between the CLI and the
// daemon, which ship as one binary, and what --json prints for scripts:
// snake_case keys, lists never null, durations in seconds (*_seconds).
// Renaming a key breaks scripts: say so in the release notes.

// AccountInfo is an account as the API shows it: never the passcode hash.
type AccountInfo struct {
	Name    string        `json:"name"`
	Perms   store.PermSet `json:"perms"`
	Comment string        `json:"comment,omitempty"`
	Enabled bool          `json:"enabled"`
	Created time.Time     `json:"created"`
	Entries int           `json:"entries"`
	Grants  int           `json:"grants"`
	// Phone door settings.
	Passcode  bool          `json:"passcode"` // one is set (never the hash)
	Lifetime  time.Duration `json:"-"`        // lifetime_seconds (jsonwire.go)
	MaxGrants int           `json:"max_grants,omitempty"`
	Extension string        `json:"extension,omitempty"`
	MayKeyIP  bool          `json:"may_key_ip,omitempty"`
	// Number is keyed on the phone before the passcode; CallerIDs
	// identify the caller without it.
	Number    string   `json:"number,omitempty"`
	CallerIDs []string `json:"callerids"`
}

// EntryInfo is a static entry with its effective permissions.
type EntryInfo struct {
	ID        string          `json:"id"`
	Account   string          `json:"account"`
	Kind      store.EntryKind `json:"kind"`
	Value     string          `json:"value"`
	Perms     store.PermSet   `json:"perms"`
	Inherited bool            `json:"inherited"` // perms come from the account
	Comment   string          `json:"comment,omitempty"`
	Force     bool            `json:"force,omitempty"`
	Created   time.Time       `json:"created"`
	Addrs     []string        `json:"addrs,omitempty"` // FQDN: last-known addresses
	Error     string          `json:"error,omitempty"` // FQDN: last resolution error
}

// GrantInfo is a time-limited grant.
type GrantInfo struct {
	ID      string        `json:"id"`
	Account string        `json:"account"`
	IP      string        `json:"ip"`
	Perms   store.PermSet `json:"perms"`
	Expires time.Time     `json:"expires"`
	Left    time.Duration `json:"-"` // left_seconds (jsonwire.go)
	Source  string        `json:"source"`
}

// StatusInfo is everything `dialgate status` shows.
type StatusInfo struct {
	// Protected is the answer to "is this server filtered": dialgate's
	// firewall in force in the kernel for every family. Reasons say why
	// not.
	Protected bool     `json:"protected"`
	Reasons   []string `json:"reasons"`
	// Daemon is false when the CLI read the kernel itself because no
	// daemon answered: nothing repairs drift or serves the door then.
	Daemon        bool            `json:"daemon"`
	Version       string          `json:"version,omitempty"`
	ConfigPath    string          `json:"config,omitempty"`
	Backend       string          `json:"backend,omitempty"`
	PendingReload *PendingReload  `json:"pending_reload,omitempty"`
	Services      ServiceInfo     `json:"services"`
	Firewall      firewall.Status `json:"firewall"`
	Accounts      []AccountInfo   `json:"accounts"`
	Entries       []EntryInfo     `json:"entries"`
	Grants        []GrantInfo     `json:"grants"`
	DB            string          `json:"db"`
	Time          time.Time       `json:"time"`
	// Warnings are the config's risky settings (Config.Warnings).
	Warnings []string `json:"warnings,omitempty"`
	// Drops totals who the final drop hit in the last hour; nil when
	// the kernel could not tell.
	Drops *firewall.DropSummary `json:"drops,omitempty"`
	// Store is the shared store's link; nil with the bbolt backend.
	Store *StoreInfo `json:"store,omitempty"`
}

// StoreInfo is the state of a node's link to the shared store (etcd).
type StoreInfo struct {
	Backend   string   `json:"backend"`
	Endpoints []string `json:"endpoints"`
	Prefix    string   `json:"prefix"`
	Node      string   `json:"node"`
	// Reachable is false while etcd does not answer: the node filters
	// with its replica, and changes and the phone door are refused.
	// Since is when it last changed.
	Reachable bool      `json:"reachable"`
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error,omitempty"`
	// Revision is the etcd revision the replica holds.
	Revision int64 `json:"revision"`
	Resyncs  int   `json:"resyncs"`
}

// AddAccountRequest creates an account.
type AddAccountRequest struct {
	Name    string `json:"name"`
	Perms   string `json:"perms"` // as typed: "1,2,8"
	Comment string `json:"comment"`
}

// AddEntryRequest whitelists an address, network or name for an account.
type AddEntryRequest struct {
	Account string          `json:"account"`
	Kind    store.EntryKind `json:"kind"`
	Value   string          `json:"value"`
	Perms   string          `json:"perms,omitempty"` // empty: inherit the account's
	Comment string          `json:"comment,omitempty"`
	Force   bool            `json:"force,omitempty"`
	// Refresh overrides the FQDN refresh interval for this entry.
	Refresh time.Duration `json:"refresh,omitempty"`
}

// DeleteResult lists what a deletion removed.
type DeleteResult struct {
	Entries []EntryInfo `json:"entries"`
	Grants  []GrantInfo `json:"grants,omitempty"`
}

// Header names the CLI sends.
const (
	// HeaderSSH carries "CLIENT_IP SERVER_PORT" of the SSH session the
	// command runs in, so the daemon can refuse to cut it off.
	HeaderSSH = "Dialgate-Ssh-Client"
	// HeaderForce overrides the SSH lockout guard.
	HeaderForce = "Dialgate-Force"
	// HeaderSSHUnknown says the command runs in an SSH session whose
	// address the CLI could not find, and why: the guard is off, and the
	// audit records of the request's changes say so.
	HeaderSSHUnknown = "Dialgate-Ssh-Unknown"
)

// SetPasscodeRequest sets an account's passcode. The daemon hashes it
// (argon2id); the clear text only ever crosses the root-only socket.
type SetPasscodeRequest struct {
	Passcode string `json:"passcode"`
}

// UpdateAccountRequest changes an account's settings; nil fields are
// left as they are.
type UpdateAccountRequest struct {
	Perms     *string        `json:"perms,omitempty"`
	Comment   *string        `json:"comment,omitempty"`
	Enabled   *bool          `json:"enabled,omitempty"`
	Lifetime  *time.Duration `json:"lifetime,omitempty"` // 0: the [door] default
	MaxGrants *int           `json:"max_grants,omitempty"`
	Extension *string        `json:"extension,omitempty"`
	MayKeyIP  *bool          `json:"may_key_ip,omitempty"`
	Number    *string        `json:"number,omitempty"`    // "" clears it
	CallerIDs *[]string      `json:"callerids,omitempty"` // replaces the list; empty clears it
}

// SetPasscodeResult says how the caller reaches the account on the phone.
type SetPasscodeResult struct {
	Number string `json:"number"`
}

// FQDNInfo is one dynamic-DNS name as the refresher sees it.
type FQDNInfo struct {
	Name        string        `json:"name"`
	Addrs       []string      `json:"addrs"`
	LastSuccess time.Time     `json:"last_success,omitzero"`
	Age         time.Duration `json:"-"` // age_seconds (jsonwire.go): since the last success
	LastAttempt time.Time     `json:"last_attempt,omitzero"`
	LastError   string        `json:"last_error,omitempty"`
	Interval    time.Duration `json:"-"` // interval_seconds (jsonwire.go)
	Entries     []string      `json:"entries"`
}

// RefreshRequest forces a refresh of some names (all if empty).
type RefreshRequest struct {
	Names []string `json:"names,omitempty"`
}

// ProvidersRequest names providers to enable or disable.
type ProvidersRequest struct {
	Names []string `json:"names,omitempty"`
	All   bool     `json:"all,omitempty"`
}

// LockoutInfo is one lockout record as `dialgate lockouts list` shows it.
type LockoutInfo struct {
	Key         string    `json:"key"`
	Failures    int       `json:"failures"` // within the failure window
	LockedUntil time.Time `json:"locked_until,omitzero"`
	Locked      bool      `json:"locked"`
}

// AuditFilter selects audit records.
type AuditFilter struct {
	Since   time.Time
	Limit   int    // newest Limit records; 0: all
	Account string // exact account name
	Action  string // exact action, or a prefix ending in '.' ("grant.")
	Result  string // exact result
}

// DropsInfo is GET /v1/drops: who the firewall's final drop hit, read
// from the kernel's drop accounting sets (see firewall.Drop).
type DropsInfo struct {
	// Drops are the selected sources, most packets first, cut to the
	// limit asked for.
	Drops []firewall.Drop `json:"drops"`
	// Matched counts the drops the filter selected before the limit;
	// Summary totals them.
	Matched int                  `json:"matched"`
	Summary firewall.DropSummary `json:"summary"`
	// WindowSeconds is how long the kernel remembers a source after its
	// last drop.
	WindowSeconds int64 `json:"window_seconds"`
}

// UpdateEntryRequest changes an entry in place, keeping its ID: nil
// fields stay as they are. Perms "" (not nil) makes the entry inherit its
// account's perms again.
type UpdateEntryRequest struct {
	Perms          *string `json:"perms,omitempty"`
	Comment        *string `json:"comment,omitempty"`
	RefreshSeconds *int64  `json:"refresh_seconds,omitempty"`
	Force          bool    `json:"force,omitempty"`
}

// ExplainRequest asks why an address is admitted or dropped: for every
// service, or for one protocol and port.
type ExplainRequest struct {
	Addr  string `json:"addr"`
	Proto string `json:"proto,omitempty"` // with Port: "tcp" or "udp"
	Port  uint16 `json:"port,omitempty"`
}

// Explanation answers "why can (not) this address connect": what admits
// it, service by service, in the order the firewall decides, and whether
// the kernel agrees with the database.
type Explanation struct {
	Addr string `json:"addr"`
	// Verdicts has one line per service (or the one asked), in code order.
	Verdicts []Verdict `json:"verdicts"`
	// Matches are the entries, grants and ranges that contain the address,
	// whatever they admit.
	Matches []Match `json:"matches"`
	// Notes say what holds for every address: loopback, replies,
	// ICMP, ports open to everyone, secret SIP domains.
	Notes []string `json:"notes"`
	// Kernel says whether the kernel's sets hold the address exactly where
	// the database says they should; Disagreements lists where not.
	// Drops are this address's recent packets the final DROP hit, by
	// service (most packets first), from the kernel's drop accounting.
	Drops         []firewall.Drop `json:"drops"`
	KernelChecked bool            `json:"kernel_checked"`
	KernelAgrees  bool            `json:"kernel_agrees"`
	Disagreements []string        `json:"disagreements"`
	Protected     bool            `json:"protected"`
}

// Verdict is one service's answer.
type Verdict struct {
	Code     int      `json:"code"` // 0 for a port outside every service
	Service  string   `json:"service"`
	Ports    string   `json:"ports"`
	Admitted bool     `json:"admitted"`
	By       []string `json:"by"` // what admits it, or what drops it
}

// Match is one thing in the database or config that contains the address.
type Match struct {
	Kind    string `json:"kind"` // lan, entry, grant, provider
	ID      string `json:"id,omitempty"`
	Account string `json:"account,omitempty"`
	Value   string `json:"value"`                  // the entry's value, the grant's IP, the range
	Via     string `json:"via,omitempty"`          // an FQDN entry: the address it resolved to
	Perms   string `json:"perms"`                  // codes it admits ("0" all)
	Active  bool   `json:"active"`                 // false: its account is disabled, or the grant expired
	Why     string `json:"why,omitempty"`          // why it is not active
	LeftSec int64  `json:"left_seconds,omitempty"` // a grant's time left
}

// ImportRequest carries accounts and entries from another firewall tool
// (the CLI parses the files; the daemon validates everything again, as
// for any API input, and applies it in one transaction).
type ImportRequest struct {
	Source   string          `json:"source"` // "tm3", for the audit log
	Accounts []ImportAccount `json:"accounts"`
}

// ImportAccount is one account to create (or extend).
type ImportAccount struct {
	Name    string        `json:"name"`
	Perms   []int         `json:"perms"`
	Comment string        `json:"comment,omitempty"`
	Entries []ImportEntry `json:"entries"`
	// MustExist refuses the import when the account does not exist
	// (`allow --file` lines for an account the file does not define):
	// entries are never added to an account made up on the spot.
	MustExist bool `json:"must_exist,omitempty"`
}

// ImportEntry is one entry; nil Perms inherits the account's.
type ImportEntry struct {
	Kind    store.EntryKind `json:"kind"`
	Value   string          `json:"value"`
	Perms   []int           `json:"perms,omitempty"`
	Comment string          `json:"comment,omitempty"`
	// Force and RefreshSeconds are what `allow --force` and `--refresh`
	// are for one entry.
	Force          bool  `json:"force,omitempty"`
	RefreshSeconds int64 `json:"refresh_seconds,omitempty"`
}

// ImportResult says what the import did.
type ImportResult struct {
	Created []string    `json:"created"` // accounts
	Kept    []string    `json:"kept"`    // accounts that existed
	Added   []EntryInfo `json:"added"`
	Already []string    `json:"already"` // entries that existed
}

// ProviderInfo is a provider and whether it is enabled.
type ProviderInfo struct {
	auth.Provider
	Enabled bool `json:"enabled"`
	Entries int  `json:"entries"`
}

// PendingReload is a `reload --confirm` waiting for `dialgate confirm`.
type PendingReload struct {
	Deadline time.Time `json:"deadline"`
	Left     float64   `json:"left_seconds"`
}

// ServiceInfo is the state of the FastAGI door and the AMI login.
type ServiceInfo struct {
	AGIListen  string `json:"agi_listen"` // "" when the door is off
	AGIServing bool   `json:"agi_serving"`
	AMIEnabled bool   `json:"ami_enabled"`
	AMILogin   bool   `json:"ami_logged_in"`
}

// BlockInfo is a source blocked for failed authentication.
type BlockInfo struct {
	Addr        string `json:"addr"`
	LeftSeconds int64  `json:"left_seconds"`
}
