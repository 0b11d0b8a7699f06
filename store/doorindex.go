package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/bbolt"
)

// The door index lets the phone door find an account from what a caller
// presents (a caller ID) or keys (a door number) with two bbolt lookups,
// one in the index and one in the accounts bucket, however many accounts
// there are; and the accounts behind one SIP extension with a prefix scan.
//
// Keys:
//
//	"n\x00" + number               -> account name  (unique)
//	"c\x00" + caller ID            -> account name  (unique)
//	"x\x00" + extension + "\x00" + name -> empty    (an extension may be shared)
//
// The index is derived from the account records: CreateAccount, PutAccount
// and DeleteAccount keep it in step inside their own transaction, and Open
// builds it for a database written before it existed. The records remain
// the truth: every lookup checks that the account it found still holds the
// value, so a stale index can make a lookup fail but never name the wrong
// account.
var bucketDoorIndex = []byte("doorindex")

// Kinds of door claim; each is also the first byte of its index keys.
const (
	doorNumber    = 'n'
	doorCallerID  = 'c'
	doorExtension = 'x'
)

// doorClaim is one index key that an account's record calls for.
type doorClaim struct {
	kind  byte
	value string // the number, caller ID or extension
	key   string // the index key; a string so that claims can be map keys
}

func numberClaim(number string) doorClaim {
	return doorClaim{kind: doorNumber, value: number, key: "n\x00" + number}
}

func callerIDClaim(callerID string) doorClaim {
	return doorClaim{kind: doorCallerID, value: callerID, key: "c\x00" + callerID}
}

// extensionPrefix is the key prefix shared by every account on ext. The
// trailing NUL keeps extension "20" from matching "201"; extensions may not
// contain NUL, so the prefix cannot reach into the name.
func extensionPrefix(ext string) string { return "x\x00" + ext + "\x00" }

func extensionClaim(ext, name string) doorClaim {
	return doorClaim{kind: doorExtension, value: ext, key: extensionPrefix(ext) + name}
}

// unique reports whether the claim maps to one account.
func (c doorClaim) unique() bool { return c.kind != doorExtension }

func (c doorClaim) String() string {
	switch c.kind {
	case doorNumber:
		return fmt.Sprintf("number %q", c.value)
	case doorCallerID:
		return fmt.Sprintf("caller ID %q", c.value)
	default:
		return fmt.Sprintf("extension %q", c.value)
	}
}

// doorClaims lists the index keys a calls for.
func doorClaims(a Account) []doorClaim {
	var out []doorClaim
	if a.Number != "" {
		out = append(out, numberClaim(a.Number))
	}
	for _, id := range a.CallerIDs {
		out = append(out, callerIDClaim(id))
	}
	if a.Extension != "" {
		out = append(out, extensionClaim(a.Extension, a.Name))
	}
	return out
}

// holds reports whether a's record makes claim c, i.e. whether an index key
// pointing at a is current.
func holds(a Account, c doorClaim) bool {
	switch c.kind {
	case doorNumber:
		return a.Number == c.value
	case doorCallerID:
		return slices.Contains(a.CallerIDs, c.value)
	default:
		return a.Extension == c.value
	}
}

// validDoor refuses door settings the index cannot represent faithfully.
// An empty caller ID would match every anonymous call, and a NUL byte
// would blur the boundaries between the parts of an index key.
func validDoor(a Account) error {
	what := accountName(a.Name)
	if strings.IndexByte(a.Number, 0) >= 0 {
		return invalidf("%s: number %q contains a NUL byte", what, a.Number)
	}
	if strings.IndexByte(a.Extension, 0) >= 0 {
		return invalidf("%s: extension %q contains a NUL byte", what, a.Extension)
	}
	for i, id := range a.CallerIDs {
		switch {
		case id == "":
			return invalidf("%s: empty caller ID", what)
		case strings.IndexByte(id, 0) >= 0:
			return invalidf("%s: caller ID %q contains a NUL byte", what, id)
		case slices.Contains(a.CallerIDs[:i], id):
			return invalidf("%s: caller ID %q listed twice", what, id)
		}
	}
	if len(a.Name) > bbolt.MaxKeySize {
		return invalidf("account name of %d bytes (at most %d)", len(a.Name), bbolt.MaxKeySize)
	}
	for _, c := range doorClaims(a) {
		if len(c.key) > bbolt.MaxKeySize {
			return invalidf("%s: %s is too long", what, c)
		}
	}
	return nil
}

// checkFree fails with ErrExists if another account holds the unique claim
// c. An index key whose account is gone, or no longer makes the claim, is
// stale (left by an older dialgate or an outside edit) and is taken over.
func checkFree(idx, accounts bucket, name string, c doorClaim) error {
	owner := idx.Get([]byte(c.key))
	if owner == nil || string(owner) == name {
		return nil
	}
	other, err := getAccount(accounts, string(owner))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !holds(other, c) {
		return nil
	}
	return fmt.Errorf("%s: %s already belongs to %s: %w", accountName(name), c, accountName(string(owner)), ErrExists)
}

