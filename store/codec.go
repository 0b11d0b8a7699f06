package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// On-disk records. They are separate from the public types so that the
// file format changes only when someone edits this file on purpose, and so
// that fields such as Account.PasscodeHash can be persisted without being
// exposed to every JSON encoder that sees the public type.
//
// Every record starts with "v". To change a record, add a V2 type, bump
// recordVersion, and teach decodeRecord's caller to upgrade V1 values.

// recordVersion is the version written into every record.
const recordVersion = 1

type accountV1 struct {
	V               int       `json:"v"`
	Name            string    `json:"name"`
	Perms           PermSet   `json:"perms"`
	Comment         string    `json:"comment,omitempty"`
	Created         time.Time `json:"created,omitzero"`
	Enabled         bool      `json:"enabled"`
	GrantLifetimeNS int64     `json:"grant_lifetime_ns,omitempty"`
	MaxGrants       int       `json:"max_grants,omitempty"`
	Extension       string    `json:"extension,omitempty"`
	MayKeyIP        bool      `json:"may_key_ip,omitempty"`
	PasscodeHash    string    `json:"passcode_hash,omitempty"`
	// Number and CallerIDs were added within version 1: absent reads as
	// "none", so older records stay valid.
	Number    string   `json:"number,omitempty"`
	CallerIDs []string `json:"caller_ids,omitempty"`
}

func accountRecord(a Account) accountV1 {
	return accountV1{
		V:               recordVersion,
		Name:            a.Name,
		Perms:           a.Perms,
		Comment:         a.Comment,
		Created:         utc(a.Created),
		Enabled:         a.Enabled,
		GrantLifetimeNS: int64(a.GrantLifetime),
		MaxGrants:       a.MaxGrants,
		Extension:       a.Extension,
		MayKeyIP:        a.MayKeyIP,
		PasscodeHash:    a.PasscodeHash,
		Number:          a.Number,
		CallerIDs:       nilIfEmpty(a.CallerIDs),
	}
}

func (r accountV1) account() Account {
	return Account{
		Name:          r.Name,
		Perms:         r.Perms,
		Comment:       r.Comment,
		Created:       r.Created,
		Enabled:       r.Enabled,
		GrantLifetime: time.Duration(r.GrantLifetimeNS),
		MaxGrants:     r.MaxGrants,
		Extension:     r.Extension,
		MayKeyIP:      r.MayKeyIP,
		PasscodeHash:  r.PasscodeHash,
		Number:        r.Number,
		CallerIDs:     nilIfEmpty(r.CallerIDs),
	}
}

// nilIfEmpty keeps "no caller IDs" to one spelling, nil, in memory as on
// disk.
func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// entryV1 has no ID: the ID is the bucket key, so the two cannot disagree.
type entryV1 struct {
	V        int       `json:"v"`
	Account  string    `json:"account"`
	Kind     EntryKind `json:"kind"`
	Value    string    `json:"value"`
	Perms    PermSet   `json:"perms"`
	Comment  string    `json:"comment,omitempty"`
	Force    bool      `json:"force,omitempty"`
	Created  time.Time `json:"created,omitzero"`
	Provider string    `json:"provider,omitempty"`
	// Refresh was added within version 1: absent reads as zero (the
	// daemon's default interval), so older records stay valid.
	Refresh time.Duration `json:"refresh,omitempty"`
}

func entryRecord(e Entry) entryV1 {
	return entryV1{
		V:        recordVersion,
		Account:  e.Account,
		Kind:     e.Kind,
		Value:    e.Value,
		Perms:    e.Perms,
		Comment:  e.Comment,
		Force:    e.Force,
		Created:  utc(e.Created),
		Provider: e.Provider,
		Refresh:  e.Refresh,
	}
}

func (r entryV1) entry(id string) Entry {
	return Entry{
		ID:       id,
		Account:  r.Account,
		Kind:     r.Kind,
		Value:    r.Value,
		Perms:    r.Perms,
		Comment:  r.Comment,
		Force:    r.Force,
		Created:  r.Created,
		Provider: r.Provider,
		Refresh:  r.Refresh,
	}
}

// grantV1, like entryV1, takes its ID from the key.
type grantV1 struct {
	V        int       `json:"v"`
	Account  string    `json:"account"`
	IP       string    `json:"ip"`
	Perms    PermSet   `json:"perms"`
	Created  time.Time `json:"created,omitzero"`
	Expires  time.Time `json:"expires"`
	Source   string    `json:"source,omitempty"`
	CallerID string    `json:"caller_id,omitempty"`
	Channel  string    `json:"channel,omitempty"`
}

func grantRecord(g Grant) grantV1 {
	return grantV1{
		V:        recordVersion,
		Account:  g.Account,
		IP:       g.IP,
		Perms:    g.Perms,
		Created:  utc(g.Created),
		Expires:  utc(g.Expires),
		Source:   g.Source,
		CallerID: g.CallerID,
		Channel:  g.Channel,
	}
}

