package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Tx is one transaction, passed to the closure of Store.View or
// Store.Update. Write methods fail inside View. See Store for the rules on
// lifetime and rollback.
//
// Lookups of a missing record and deletions of one return an error
// wrapping ErrNotFound; records that fail validation, ErrInvalid.
// List methods return nil when there is nothing to list.
type Tx interface {
	// Account returns the named account.
	Account(name string) (Account, error)
	// Accounts returns every account, sorted by name.
	Accounts() ([]Account, error)
	// CreateAccount adds a new account, setting Created if zero; ErrExists
	// if the name is taken, or if its Number or one of its CallerIDs
	// belongs to another account (the error names the value and the
	// account). A refused account writes nothing.
	CreateAccount(a Account) error
	// PutAccount creates or replaces the account, setting Created if zero.
	// Number and CallerIDs must be free as for CreateAccount; the values
	// the replaced record held and a no longer does are released. To move
	// a value from one account to another, first put the account that
	// gives it up. A refused account writes nothing.
	PutAccount(a Account) error
	// DeleteAccount removes the account together with its entries and
	// grants and returns what it removed, so the caller can take the
	// addresses out of the kernel. Its Number and CallerIDs become free.
	DeleteAccount(name string) (entries []Entry, grants []Grant, err error)

	// AccountByNumber returns the account whose Number is number, with one
	// index lookup however many accounts there are; ErrNotFound if none
	// (always for ""). number must be in the caller's canonical form: the
	// store compares strings. The account's record is checked against the
	// index: if they disagree (an index made stale behind the store's
	// back) the lookup fails with an error saying so, never with another
	// account.
	AccountByNumber(number string) (Account, error)
	// AccountByCallerID returns the account that lists callerID among its
	// CallerIDs, like AccountByNumber; ErrNotFound if none (always for "").
	AccountByCallerID(callerID string) (Account, error)
	// AccountsByExtension returns the accounts whose Extension is ext,
	// sorted by name, without scanning the others; nil if none.
	AccountsByExtension(ext string) ([]Account, error)

	// AddEntry stores a new entry for an existing account (ErrNotFound
	// otherwise) and returns it with ID and Created filled in. The same
	// account, kind and value twice is ErrExists. Value must already be in
	// canonical form: the store compares strings, it does not parse them.
	AddEntry(e Entry) (Entry, error)
	Entry(id string) (Entry, error)
	DeleteEntry(id string) (Entry, error)
	// Entries returns every entry in ID order (e1, e2, ..., e10).
	Entries() ([]Entry, error)
	// EntriesByValue returns the entries, of any account and kind, whose
	// Value is exactly value, in ID order, from an index: its cost does
	// not grow with the number of entries.
	EntriesByValue(value string) ([]Entry, error)
	// GrantsOfAccount and GrantsByIP return, in ID order and expired ones
	// included, the account's grants and the grants for exactly ip, from
	// an index.
	GrantsOfAccount(name string) ([]Grant, error)
	GrantsByIP(ip string) ([]Grant, error)
	// EntriesOfAccount returns the account's entries in ID order, from an
	// index.
	EntriesOfAccount(name string) ([]Entry, error)
	// UpdateEntry replaces the perms, comment, force flag and refresh of
	// the entry with e.ID (ErrNotFound if none), keeping its ID and
	// Created; its account, kind and value cannot change (ErrInvalid).
	UpdateEntry(e Entry) (Entry, error)

	// PutGrant creates or replaces a grant by ID, assigning an ID when it
	// is empty and Created when it is zero. The account must exist
	// (ErrNotFound) and Expires must be set (ErrInvalid).
	PutGrant(g Grant) (Grant, error)
	Grant(id string) (Grant, error)
	DeleteGrant(id string) (Grant, error)
	// Grants returns every grant in ID order, expired ones included.
	Grants() ([]Grant, error)
	// PurgeExpiredGrants deletes the grants whose Expires is not after now
	// and returns them in ID order.
	PurgeExpiredGrants(now time.Time) ([]Grant, error)

	// PutFQDN creates or replaces the cache record for r.Name. Records are
	// not removed with the entries that name them; the refresher owns
	// their lifetime.
	PutFQDN(r FQDNRecord) error
	FQDN(name string) (FQDNRecord, error)
	// FQDNs returns every record, sorted by name.
	FQDNs() ([]FQDNRecord, error)
	DeleteFQDN(name string) error

	// Audit appends a record, setting Time to now if zero. Records with
	// equal times keep their insertion order.
	Audit(r AuditRecord) error
	// AuditLog returns records with Time at or after since, oldest first.
	// With limit > 0 it returns only the newest limit of them.
	AuditLog(since time.Time, limit int) ([]AuditRecord, error)
	// PurgeAudit deletes the records older than before (none if before is
	// zero), then the oldest beyond the newest keep (none if keep <= 0),
	// and returns how many it deleted.
	PurgeAudit(before time.Time, keep int) (int, error)

	// Setting and PutSetting keep small daemon settings that the CLI
	// changes (SIP secret domains, say) as opaque bytes; a missing key is
	// ErrNotFound.
	Setting(key string) ([]byte, error)
	PutSetting(key string, value []byte) error

	PutLockout(l Lockout) error
	Lockout(key string) (Lockout, error)
	// Lockouts returns every lockout record, sorted by key.
	Lockouts() ([]Lockout, error)
	DeleteLockout(key string) error
	// PurgeLockouts deletes the records that no longer lock anything and
	// hold no failure at or after since, and returns how many it deleted:
	// caller IDs are free to invent, so stale records must not pile up.
	PurgeLockouts(now, since time.Time) (int, error)
}