// reindex moves the index entries of account name from the claims of its
// old record to those of next. old is nil for a new account; oldUnknown
// means the old record exists but could not be decoded, so every key naming
// the account is dropped instead; next is nil when the account is deleted.
//
// Every check comes before the first write, so a refused change leaves the
// index untouched even if the caller carries on with the transaction.
func reindex(idx, accounts bucket, name string, old []doorClaim, oldUnknown bool, next *Account) error {
	var add []doorClaim
	if next != nil {
		if err := validDoor(*next); err != nil {
			return err
		}
		add = doorClaims(*next)
		for _, c := range add {
			if c.unique() {
				if err := checkFree(idx, accounts, name, c); err != nil {
					return err
				}
			}
		}
	}

	keep := make(map[string]bool, len(add))
	for _, c := range add {
		keep[c.key] = true
	}
	var drop [][]byte
	if oldUnknown {
		keys, err := keysNaming(idx, name)
		if err != nil {
			return err
		}
		drop = keys
	} else {
		for _, c := range old {
			// A unique key another account has since taken over is theirs.
			if keep[c.key] || c.unique() && string(idx.Get([]byte(c.key))) != name {
				continue
			}
			drop = append(drop, []byte(c.key))
		}
	}
	for _, k := range drop {
		if keep[string(k)] {
			continue
		}
		if err := idx.Delete(k); err != nil {
			return fmt.Errorf("%s: door index: delete: %w", accountName(name), err)
		}
	}
	for _, c := range add {
		v := []byte{}
		if c.unique() {
			v = []byte(name)
		}
		if err := idx.Put([]byte(c.key), v); err != nil {
			return fmt.Errorf("%s: door index: %s: write: %w", accountName(name), c, err)
		}
	}
	return nil
}

// keysNaming scans the whole index for the keys that point at name. It is
// the slow path for an account record this build cannot decode.
func keysNaming(idx bucket, name string) ([][]byte, error) {
	var out [][]byte
	err := idx.ForEach(func(k, v []byte) error {
		if len(k) < 2 || k[1] != 0 {
			return nil
		}
		switch k[0] {
		case doorNumber, doorCallerID:
			if string(v) == name {
				out = append(out, bytes.Clone(k))
			}
		case doorExtension:
			rest := k[2:]
			if i := bytes.IndexByte(rest, 0); i >= 0 && string(rest[i+1:]) == name {
				out = append(out, bytes.Clone(k))
			}
		}
		return nil
	})
	return out, err
}

// oldClaims returns the claims of the stored record under name, or
// unknown = true if there is one this build cannot decode.
func oldClaims(accounts bucket, name string) (claims []doorClaim, unknown bool) {
	data := accounts.Get([]byte(name))
	if data == nil {
		return nil, false
	}
	var rec accountV1
	if err := decodeRecord(data, &rec, accountName(name)); err != nil {
		return nil, true
	}
	a := rec.account()
	a.Name = name
	return doorClaims(a), false
}

// buildDoorIndex creates the index bucket and fills it from the account
// records. Open runs it, in one transaction, on a database written before
// the index existed. Two accounts claiming the same number or caller ID
// fail it with ErrExists: guessing which one the phone door should find is
// not the store's business.
func buildDoorIndex(tx *bbolt.Tx) error {
	idx, err := tx.CreateBucket(bucketDoorIndex)
	if err != nil {
		return fmt.Errorf("create bucket %q: %w", bucketDoorIndex, err)
	}
	accounts := tx.Bucket(bucketAccounts)
	return accounts.ForEach(func(k, v []byte) error {
		var rec accountV1
		if err := decodeRecord(v, &rec, accountName(string(k))); err != nil {
			return err
		}
		a := rec.account()
		a.Name = string(k) // the key is what lookups use
		return reindex(plain(idx), plain(accounts), a.Name, nil, false, &a)
	})
}

// ---- lookups ----

func (t *boltTx) AccountByNumber(number string) (Account, error) {
	return t.accountByClaim(numberClaim(number))
}

func (t *boltTx) AccountByCallerID(callerID string) (Account, error) {
	return t.accountByClaim(callerIDClaim(callerID))
}

func (t *boltTx) accountByClaim(c doorClaim) (Account, error) {
	idx, err := t.bucket(bucketDoorIndex)
	if err != nil {
		return Account{}, err
	}
	accounts, err := t.bucket(bucketAccounts)
	if err != nil {
		return Account{}, err
	}
	if c.value == "" {
		// "" means "none"; it is never indexed, and an anonymous caller
		// must not find anybody.
		return Account{}, notFound("account with " + c.String())
	}
	owner := idx.Get([]byte(c.key))
	if owner == nil {
		return Account{}, notFound("account with " + c.String())
	}
	return indexedAccount(accounts, string(owner), c)
}

// indexedAccount loads the account an index key names and checks that its
// record still makes the claim.
func indexedAccount(accounts bucket, name string, c doorClaim) (Account, error) {
	a, err := getAccount(accounts, name)
	if errors.Is(err, ErrNotFound) {
		return Account{}, fmt.Errorf("door index: %s names %s, which does not exist (stale index)", c, accountName(name))
	}
	if err != nil {
		return Account{}, err
	}
	if !holds(a, c) {
		return Account{}, fmt.Errorf("door index: %s names %s, whose record does not hold it (stale index)", c, accountName(name))
	}
	return a, nil
}

func (t *boltTx) AccountsByExtension(ext string) ([]Account, error) {
	idx, err := t.bucket(bucketDoorIndex)
	if err != nil {
		return nil, err
	}
	accounts, err := t.bucket(bucketAccounts)
	if err != nil {
		return nil, err
	}
	if ext == "" || strings.IndexByte(ext, 0) >= 0 {
		return nil, nil
	}
	prefix := []byte(extensionPrefix(ext))
	var out []Account
	cur := idx.Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		name := string(k[len(prefix):])
		a, err := indexedAccount(accounts, name, extensionClaim(ext, name))
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}
