package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the database layout this build reads and writes.
const SchemaVersion = 1

// DefaultTimeout is how long Open waits for another process to release
// the database when Options.Timeout is not positive.
const DefaultTimeout = time.Second

// Bucket names. They are part of the on-disk format.
var (
	bucketMeta     = []byte("meta")
	bucketAccounts = []byte("accounts")
	bucketEntries  = []byte("entries")
	bucketFQDN     = []byte("fqdn")
	bucketGrants   = []byte("grants")
	bucketAudit    = []byte("audit")
	bucketLockouts = []byte("lockouts")

	// allBuckets are the buckets schema version 1 was created with; Open
	// refuses a database that lacks one. The door and entry indexes
	// (bucketDoorIndex, bucketEntryIndex) are not among them: they were
	// added within version 1 and are derived from the records, so Open
	// builds them when they are missing or behind.
	allBuckets = [][]byte{
		bucketMeta, bucketAccounts, bucketEntries, bucketFQDN,
		bucketGrants, bucketAudit, bucketLockouts,
	}

	keySchema = []byte("schema")
)

// Store is the persistence interface the rest of dialgate programs
// against; *DB is its bbolt implementation.
//
// View runs fn in a read-only transaction and Update in a read-write one.
// Update commits if fn returns nil and rolls back every change fn made if it
// returns an error or panics; the error is returned unchanged. The Tx is
// valid only until fn returns: do not keep it, return it or hand it to
// another goroutine. Read-write transactions are serialised, so a
// read-modify-write inside one Update never loses a concurrent write.
// Do slow work (DNS, the kernel, the network) outside the closure: a long
// Update blocks every other writer. On a shared store (etcdstore) fn may
// run more than once, when another node committed first: it must not
// accumulate state outside the transaction across runs.
type Store interface {
	View(fn func(Tx) error) error
	Update(fn func(Tx) error) error
	Close() error
}

// Options tunes Open.
type Options struct {
	// Timeout bounds the wait for a database held by another process;
	// zero or negative means DefaultTimeout. There is deliberately no way
	// to wait forever: a CLI that hangs behind a running daemon is worse
	// than one that says so.
	Timeout time.Duration
	// Create makes a missing or empty (0-byte) file a new, empty
	// database. Only "dialgate init" sets it. Without it such a file, or
	// one whose creation never finished, is refused with ErrNoDatabase:
	// an empty whitelist applied to the kernel would lock everybody out,
	// so a lost database must be restored, never silently recreated.
	Create bool
	// ReadOnly opens without writing anything, under a shared lock (a
	// backup or a check of a database no daemon holds). The door index is
	// not built for a database that predates it.
	ReadOnly bool

	// raw skips the schema checks and upkeep: the file is a replica or a
	// copy being assembled (replica.go).
	raw bool
}

// DB is a Store backed by a bbolt file.
type DB struct {
	bolt *bbolt.DB
	path string
	// grantIndexed: Open rebuilt the grant index (not read-only), or the
	// database is a replica, whose indexes the shared store keeps.
	grantIndexed bool
	// commit is set on a replica: where its transactions are committed.
	commit   func(mark int64, ops []Op) (int64, error)
	node     string
	purgeMax int
}

var _ Store = (*DB)(nil)

// Open opens the database at path and checks or writes its schema
// version. With opts.Create a missing or empty file (and its parent
// directory, mode 0700) is created; without it such a file fails with
// ErrNoDatabase.
//
// An existing file is checked before bbolt maps it (a truncated file
// would crash the process) and with bbolt's own consistency check after;
// a damaged one fails with an error wrapping ErrDamaged, unchanged.
//
// The file is made mode 0600 whatever the umask, and an existing file with
// looser permissions is tightened: it holds passcode hashes. If another
// process has the database open, Open fails after opts.Timeout with an error
// wrapping ErrLocked; a database from an incompatible dialgate fails with
// ErrSchema.
func Open(path string, opts Options) (*DB, error) {
	return open(path, path, opts)
}