// boltTx implements Tx on a bbolt transaction. Open guarantees that every
// bucket exists, so bucket lookups are not checked for nil.
type boltTx struct {
	tx   *bbolt.Tx
	done bool
	// ws collects the writes of a replica's transaction; nil otherwise.
	ws *writeSet
	// node names the replica's PBX in its audit records.
	node string
	// purgeMax bounds what one purge deletes on a replica (0: no bound),
	// see ReplicaOptions.MaxOps.
	purgeMax int
	// grantIndex says the grant index is complete (Open rebuilt it).
	grantIndex bool
}

// finish marks the Tx dead once its closure returns. bbolt would otherwise
// dereference freed pages when an escaped Tx is used; an error is kinder.
func (t *boltTx) finish() { t.done = true }

func (t *boltTx) bucket(name []byte) (bucket, error) {
	if t.done {
		return bucket{}, fmt.Errorf("store transaction used after its closure returned: %w", bolterrors.ErrTxClosed)
	}
	return t.bkt(name), nil
}

// bkt is the named bucket, its writes noted in the transaction's write set.
func (t *boltTx) bkt(name []byte) bucket {
	return bucket{Bucket: t.tx.Bucket(name), name: string(name), ws: t.ws}
}

func put(b bucket, key []byte, rec any, what string) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", what, err)
	}
	if err := b.Put(key, data); err != nil {
		return fmt.Errorf("%s: write: %w", what, err)
	}
	return nil
}

func del(b bucket, key []byte, what string) error {
	if err := b.Delete(key); err != nil {
		return fmt.Errorf("%s: delete: %w", what, err)
	}
	return nil
}

func notFound(what string) error { return fmt.Errorf("%s: %w", what, ErrNotFound) }

// ---- accounts ----

func accountName(name string) string { return fmt.Sprintf("account %q", name) }

func (t *boltTx) Account(name string) (Account, error) {
	b, err := t.bucket(bucketAccounts)
	if err != nil {
		return Account{}, err
	}
	return getAccount(b, name)
}

func getAccount(b bucket, name string) (Account, error) {
	data := b.Get([]byte(name))
	if data == nil {
		return Account{}, notFound(accountName(name))
	}
	var rec accountV1
	if err := decodeRecord(data, &rec, accountName(name)); err != nil {
		return Account{}, err
	}
	return rec.account(), nil
}

func (t *boltTx) Accounts() ([]Account, error) {
	b, err := t.bucket(bucketAccounts)
	if err != nil {
		return nil, err
	}
	var out []Account
	err = b.ForEach(func(k, v []byte) error {
		var rec accountV1
		if err := decodeRecord(v, &rec, accountName(string(k))); err != nil {
			return err
		}
		out = append(out, rec.account())
		return nil
	})
	return out, err
}

