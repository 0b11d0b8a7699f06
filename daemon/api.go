package daemon

import (
	"time"

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

func accountInfo(a store.Account) AccountInfo {
	return AccountInfo{Name: a.Name, Perms: a.Perms, Comment: a.Comment, Enabled: a.Enabled, Created: a.Created,
		Passcode: a.PasscodeHash != "", Lifetime: a.GrantLifetime, MaxGrants: a.MaxGrants, Extension: a.Extension, MayKeyIP: a.MayKeyIP,
		Number: a.Number, CallerIDs: append([]string{}, a.CallerIDs...)}
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

// errorBody is every non-2xx response.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"` // invalid, force, not_found, exists, lockout, internal
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