// open is Open of the file at path, named shown in messages and by Path:
// a copy being checked is reported as the database it was made from.
func open(path, shown string, opts Options) (*DB, error) {
	timeout := lockTimeout(opts.Timeout)
	exists, err := checkedFile(path, shown, timeout)
	if err != nil {
		return nil, err
	}
	switch {
	case exists:
	case !opts.Create || opts.ReadOnly:
		if _, err := os.Stat(path); err == nil {
			return nil, noDatabase(path, "is empty (0 bytes)")
		}
		return nil, noDatabase(path, "does not exist")
	default:
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
	}

	return openBolt(path, shown, timeout, exists, opts)
}

func lockTimeout(t time.Duration) time.Duration {
	if t <= 0 {
		return DefaultTimeout
	}
	return t
}

// checkedFile reports whether a database file with content exists at
// path, and if so checks it before bbolt maps it (preflight).
func checkedFile(path, shown string, timeout time.Duration) (bool, error) {
	exists, err := statDB(path)
	if err != nil || !exists {
		return false, err
	}
	return true, preflight(path, shown, timeout)
}

// openBolt is Open once the file has passed preflight (exists) or is to
// be created. Preflight leaves bbolt nothing to crash on; should a damaged
// file still get a panic out of bbolt here, or a fault in this
// goroutine, it is reported as damage rather than killing the process.
func openBolt(path, shown string, timeout time.Duration, exists bool, opts Options) (db *DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var bdb *bbolt.DB
	defer func() {
		if p := recover(); p != nil {
			if bdb != nil {
				_ = bdb.Close()
			}
			db, err = nil, damaged(shown, fmt.Errorf("bbolt failed reading it: %v", p))
		}
	}()
	bdb, err = bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:  timeout,
		OpenFile: openPrivate,
		ReadOnly: opts.ReadOnly,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, newError(fmt.Sprintf("database %s is held by another process (is \"dialgate serve\" running?)", shown), ErrLocked, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", shown, err)
	}

	db = &DB{bolt: bdb, path: shown}
	if exists {
		if err := db.boltCheck(); err != nil {
			_ = bdb.Close()
			return nil, err
		}
	}
	if opts.raw {
		return db, nil
	}
	if err := db.prepare(opts.Create, opts.ReadOnly); err != nil {
		_ = bdb.Close()
		return nil, err
	}
	return db, nil
}

