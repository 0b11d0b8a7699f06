package store

import (
	"fmt"
	"time"
)

// EntryKind says how an Entry's Value is to be read.
type EntryKind string

const (
	KindIP   EntryKind = "ip"   // one address: "203.0.113.7", "2001:db8::7"
	KindCIDR EntryKind = "cidr" // a prefix: "198.51.100.0/24"
	KindFQDN EntryKind = "fqdn" // a DNS name, re-resolved by the refresher
)

func (k EntryKind) valid() bool {
	return k == KindIP || k == KindCIDR || k == KindFQDN
}

// Account is a person or system that may be whitelisted: the owner of
// static entries and, through the phone door, of grants.
type Account struct {
	Name    string // unique key
	Perms   PermSet
	Comment string
	Created time.Time // set by CreateAccount/PutAccount when zero

	// Phone-door settings.
	Enabled       bool
	GrantLifetime time.Duration // 0 = use the daemon default
	MaxGrants     int           // 0 = use the daemon default
	Extension     string        // SIP extension whose registration gives the caller's IP; optional
	MayKeyIP      bool          // caller may key an IP address on the phone

	// Number is the account's door number, keyed on the phone before the
	// passcode so that one passcode check identifies the caller; "" means
	// none. The caller validates it and gives it in canonical form (digits):
	// the store compares strings. Unique among accounts (ErrExists).
	Number string
	// CallerIDs are the caller IDs bound to the account, each in the
	// caller's canonical form and unique across all accounts (ErrExists).
	// Empty strings and repeats are refused (ErrInvalid); an empty list
	// reads back as nil.
	CallerIDs []string

	// PasscodeHash is an argon2id PHC string. A short numeric passcode is
	// cheap to brute-force from its hash, so the hash is as sensitive as
	// the passcode: it is excluded from encoding/json (the store persists it
	// through its own record type) and redacted by String and GoString.
	PasscodeHash string `json:"-"`
}

// String formats the account for logs and errors with the passcode hash
// redacted; %v and %+v use it.
func (a Account) String() string {
	type plain Account // drops the methods, so Sprintf does not recurse
	return fmt.Sprintf("%+v", plain(a.redacted()))
}

// GoString is String's counterpart for %#v.
func (a Account) GoString() string {
	type plain Account
	return fmt.Sprintf("%#v", plain(a.redacted()))
}

func (a Account) redacted() Account {
	if a.PasscodeHash != "" {
		a.PasscodeHash = "[redacted]"
	}
	return a
}

// Entry is a static whitelist entry belonging to an account.
type Entry struct {
	ID      string // assigned by AddEntry: "e" + a sequence number, e.g. "e12"
	Account string
	Kind    EntryKind
	Value   string  // canonical form, produced by the caller: "203.0.113.7", "198.51.100.0/24", "pbx.example.org"
	Perms   PermSet // empty = inherit the account's perms when applied
	Comment string
	Force   bool // the admin forced a value that is normally refused (e.g. 0.0.0.0/0)
	Created time.Time
	// Provider is set on entries created from a trusted-provider catalogue,
	// so they can be replaced as a group when the catalogue changes.
	Provider string
	// Refresh overrides the FQDN refresh interval for this entry; zero
	// means the daemon's default.
	Refresh time.Duration
}

// Grant is a time-limited whitelist entry, typically won on the phone.
type Grant struct {
	ID       string // assigned by PutGrant when empty: "g" + a sequence number
	Account  string
	IP       string // canonical address or prefix
	Perms    PermSet
	Created  time.Time
	Expires  time.Time // required: a grant without an end is an Entry
	Source   string    // "phone", "cli", ...
	CallerID string
	Channel  string
}

// FQDNRecord is the resolver's memory of one name, so that a name that
// stops resolving keeps its last-known addresses for a grace period.
type FQDNRecord struct {
	Name        string
	Addrs       []string // last-known addresses
	LastSuccess time.Time
	LastAttempt time.Time
	LastError   string
}

// AuditRecord is one line of the audit log.
type AuditRecord struct {
	Time    time.Time `json:"time"`   // set by Audit when zero
	Action  string    `json:"action"` // e.g. "entry.add", "grant", "refuse"
	Actor   string    `json:"actor"`  // "cli", "phone", "daemon"
	Account string    `json:"account"`
	Subject string    `json:"subject"` // the entry value, IP, caller ID, ...
	Result  string    `json:"result"`  // "ok", "denied", "locked", "error", ...
	Detail  string    `json:"detail"`
	// Node is the PBX that wrote the record, with a shared store; set by
	// Audit, empty with a standalone database.
	Node string `json:"node,omitempty"`
}

// Lockout tracks failed passcode attempts for one key (a caller ID or a
// source address, as auth chooses).
type Lockout struct {
	Key         string
	Failures    []time.Time
	LockedUntil time.Time
}