func (t *boltTx) CreateAccount(a Account) error {
	b, err := t.bucket(bucketAccounts)
	if err != nil {
		return err
	}
	idx, err := t.bucket(bucketDoorIndex)
	if err != nil {
		return err
	}
	if b.Get([]byte(a.Name)) != nil {
		return fmt.Errorf("%s: %w", accountName(a.Name), ErrExists)
	}
	return putAccount(b, idx, a)
}

func (t *boltTx) PutAccount(a Account) error {
	b, err := t.bucket(bucketAccounts)
	if err != nil {
		return err
	}
	idx, err := t.bucket(bucketDoorIndex)
	if err != nil {
		return err
	}
	return putAccount(b, idx, a)
}

// putAccount writes a and moves its door index entries. Everything that can
// refuse the account (validation, a taken number or caller ID, encoding)
// happens before the first write.
func putAccount(b, idx bucket, a Account) error {
	if a.Name == "" {
		return invalidf("account: empty name")
	}
	if err := a.Perms.valid(); err != nil {
		return fmt.Errorf("%s: %w", accountName(a.Name), err)
	}
	if a.Created.IsZero() {
		a.Created = time.Now()
	}
	data, err := json.Marshal(accountRecord(a))
	if err != nil {
		return fmt.Errorf("%s: encode: %w", accountName(a.Name), err)
	}
	old, oldUnknown := oldClaims(b, a.Name)
	if err := reindex(idx, b, a.Name, old, oldUnknown, &a); err != nil {
		return err
	}
	if err := b.Put([]byte(a.Name), data); err != nil {
		return fmt.Errorf("%s: write: %w", accountName(a.Name), err)
	}
	return nil
}

