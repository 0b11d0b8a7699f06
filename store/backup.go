package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"
)

// CheckReport is what a check found in a sound database.
type CheckReport struct {
	Path     string `json:"path"`
	Bytes    int64  `json:"bytes"` // the data, as a backup holds it
	Accounts int    `json:"accounts"`
	Entries  int    `json:"entries"`
	Grants   int    `json:"grants"`
	FQDNs    int    `json:"fqdns"`
	Lockouts int    `json:"lockouts"`
	Audit    int    `json:"audit"`
	// DoorIndex is false for a database written before the door index
	// (opened read-only, so not yet built): nothing to compare.
	DoorIndex bool `json:"door_index"`
}

// maxFindings bounds the consistency problems an error lists.
const maxFindings = 5

// boltCheck runs bbolt's consistency check (page tree, freelist, key
// order, pages lost or used twice) in a read transaction; any finding is
// ErrDamaged. Open runs it on every existing file, after preflight has
// made sure bbolt can walk the file without crashing.
func (db *DB) boltCheck() error {
	var found []error
	n := 0
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		// The channel must be drained: the check's goroutine writes to it.
		for err := range tx.Check() {
			if n++; len(found) < maxFindings {
				found = append(found, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check database %s: %w", db.path, err)
	}
	if n == 0 {
		return nil
	}
	if n > len(found) {
		found = append(found, fmt.Errorf("and %d more", n-len(found)))
	}
	return damaged(db.path, fmt.Errorf("consistency check: %w", errors.Join(found...)))
}

// Check verifies the open database: bbolt's consistency check, then every
// record decodes, every entry and grant belongs to an account, and the
// door index says what the accounts say. A problem is ErrDamaged (or
// ErrSchema for records of a newer dialgate).
func (db *DB) Check() (CheckReport, error) {
	if err := db.boltCheck(); err != nil {
		return CheckReport{}, err
	}
	return db.checkRecords()
}

// CheckFile checks the database file at path, changing nothing: what
// Open checks, then what Check does. It is how a backup is verified, and
// how "dialgate db check" works with no daemon running; while a daemon
// holds the file it fails with ErrLocked.
func CheckFile(path string, timeout time.Duration) (CheckReport, error) {
	return checkFileAs(path, path, timeout)
}

func checkFileAs(path, shown string, timeout time.Duration) (CheckReport, error) {
	db, err := open(path, shown, Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		return CheckReport{}, err
	}
	defer db.Close()
	return db.checkRecords()
}

// CheckCopy checks the open database without holding it up: a copy made
// in one read transaction (Backup) into a temporary file next to it is
// checked as CheckFile checks a file, and what it finds is reported
// against the database's path. It is "dialgate db check" while the
// daemon runs: the copy is read with plain reads first, so a database
// damaged under the running daemon is reported, not crashed on.
func (db *DB) CheckCopy() (CheckReport, error) {
	f, err := os.CreateTemp(filepath.Dir(db.path), "."+filepath.Base(db.path)+".check-*")
	if err != nil {
		return CheckReport{}, fmt.Errorf("check %s: %w", db.path, err)
	}
	defer os.Remove(f.Name())
	_, err = db.Backup(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return CheckReport{}, fmt.Errorf("check %s: %w", db.path, err)
	}
	return checkFileAs(f.Name(), db.path, 0)
}

func (db *DB) checkRecords() (CheckReport, error) {
	r := CheckReport{Path: db.path}
	err := db.bolt.View(func(btx *bbolt.Tx) error {
		r.Bytes = btx.Size()
		t := &boltTx{tx: btx}
		defer t.finish()
		accounts, err := t.Accounts()
		if err != nil {
			return err
		}
		names := make(map[string]bool, len(accounts))
		for _, a := range accounts {
			names[a.Name] = true
		}
		entries, err := t.Entries()
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !names[e.Account] {
				return fmt.Errorf("entry %s belongs to account %q, which does not exist", e.ID, e.Account)
			}
		}
		grants, err := t.Grants()
		if err != nil {
			return err
		}
		for _, g := range grants {
			if !names[g.Account] {
				return fmt.Errorf("grant %s belongs to account %q, which does not exist", g.ID, g.Account)
			}
		}
		fqdns, err := t.FQDNs()
		if err != nil {
			return err
		}
		lockouts, err := t.Lockouts()
		if err != nil {
			return err
		}
		// The audit log may be long: decoded one record at a time.
		err = btx.Bucket(bucketAudit).ForEach(func(k, v []byte) error {
			var rec auditV1
			r.Audit++
			return decodeRecord(v, &rec, fmt.Sprintf("audit record %x", k))
		})
		if err != nil {
			return err
		}
		r.Accounts, r.Entries, r.Grants, r.FQDNs, r.Lockouts = len(accounts), len(entries), len(grants), len(fqdns), len(lockouts)
		if idx := btx.Bucket(bucketDoorIndex); idx != nil {
			r.DoorIndex = true
			return checkDoorIndex(idx, accounts)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrSchema) {
			return r, err
		}
		return r, damaged(db.path, err)
	}
	return r, nil
}

// checkDoorIndex compares the index with the keys the accounts call for,
// both ways.
func checkDoorIndex(idx *bbolt.Bucket, accounts []Account) error {
	want := make(map[string]string)
	for _, a := range accounts {
		for _, c := range doorClaims(a) {
			want[c.key] = a.Name
		}
	}
	n := 0
	err := idx.ForEach(func(k, v []byte) error {
		n++
		name, ok := want[string(k)]
		switch {
		case !ok:
			return fmt.Errorf("door index: key %q is claimed by no account", k)
		case len(k) > 0 && k[0] == doorExtension:
			if len(v) != 0 {
				return fmt.Errorf("door index: extension key %q has a value", k)
			}
		case string(v) != name:
			return fmt.Errorf("door index: key %q names account %q, the record is account %q's", k, v, name)
		}
		return nil
	})
	if err == nil && n != len(want) {
		err = fmt.Errorf("door index: %d keys, the accounts call for %d", n, len(want))
	}
	return err
}

// Backup writes a consistent copy of the database to w from one read
// transaction; writers carry on meanwhile, but a read transaction held
// long can hold up a writer that must grow the file, so w should be fast
// (a local file, not a network peer).
func (db *DB) Backup(w io.Writer) (int64, error) {
	if db.commit != nil {
		return db.backupReplica(w)
	}
	var n int64
	err := db.bolt.View(func(tx *bbolt.Tx) (err error) {
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup of %s: %w", db.path, err)
	}
	return n, nil
}

// SaveBackup writes a backup to path atomically: write fills a temporary
// file next to path (mode 0600: it holds passcode hashes), which is
// synced and checked with CheckFile before it is renamed over path. A
// failed or damaged copy leaves path as it was.
func SaveBackup(path string, write func(io.Writer) error) (CheckReport, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return CheckReport{}, fmt.Errorf("backup: %s is a directory; give a file name", path)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return CheckReport{}, fmt.Errorf("backup: %w", err)
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return CheckReport{}, fmt.Errorf("backup: %w", err)
	}
	if err := write(f); err != nil {
		return CheckReport{}, fmt.Errorf("backup: %w", err)
	}
	if err := f.Sync(); err != nil {
		return CheckReport{}, fmt.Errorf("backup: %w", err)
	}
	if err := f.Close(); err != nil {
		return CheckReport{}, fmt.Errorf("backup: %w", err)
	}
	rep, err := CheckFile(tmp, 0)
	if err != nil {
		return rep, fmt.Errorf("backup: the copy does not check out, %s was not written: %w", path, err)
	}
	rep.Path = path
	if err := os.Rename(tmp, path); err != nil {
		return rep, fmt.Errorf("backup: %w", err)
	}
	done = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return rep, nil
}

// backupReplica writes a replica's content as a standalone database (the
// replica's own bookkeeping left out), so a backup taken on any node of a
// shared store restores anywhere, or seeds a new store.
func (db *DB) backupReplica(w io.Writer) (int64, error) {
	var ops []Op
	if err := db.Ops(func(op Op) error { ops = append(ops, op); return nil }); err != nil {
		return 0, fmt.Errorf("backup of %s: %w", db.path, err)
	}
	dir, err := os.MkdirTemp(filepath.Dir(db.path), ".backup-")
	if err != nil {
		return 0, fmt.Errorf("backup of %s: %w", db.path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "dialgate.db")
	if err := CreateFromOps(tmp, ops); err != nil {
		return 0, fmt.Errorf("backup of %s: %w", db.path, err)
	}
	f, err := os.Open(tmp)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := io.Copy(w, f)
	if err != nil {
		return n, fmt.Errorf("backup of %s: %w", db.path, err)
	}
	return n, nil
}