func (r grantV1) grant(id string) Grant {
	return Grant{
		ID:       id,
		Account:  r.Account,
		IP:       r.IP,
		Perms:    r.Perms,
		Created:  r.Created,
		Expires:  r.Expires,
		Source:   r.Source,
		CallerID: r.CallerID,
		Channel:  r.Channel,
	}
}

type fqdnV1 struct {
	V           int       `json:"v"`
	Name        string    `json:"name"`
	Addrs       []string  `json:"addrs,omitempty"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
}

func fqdnRecord(r FQDNRecord) fqdnV1 {
	return fqdnV1{
		V:           recordVersion,
		Name:        r.Name,
		Addrs:       r.Addrs,
		LastSuccess: utc(r.LastSuccess),
		LastAttempt: utc(r.LastAttempt),
		LastError:   r.LastError,
	}
}

func (r fqdnV1) fqdn() FQDNRecord {
	return FQDNRecord{
		Name:        r.Name,
		Addrs:       r.Addrs,
		LastSuccess: r.LastSuccess,
		LastAttempt: r.LastAttempt,
		LastError:   r.LastError,
	}
}

// auditV1 keeps Time although the key encodes it too: the key is for
// ordering, the record must make sense on its own when exported.
type auditV1 struct {
	V       int       `json:"v"`
	Time    time.Time `json:"time"`
	Action  string    `json:"action"`
	Actor   string    `json:"actor,omitempty"`
	Account string    `json:"account,omitempty"`
	Subject string    `json:"subject,omitempty"`
	Result  string    `json:"result,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	Node    string    `json:"node,omitempty"`
}

func auditRecord(a AuditRecord) auditV1 {
	return auditV1{
		V:       recordVersion,
		Time:    utc(a.Time),
		Action:  a.Action,
		Actor:   a.Actor,
		Account: a.Account,
		Subject: a.Subject,
		Result:  a.Result,
		Detail:  a.Detail,
		Node:    a.Node,
	}
}

func (r auditV1) audit() AuditRecord {
	return AuditRecord{
		Time:    r.Time,
		Action:  r.Action,
		Actor:   r.Actor,
		Account: r.Account,
		Subject: r.Subject,
		Result:  r.Result,
		Detail:  r.Detail,
		Node:    r.Node,
	}
}

type lockoutV1 struct {
	V           int         `json:"v"`
	Key         string      `json:"key"`
	Failures    []time.Time `json:"failures,omitempty"`
	LockedUntil time.Time   `json:"locked_until,omitzero"`
}

func lockoutRecord(l Lockout) lockoutV1 {
	var failures []time.Time
	for _, f := range l.Failures {
		failures = append(failures, utc(f))
	}
	return lockoutV1{
		V:           recordVersion,
		Key:         l.Key,
		Failures:    failures,
		LockedUntil: utc(l.LockedUntil),
	}
}

func (r lockoutV1) lockout() Lockout {
	return Lockout{Key: r.Key, Failures: r.Failures, LockedUntil: r.LockedUntil}
}

// utc normalises times before they are written, so the file holds one
// zone and records read back compare equal regardless of the writer's
// local zone. It also drops the monotonic reading, which has no meaning
// outside the process.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// decodeRecord unmarshals a stored value into rec after checking its
// version. what names the record for error messages.
func decodeRecord(data []byte, rec any, what string) error {
	var hdr struct {
		V int `json:"v"`
	}
	if err := json.Unmarshal(data, &hdr); err != nil {
		return fmt.Errorf("%s: decode: %w", what, err)
	}
	if hdr.V != recordVersion {
		return newError(fmt.Sprintf("%s: record version %d, this dialgate supports %d", what, hdr.V, recordVersion), ErrSchema, nil)
	}
	if err := json.Unmarshal(data, rec); err != nil {
		return fmt.Errorf("%s: decode: %w", what, err)
	}
	return nil
}

// Sequence-numbered records (entries, grants) are keyed by the big-endian
// sequence number rather than by their ID string, so that bucket order is
// numeric order ("e2" before "e10") without sorting.

func seqKey(n uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, n)
}

func formatID(prefix byte, n uint64) string {
	return string(prefix) + strconv.FormatUint(n, 10)
}

// parseID accepts exactly the IDs formatID produces; leading zeros are
// refused so that every key has one spelling.
func parseID(prefix byte, id string) (uint64, bool) {
	if len(id) < 2 || id[0] != prefix || id[1] == '0' {
		return 0, false
	}
	n, err := strconv.ParseUint(id[1:], 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// auditKey orders audit records by time, then by insertion. The sign bit is
// flipped so that times before 1970 (negative nanoseconds) still sort
// before later ones under byte comparison.
func auditKey(t time.Time, seq uint64) []byte {
	k := binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano())^(1<<63))
	return binary.BigEndian.AppendUint64(k, seq)
}

// idFromKey turns a bucket key back into an ID. Only this package writes
// these buckets, but a key of the wrong length would make Uint64 panic, so
// it is reported instead.
func idFromKey(prefix byte, k []byte) (string, error) {
	if len(k) != 8 {
		return "", fmt.Errorf("malformed %c-record key %x", prefix, k)
	}
	return formatID(prefix, binary.BigEndian.Uint64(k)), nil
}