func (t *boltTx) DeleteAccount(name string) ([]Entry, []Grant, error) {
	accounts, err := t.bucket(bucketAccounts)
	if err != nil {
		return nil, nil, err
	}
	idx, err := t.bucket(bucketDoorIndex)
	if err != nil {
		return nil, nil, err
	}
	if accounts.Get([]byte(name)) == nil {
		return nil, nil, notFound(accountName(name))
	}
	old, oldUnknown := oldClaims(accounts, name)
	if err := reindex(idx, accounts, name, old, oldUnknown, nil); err != nil {
		return nil, nil, err
	}
	entries, err := t.deleteAccountEntries(name)
	if err != nil {
		return nil, nil, err
	}
	grants, err := t.deleteGrantsWhere(func(g Grant) bool { return g.Account == name }, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := del(accounts, []byte(name), accountName(name)); err != nil {
		return nil, nil, err
	}
	return entries, grants, nil
}

// ---- entries ----

func entryName(id string) string { return fmt.Sprintf("entry %q", id) }

func (t *boltTx) AddEntry(e Entry) (Entry, error) {
	b, err := t.bucket(bucketEntries)
	if err != nil {
		return Entry{}, err
	}
	accounts, err := t.bucket(bucketAccounts)
	if err != nil {
		return Entry{}, err
	}
	switch {
	case e.Account == "":
		return Entry{}, invalidf("entry %q: no account", e.Value)
	case !e.Kind.valid():
		return Entry{}, invalidf("entry %q: unknown kind %q (want ip, cidr or fqdn)", e.Value, e.Kind)
	case e.Value == "":
		return Entry{}, invalidf("%s entry for %s: empty value", e.Kind, accountName(e.Account))
	}
	if err := e.Perms.valid(); err != nil {
		return Entry{}, fmt.Errorf("entry %q: %w", e.Value, err)
	}
	if err := validIndexable(e); err != nil {
		return Entry{}, err
	}
	if accounts.Get([]byte(e.Account)) == nil {
		return Entry{}, notFound(accountName(e.Account))
	}
	current := entryIndexCurrent(t.tx)
	dups, err := t.entriesIndexed(entryByValue, e.Value, func(x Entry) bool {
		return x.Account == e.Account && x.Kind == e.Kind && x.Value == e.Value
	})
	if err != nil {
		return Entry{}, err
	}
	if len(dups) > 0 {
		return Entry{}, fmt.Errorf("%s entry %q for %s (%s): %w", e.Kind, e.Value, accountName(e.Account), dups[0].ID, ErrExists)
	}

	key, id, err := claimID(b, 'e', e.ID)
	if err != nil {
		return Entry{}, fmt.Errorf("entry: %w", err)
	}
	if e.ID != "" && b.Get(key) != nil {
		return Entry{}, fmt.Errorf("%s: %w", entryName(id), ErrExists)
	}
	e.ID = id
	if e.Created.IsZero() {
		e.Created = time.Now()
	}
	if err := put(b, key, entryRecord(e), entryName(id)); err != nil {
		return Entry{}, err
	}
	if idx := t.bkt(bucketEntryIndex); idx.exists() {
		if err := indexEntry(idx, b, e, key, current); err != nil {
			return Entry{}, err
		}
	}
	// Return what a later read would return, not the caller's spelling of
	// it (UTC times, no monotonic clock).
	return entryRecord(e).entry(id), nil
}

// claimID returns the key and ID for a sequence-numbered record. An empty
// id draws the next number; a caller-supplied one (restoring a backup,
// updating a grant) is accepted and the sequence is moved past it, so that
// a later generated ID can never collide with it.
func claimID(b bucket, prefix byte, id string) ([]byte, string, error) {
	if id == "" {
		n, err := b.NextSequence()
		if err != nil {
			return nil, "", fmt.Errorf("next ID: %w", err)
		}
		return seqKey(n), formatID(prefix, n), nil
	}
	n, ok := parseID(prefix, id)
	if !ok {
		return nil, "", invalidf("malformed ID %q (want %c followed by a number)", id, prefix)
	}
	if n > b.Sequence() {
		if err := b.SetSequence(n); err != nil {
			return nil, "", fmt.Errorf("advance ID sequence: %w", err)
		}
	}
	return seqKey(n), id, nil
}

func (t *boltTx) Entry(id string) (Entry, error) {
	b, err := t.bucket(bucketEntries)
	if err != nil {
		return Entry{}, err
	}
	_, e, err := getEntry(b, id)
	return e, err
}

// getEntry treats a malformed ID as a missing entry: either way there is
// no such entry, and the CLI has one message to show.
func getEntry(b bucket, id string) ([]byte, Entry, error) {
	n, ok := parseID('e', id)
	if !ok {
		return nil, Entry{}, notFound(entryName(id))
	}
	key := seqKey(n)
	data := b.Get(key)
	if data == nil {
		return nil, Entry{}, notFound(entryName(id))
	}
	var rec entryV1
	if err := decodeRecord(data, &rec, entryName(id)); err != nil {
		return nil, Entry{}, err
	}
	return key, rec.entry(id), nil
}

func (t *boltTx) DeleteEntry(id string) (Entry, error) {
	b, err := t.bucket(bucketEntries)
	if err != nil {
		return Entry{}, err
	}
	key, e, err := getEntry(b, id)
	if err != nil {
		return Entry{}, err
	}
	if idx := t.bkt(bucketEntryIndex); idx.exists() {
		if err := unindexEntry(idx, e, key); err != nil {
			return Entry{}, err
		}
	}
	return e, del(b, key, entryName(id))
}

func (t *boltTx) UpdateEntry(e Entry) (Entry, error) {
	b, err := t.bucket(bucketEntries)
	if err != nil {
		return Entry{}, err
	}
	key, old, err := getEntry(b, e.ID)
	if err != nil {
		return Entry{}, err
	}
	if e.Account != old.Account || e.Kind != old.Kind || e.Value != old.Value {
		return Entry{}, invalidf("%s: account, kind and value cannot change (%s %s %q); add a new entry instead",
			entryName(e.ID), accountName(old.Account), old.Kind, old.Value)
	}
	if err := e.Perms.valid(); err != nil {
		return Entry{}, fmt.Errorf("%s: %w", entryName(e.ID), err)
	}
	e.Created, e.Provider = old.Created, old.Provider
	if err := put(b, key, entryRecord(e), entryName(e.ID)); err != nil {
		return Entry{}, err
	}
	return entryRecord(e).entry(e.ID), nil
}

func (t *boltTx) Entries() ([]Entry, error) {
	b, err := t.bucket(bucketEntries)
	if err != nil {
		return nil, err
	}
	return entriesWhere(b, func(Entry) bool { return true })
}

func (t *boltTx) EntriesByValue(value string) ([]Entry, error) {
	return t.entriesIndexed(entryByValue, value, func(e Entry) bool { return e.Value == value })
}

func (t *boltTx) EntriesOfAccount(name string) ([]Entry, error) {
	return t.entriesIndexed(entryByAccount, name, func(e Entry) bool { return e.Account == name })
}

func entriesWhere(b bucket, match func(Entry) bool) ([]Entry, error) {
	return recordsWhere(b, decodeEntry, match)
}

// decodeEntry reads the entry stored under record key k.
func decodeEntry(k, v []byte) (Entry, error) {
	id, err := idFromKey('e', k)
	if err != nil {
		return Entry{}, err
	}
	var rec entryV1
	if err := decodeRecord(v, &rec, entryName(id)); err != nil {
		return Entry{}, err
	}
	return rec.entry(id), nil
}

// recordsWhere decodes every record of b, in key order, and keeps those
// match accepts.
func recordsWhere[T any](b bucket, decode func(k, v []byte) (T, error), match func(T) bool) ([]T, error) {
	var out []T
	err := b.ForEach(func(k, v []byte) error {
		r, err := decode(k, v)
		if err != nil {
			return err
		}
		if match(r) {
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

func (t *boltTx) deleteAccountEntries(name string) ([]Entry, error) {
	b, err := t.bucket(bucketEntries)
	if err != nil {
		return nil, err
	}
	idx := t.bkt(bucketEntryIndex)
	victims, err := t.EntriesOfAccount(name)
	if err != nil {
		return nil, err
	}
	// Deleting after the scan: bbolt cursors may skip keys when the bucket
	// changes under them.
	for _, e := range victims {
		n, _ := parseID('e', e.ID)
		if idx.exists() {
			if err := unindexEntry(idx, e, seqKey(n)); err != nil {
				return nil, err
			}
		}
		if err := del(b, seqKey(n), entryName(e.ID)); err != nil {
			return nil, err
		}
	}
	return victims, nil
}

// ---- grants ----

func grantName(id string) string { return fmt.Sprintf("grant %q", id) }

func (t *boltTx) PutGrant(g Grant) (Grant, error) {
	b, err := t.bucket(bucketGrants)
	if err != nil {
		return Grant{}, err
	}
	accounts, err := t.bucket(bucketAccounts)
	if err != nil {
		return Grant{}, err
	}
	switch {
	case g.Account == "":
		return Grant{}, invalidf("grant for %q: no account", g.IP)
	case g.IP == "":
		return Grant{}, invalidf("grant for %s: empty IP", accountName(g.Account))
	case g.Expires.IsZero():
		// A zero expiry would be purged at once; a permanent grant should
		// be an entry instead.
		return Grant{}, invalidf("grant for %s, IP %s: no expiry time", accountName(g.Account), g.IP)
	}
	if err := g.Perms.valid(); err != nil {
		return Grant{}, fmt.Errorf("grant for %s, IP %s: %w", accountName(g.Account), g.IP, err)
	}
	if accounts.Get([]byte(g.Account)) == nil {
		return Grant{}, notFound(accountName(g.Account))
	}
	if strings.IndexByte(g.IP, 0) >= 0 || strings.IndexByte(g.Account, 0) >= 0 {
		return Grant{}, invalidf("grant for %q: NUL byte", g.IP)
	}
	key, id, err := claimID(b, 'g', g.ID)
	if err != nil {
		return Grant{}, fmt.Errorf("grant: %w", err)
	}
	g.ID = id
	if g.Created.IsZero() {
		g.Created = time.Now()
	}
	idx := t.bkt(bucketGrantIndex)
	if idx.exists() {
		if data := b.Get(key); data != nil {
			if old, err := decodeGrant(key, data); err == nil {
				if err := unindexGrant(idx, old, key); err != nil {
					return Grant{}, err
				}
			}
		}
	}
	if err := put(b, key, grantRecord(g), grantName(id)); err != nil {
		return Grant{}, err
	}
	if idx.exists() {
		if err := indexGrant(idx, g, key); err != nil {
			return Grant{}, err
		}
	}
	return grantRecord(g).grant(id), nil
}

func (t *boltTx) Grant(id string) (Grant, error) {
	b, err := t.bucket(bucketGrants)
	if err != nil {
		return Grant{}, err
	}
	_, g, err := getGrant(b, id)
	return g, err
}

func getGrant(b bucket, id string) ([]byte, Grant, error) {
	n, ok := parseID('g', id)
	if !ok {
		return nil, Grant{}, notFound(grantName(id))
	}
	key := seqKey(n)
	data := b.Get(key)
	if data == nil {
		return nil, Grant{}, notFound(grantName(id))
	}
	var rec grantV1
	if err := decodeRecord(data, &rec, grantName(id)); err != nil {
		return nil, Grant{}, err
	}
	return key, rec.grant(id), nil
}

func (t *boltTx) DeleteGrant(id string) (Grant, error) {
	b, err := t.bucket(bucketGrants)
	if err != nil {
		return Grant{}, err
	}
	key, g, err := getGrant(b, id)
	if err != nil {
		return Grant{}, err
	}
	if idx := t.bkt(bucketGrantIndex); idx.exists() {
		if err := unindexGrant(idx, g, key); err != nil {
			return Grant{}, err
		}
	}
	return g, del(b, key, grantName(id))
}

func (t *boltTx) Grants() ([]Grant, error) {
	b, err := t.bucket(bucketGrants)
	if err != nil {
		return nil, err
	}
	return grantsWhere(b, func(Grant) bool { return true })
}

func (t *boltTx) PurgeExpiredGrants(now time.Time) ([]Grant, error) {
	return t.deleteGrantsWhere(func(g Grant) bool { return !g.Expires.After(now) }, t.purgeMax)
}

// bounded cuts what a purge deletes to max (0: everything); the rest goes
// at the next purge.
func bounded[T any](victims []T, max int) []T {
	if max > 0 && len(victims) > max {
		return victims[:max]
	}
	return victims
}

func grantsWhere(b bucket, match func(Grant) bool) ([]Grant, error) {
	return recordsWhere(b, decodeGrant, match)
}

// decodeGrant reads the grant stored under record key k.
func decodeGrant(k, v []byte) (Grant, error) {
	id, err := idFromKey('g', k)
	if err != nil {
		return Grant{}, err
	}
	var rec grantV1
	if err := decodeRecord(v, &rec, grantName(id)); err != nil {
		return Grant{}, err
	}
	return rec.grant(id), nil
}

func (t *boltTx) deleteGrantsWhere(match func(Grant) bool, max int) ([]Grant, error) {
	b, err := t.bucket(bucketGrants)
	if err != nil {
		return nil, err
	}
	victims, err := grantsWhere(b, match)
	if err != nil {
		return nil, err
	}
	victims = bounded(victims, max)
	idx := t.bkt(bucketGrantIndex)
	for _, g := range victims {
		n, _ := parseID('g', g.ID)
		if idx.exists() {
			if err := unindexGrant(idx, g, seqKey(n)); err != nil {
				return nil, err
			}
		}
		if err := del(b, seqKey(n), grantName(g.ID)); err != nil {
			return nil, err
		}
	}
	return victims, nil
}

// ---- FQDN cache ----

func fqdnName(name string) string { return fmt.Sprintf("FQDN record %q", name) }

func (t *boltTx) PutFQDN(r FQDNRecord) error {
	b, err := t.bucket(bucketFQDN)
	if err != nil {
		return err
	}
	if r.Name == "" {
		return invalidf("FQDN record: empty name")
	}
	return put(b, []byte(r.Name), fqdnRecord(r), fqdnName(r.Name))
}

func (t *boltTx) FQDN(name string) (FQDNRecord, error) {
	b, err := t.bucket(bucketFQDN)
	if err != nil {
		return FQDNRecord{}, err
	}
	data := b.Get([]byte(name))
	if data == nil {
		return FQDNRecord{}, notFound(fqdnName(name))
	}
	var rec fqdnV1
	if err := decodeRecord(data, &rec, fqdnName(name)); err != nil {
		return FQDNRecord{}, err
	}
	return rec.fqdn(), nil
}

func (t *boltTx) FQDNs() ([]FQDNRecord, error) {
	b, err := t.bucket(bucketFQDN)
	if err != nil {
		return nil, err
	}
	var out []FQDNRecord
	err = b.ForEach(func(k, v []byte) error {
		var rec fqdnV1
		if err := decodeRecord(v, &rec, fqdnName(string(k))); err != nil {
			return err
		}
		out = append(out, rec.fqdn())
		return nil
	})
	return out, err
}

func (t *boltTx) DeleteFQDN(name string) error {
	b, err := t.bucket(bucketFQDN)
	if err != nil {
		return err
	}
	if b.Get([]byte(name)) == nil {
		return notFound(fqdnName(name))
	}
	return del(b, []byte(name), fqdnName(name))
}

// ---- audit log ----

func (t *boltTx) Audit(r AuditRecord) error {
	b, err := t.bucket(bucketAudit)
	if err != nil {
		return err
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	if r.Node == "" {
		r.Node = t.node
	}
	r = boundAudit(r)
	// The sequence breaks ties between records in the same nanosecond (or
	// the same coarse clock tick) and keeps them in insertion order.
	seq, err := b.NextSequence()
	if err != nil {
		return fmt.Errorf("audit record: next sequence: %w", err)
	}
	return put(b, auditKey(r.Time, seq), auditRecord(r), "audit record "+r.Action)
}

func (t *boltTx) AuditLog(since time.Time, limit int) ([]AuditRecord, error) {
	b, err := t.bucket(bucketAudit)
	if err != nil {
		return nil, err
	}
	// Keys sort by time, so since is a seek. Without since, start at the
	// first key: the zero time.Time is not the earliest encodable time.
	var lower []byte
	if !since.IsZero() {
		lower = auditKey(since, 0)
	}
	decode := func(v []byte) (AuditRecord, error) {
		var rec auditV1
		err := decodeRecord(v, &rec, "audit record")
		return rec.audit(), err
	}

	var out []AuditRecord
	c := b.Cursor()
	if limit <= 0 {
		k, v := c.First()
		if lower != nil {
			k, v = c.Seek(lower)
		}
		for ; k != nil; k, v = c.Next() {
			r, err := decode(v)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, nil
	}

	// Walk back from the newest so a limited query costs O(limit), then
	// reverse into oldest-first order.
	for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
		if lower != nil && bytes.Compare(k, lower) < 0 {
			break
		}
		r, err := decode(v)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

func (t *boltTx) PurgeAudit(before time.Time, keep int) (int, error) {
	b, err := t.bucket(bucketAudit)
	if err != nil {
		return 0, err
	}
	// Keys sort oldest first, so both rules cut a prefix of the bucket:
	// find where the survivors start, then delete what lies before.
	c := b.Cursor()
	var cut []byte // the first key kept; nil: delete everything
	if keep > 0 {
		k, _ := c.Last()
		for i := 1; i < keep && k != nil; i++ {
			k, _ = c.Prev()
		}
		cut = k
		if k == nil { // keep or fewer records
			cut, _ = c.First()
		}
	} else {
		cut, _ = c.First()
	}
	if cut == nil {
		return 0, nil
	}
	cut = bytes.Clone(cut)
	if !before.IsZero() {
		if age := auditKey(before, 0); bytes.Compare(age, cut) > 0 {
			cut = age
		}
	}
	var doomed [][]byte
	for k, _ := c.First(); k != nil && bytes.Compare(k, cut) < 0; k, _ = c.Next() {
		doomed = append(doomed, bytes.Clone(k))
	}
	doomed = bounded(doomed, t.purgeMax)
	for _, k := range doomed {
		if err := del(b, k, "audit record"); err != nil {
			return 0, err
		}
	}
	return len(doomed), nil
}

// MaxAuditField bounds each text field of a stored audit record, in
// bytes: a refused request may carry a value of any length, and the log
// needs only enough of it to tell what was refused.
const MaxAuditField = 512

// boundAudit is the one place audit records are bounded, so that no
// request can bloat the log. A refusal's message usually quotes the value
// refused, which the record already holds as its Subject or Account; a
// long one is kept there only, and every field is cut to MaxAuditField
// bytes, ending with a marker giving the length it had.
func boundAudit(r AuditRecord) AuditRecord {
	for _, v := range []struct{ value, name string }{{r.Subject, "subject"}, {r.Account, "account"}} {
		if len(v.value) <= MaxAuditField {
			continue
		}
		ref := fmt.Sprintf("(the %s, %d bytes)", v.name, len(v.value))
		r.Detail = strings.ReplaceAll(r.Detail, strconv.Quote(v.value), ref)
		r.Detail = strings.ReplaceAll(r.Detail, v.value, ref)
	}
	for _, f := range []*string{&r.Action, &r.Actor, &r.Account, &r.Subject, &r.Result, &r.Detail} {
		*f = truncateField(*f)
	}
	return r
}

// truncateField cuts s to at most MaxAuditField bytes, marker included,
// at a character boundary.
func truncateField(s string) string {
	if len(s) <= MaxAuditField {
		return s
	}
	marker := fmt.Sprintf("…(%d bytes)", len(s))
	n := MaxAuditField - len(marker)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + marker
}

// ---- lockouts ----

func lockoutName(key string) string { return fmt.Sprintf("lockout %q", key) }

func (t *boltTx) PutLockout(l Lockout) error {
	b, err := t.bucket(bucketLockouts)
	if err != nil {
		return err
	}
	if l.Key == "" {
		return invalidf("lockout: empty key")
	}
	return put(b, []byte(l.Key), lockoutRecord(l), lockoutName(l.Key))
}

func (t *boltTx) Lockout(key string) (Lockout, error) {
	b, err := t.bucket(bucketLockouts)
	if err != nil {
		return Lockout{}, err
	}
	data := b.Get([]byte(key))
	if data == nil {
		return Lockout{}, notFound(lockoutName(key))
	}
	var rec lockoutV1
	if err := decodeRecord(data, &rec, lockoutName(key)); err != nil {
		return Lockout{}, err
	}
	return rec.lockout(), nil
}

func (t *boltTx) Lockouts() ([]Lockout, error) {
	b, err := t.bucket(bucketLockouts)
	if err != nil {
		return nil, err
	}
	var out []Lockout
	err = b.ForEach(func(k, v []byte) error {
		var rec lockoutV1
		if err := decodeRecord(v, &rec, lockoutName(string(k))); err != nil {
			return err
		}
		out = append(out, rec.lockout())
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (t *boltTx) DeleteLockout(key string) error {
	b, err := t.bucket(bucketLockouts)
	if err != nil {
		return err
	}
	if b.Get([]byte(key)) == nil {
		return notFound(lockoutName(key))
	}
	return del(b, []byte(key), lockoutName(key))
}

// ---- settings ----

// Settings live in the meta bucket under a prefix, so they need no
// bucket of their own and no schema change.
const settingPrefix = "setting:"

func (t *boltTx) Setting(key string) ([]byte, error) {
	b, err := t.bucket(bucketMeta)
	if err != nil {
		return nil, err
	}
	v := b.Get([]byte(settingPrefix + key))
	if v == nil {
		return nil, notFound(fmt.Sprintf("setting %q", key))
	}
	return bytes.Clone(v), nil
}

func (t *boltTx) PutSetting(key string, value []byte) error {
	if key == "" {
		return fmt.Errorf("setting: empty key: %w", ErrInvalid)
	}
	b, err := t.bucket(bucketMeta)
	if err != nil {
		return err
	}
	if err := b.Put([]byte(settingPrefix+key), bytes.Clone(value)); err != nil {
		return fmt.Errorf("setting %q: write: %w", key, err)
	}
	return nil
}

func (t *boltTx) PurgeLockouts(now, since time.Time) (int, error) {
	b, err := t.bucket(bucketLockouts)
	if err != nil {
		return 0, err
	}
	var stale [][]byte
	err = b.ForEach(func(k, v []byte) error {
		var rec lockoutV1
		if err := decodeRecord(v, &rec, lockoutName(string(k))); err != nil {
			return err
		}
		l := rec.lockout()
		if l.LockedUntil.After(now) {
			return nil
		}
		for _, f := range l.Failures {
			if !f.Before(since) {
				return nil
			}
		}
		stale = append(stale, bytes.Clone(k))
		return nil
	})
	if err != nil {
		return 0, err
	}
	stale = bounded(stale, t.purgeMax)
	for _, k := range stale {
		if err := del(b, k, lockoutName(string(k))); err != nil {
			return 0, err
		}
	}
	return len(stale), nil
}