// openPrivate is bbolt's file opener. Setting the mode on the descriptor
// rather than chmod(2)ing the path afterwards leaves no window in which the
// file is readable by others, and acts on the file actually opened even if
// the path is swapped.
func openPrivate(name string, flag int, _ os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(name, flag, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && fi.Mode().Perm() != 0o600 {
		err = f.Chmod(0o600)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("set mode 0600 on %s: %w", name, err)
	}
	return f, nil
}

// prepare initialises a fresh database (create) or checks an existing
// one. bbolt gives a new file an empty root, so "fresh" means "no buckets
// at all"; anything else must carry our schema version. An existing
// database without the door index (written before it existed) gets one
// built from its accounts, unless readOnly; an existing index is trusted.
func (db *DB) prepare(create, readOnly bool) error {
	var fresh, noIndex bool
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if isReplica(tx) {
			src := tx.Bucket(bucketReplica).Get(keyReplicaFrom)
			return newError(fmt.Sprintf("%s is the local replica of a shared store (%s), not a database of its own: set [store] backend = \"etcd\", or make a database of the shared store's data with \"dialgate store migrate --to bbolt\"", db.path, src), ErrReplica, nil)
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			first, _ := tx.Cursor().First() // the root holds only buckets
			fresh = first == nil
			if !fresh {
				return newError(fmt.Sprintf("database %s has no dialgate schema version (is it a dialgate database?)", db.path), ErrSchema, nil)
			}
			return nil
		}
		raw := meta.Get(keySchema)
		if raw == nil {
			return newError(fmt.Sprintf("database %s has no schema version", db.path), ErrSchema, nil)
		}
		v, err := strconv.Atoi(string(raw))
		if err != nil {
			return newError(fmt.Sprintf("database %s has an unreadable schema version %q", db.path, raw), ErrSchema, err)
		}
		if v != SchemaVersion {
			return newError(fmt.Sprintf("database %s has schema version %d, this dialgate supports %d", db.path, v, SchemaVersion), ErrSchema, nil)
		}
		// Every bucket of the version is created with the version, so a
		// missing one means the file was edited by something else; better to
		// say so here than to fail on first use.
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				return newError(fmt.Sprintf("database %s (schema version %d) lacks bucket %q", db.path, v, name), ErrSchema, nil)
			}
		}
		noIndex = tx.Bucket(bucketDoorIndex) == nil || !entryIndexCurrent(tx)
		return nil
	})
	if err != nil {
		return err
	}
	if fresh && (!create || readOnly) {
		// An init that died before its first transaction.
		return noDatabase(db.path, "was never initialised (it holds no dialgate data)")
	}
	if !fresh {
		if readOnly {
			return nil
		}
		if err := db.bolt.Update(buildGrantIndex); err != nil {
			return fmt.Errorf("database %s: build grant index: %w", db.path, err)
		}
		db.grantIndexed = true
		if !noIndex {
			return nil
		}
		// One transaction: a crash leaves the database as it was, and the
		// next Open builds the index again.
		err := db.bolt.Update(func(tx *bbolt.Tx) error {
			if tx.Bucket(bucketDoorIndex) == nil {
				if err := buildDoorIndex(tx); err != nil {
					return fmt.Errorf("build door index: %w", err)
				}
			}
			if !entryIndexCurrent(tx) {
				if err := buildEntryIndex(tx); err != nil {
					return fmt.Errorf("build entry index: %w", err)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("database %s: %w", db.path, err)
		}
		return nil
	}

	// One transaction, so a crash leaves either an empty file (initialised
	// again next time) or a complete version 1 database.
	err = db.bolt.Update(func(tx *bbolt.Tx) error {
		for _, name := range slices.Concat(allBuckets, [][]byte{bucketDoorIndex}) {
			if _, err := tx.CreateBucket(name); err != nil {
				return fmt.Errorf("create bucket %q: %w", name, err)
			}
		}
		if err := buildEntryIndex(tx); err != nil {
			return err
		}
		if err := buildGrantIndex(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchema, []byte(strconv.Itoa(SchemaVersion)))
	})
	if err != nil {
		return fmt.Errorf("initialise database %s: %w", db.path, err)
	}
	db.grantIndexed = true
	return nil
}

// Path returns the path the database was opened with.
func (db *DB) Path() string { return db.path }

// Close releases the database and its lock. Transactions must have
// finished.
func (db *DB) Close() error {
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("close database %s: %w", db.path, err)
	}
	return nil
}

// View implements Store.
func (db *DB) View(fn func(Tx) error) error {
	return db.bolt.View(func(btx *bbolt.Tx) error {
		if db.commit != nil {
			if rev, _ := replicaState(btx); rev == 0 {
				return noDatabase(db.path, "is a replica that was never filled from the shared store")
			}
		}
		t := &boltTx{tx: btx, grantIndex: db.grantIndexed}
		defer t.finish()
		return fn(t)
	})
}

// Update implements Store.
func (db *DB) Update(fn func(Tx) error) error {
	if db.commit != nil {
		return db.updateReplica(fn)
	}
	return db.bolt.Update(func(btx *bbolt.Tx) error {
		t := &boltTx{tx: btx, grantIndex: db.grantIndexed}
		defer t.finish()
		return fn(t)
	})
}
