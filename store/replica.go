package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"go.etcd.io/bbolt"
)

// A replica is the local bbolt copy of a database that lives in a shared
// store (etcd): every dialgate node reads its own copy, so the firewall,
// the door's lookups and status never wait on the network, and a node cut
// off from the shared store keeps filtering with what it last applied,
// across restarts too. Writes go the other way: a transaction runs on the
// copy, and its write set is committed to the shared store before the
// copy commits (see ReplicaOptions.Commit), so a write the shared store
// refused is not kept anywhere.
//
// The copy holds the same buckets, keys and sequences as a standalone
// database (indexes included: they are shared like the records), plus a
// bucket of its own saying which revision of the shared store it holds.

var (
	bucketReplica = []byte("_replica")
	keyReplicaRev = []byte("rev")
	// keyReplicaMark is the revision at which the shared store's last
	// transaction committed (as far as this copy knows): a commit is
	// accepted only if no other transaction came after it.
	keyReplicaMark = []byte("mark")
	keyReplicaFrom = []byte("source")
	// keyReplicaOrigin names the shared store instance the copy came from
	// (etcd's cluster ID): revisions only compare within one.
	keyReplicaOrigin = []byte("origin")
)

// ErrConflict reports that another node committed to the shared store
// since the revision a transaction ran on: nothing was written, and the
// transaction may be run again once the replica has caught up.
var ErrConflict = errors.New("shared store changed by another node")

// ErrReplica reports a file that is a replica where a standalone database
// was expected, or the reverse.
var ErrReplica = errors.New("replica and standalone database confused")

// ReplicaOptions tunes OpenReplica.
type ReplicaOptions struct {
	// Source names the shared store ("etcd prefix /dialgate/"); it is
	// recorded in a new replica and must match an existing one, so a copy
	// of one cluster's data is never taken for another's.
	Source string
	// Commit makes a transaction's writes durable in the shared store,
	// provided its last commit is still at mark, and returns the revision
	// of the new commit. It is called with the replica's write lock held
	// and the transaction still open, so it must not use the replica. An
	// error wrapping ErrConflict means another node got there first.
	Commit func(mark int64, ops []Op) (rev int64, err error)
	// Node names this PBX in the audit records it writes.
	Node string
	// MaxOps is how many writes the shared store takes in one
	// transaction (0: no bound). A change that writes more fails whole
	// in Commit; purges (expired grants, stale lockouts, old audit
	// records) instead delete a share of it each, so the daemon's purge,
	// which runs all three and audits each grant, always fits, and what
	// is left goes at the next purge.
	MaxOps int
	// Timeout bounds the wait for the file's lock (DefaultTimeout).
	Timeout time.Duration
}

// OpenReplica opens the replica at path, creating an empty one (and its
// directory) if there is no file. An empty replica has revision 0 and no
// buckets: it must be filled with ResetReplica before it is used. A file
// that is a standalone database is refused with ErrReplica: turning it
// into a replica would throw its data away.
func OpenReplica(path string, opts ReplicaOptions) (*DB, error) {
	if opts.Commit == nil {
		return nil, errors.New("open replica: no commit function")
	}
	timeout := lockTimeout(opts.Timeout)
	exists, err := checkedFile(path, path, timeout)
	if err != nil {
		return nil, err
	}
	if !exists {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create replica directory: %w", err)
		}
	}
	db, err := openRaw(path, timeout, exists)
	if err != nil {
		return nil, err
	}
	db.commit = opts.Commit
	db.node = opts.Node
	if opts.MaxOps > 0 {
		// Three purges, a grant costing four writes with its audit
		// record, and a few writes of bookkeeping: 4p + p + p + 8.
		db.purgeMax = max((opts.MaxOps-8)/6, 1)
	}
	db.grantIndexed = true // the shared store keeps every index current
	err = db.bolt.Update(func(tx *bbolt.Tx) error {
		rb := tx.Bucket(bucketReplica)
		if rb == nil {
			if tx.Bucket(bucketMeta) != nil {
				return newError(fmt.Sprintf("%s is a standalone dialgate database, not a replica of %s: move its data with \"dialgate store migrate --to etcd\"", path, opts.Source), ErrReplica, nil)
			}
			rb, err = tx.CreateBucket(bucketReplica)
			if err != nil {
				return err
			}
			return rb.Put(keyReplicaFrom, []byte(opts.Source))
		}
		if from := string(rb.Get(keyReplicaFrom)); from != opts.Source {
			return newError(fmt.Sprintf("%s is the replica of %s, not of %s: give this store its own replica file", path, from, opts.Source), ErrReplica, nil)
		}
		return nil
	})
	if err != nil {
		_ = db.bolt.Close()
		return nil, fmt.Errorf("open replica %s: %w", path, err)
	}
	return db, nil
}

// openRaw opens the bbolt file at path without looking at its content.
func openRaw(path string, timeout time.Duration, exists bool) (*DB, error) {
	db, err := openBolt(path, path, timeout, exists, Options{Create: true, raw: true})
	if err != nil {
		return nil, err
	}
	return db, nil
}

func isReplica(tx *bbolt.Tx) bool { return tx.Bucket(bucketReplica) != nil }

// ReplicaState returns the revision of the shared store the replica holds
// (0: never filled) and the mark a commit must match.
func (db *DB) ReplicaState() (rev, mark int64, err error) {
	err = db.bolt.View(func(tx *bbolt.Tx) error {
		rev, mark = replicaState(tx)
		return nil
	})
	return rev, mark, err
}

func replicaState(tx *bbolt.Tx) (rev, mark int64) {
	rb := tx.Bucket(bucketReplica)
	if rb == nil {
		return 0, 0
	}
	return getInt(rb.Get(keyReplicaRev)), getInt(rb.Get(keyReplicaMark))
}

func getInt(b []byte) int64 {
	if len(b) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

func setReplicaState(tx *bbolt.Tx, rev, mark int64) error {
	rb := tx.Bucket(bucketReplica)
	if err := rb.Put(keyReplicaRev, binary.BigEndian.AppendUint64(nil, uint64(rev))); err != nil {
		return err
	}
	return rb.Put(keyReplicaMark, binary.BigEndian.AppendUint64(nil, uint64(mark)))
}

// updateReplica is Update on a replica: fn runs on the local copy, its
// writes go to the shared store, and the copy commits only if they were
// accepted there. One attempt: on ErrConflict the caller waits for the
// replica to catch up and runs fn again.
func (db *DB) updateReplica(fn func(Tx) error) error {
	return db.bolt.Update(func(btx *bbolt.Tx) error {
		rev, mark := replicaState(btx)
		if rev == 0 {
			return noDatabase(db.path, "is a replica that was never filled from the shared store")
		}
		ws := &writeSet{}
		t := &boltTx{tx: btx, grantIndex: true, ws: ws, node: db.node, purgeMax: db.purgeMax}
		err := fn(t)
		t.finish()
		if err != nil || len(ws.ops) == 0 {
			return err
		}
		next, err := db.commit(mark, ws.ops)
		if err != nil {
			return err
		}
		// Nothing of ours can have come between mark and next (the commit
		// would have failed), so the copy now holds revision next.
		return setReplicaState(btx, max(rev, next), next)
	})
}

// Change is what the shared store reports of one of its revisions: the
// writes made at Rev and, if a node's commit was among them, the mark it
// left (else 0).
type Change struct {
	Rev  int64
	Mark int64
	Ops  []Op
}

// ApplyChanges applies, in one transaction and in order, the changes the
// replica does not hold yet (its own commits come back this way and are
// skipped). It reports whether anything was applied, and what the
// applied changes can have moved in the firewall.
func (db *DB) ApplyChanges(changes []Change) (bool, Touched, error) {
	applied := false
	var touched Touched
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		have, mark := replicaState(tx)
		if have == 0 {
			return noDatabase(db.path, "is a replica that was never filled from the shared store")
		}
		for _, c := range changes {
			if c.Rev <= have {
				continue
			}
			for _, op := range c.Ops {
				touchedBy(tx, op, &touched)
			}
			if err := applyOps(tx, c.Ops); err != nil {
				return fmt.Errorf("revision %d: %w", c.Rev, err)
			}
			applied = true
			have = c.Rev
			if c.Mark != 0 {
				mark = c.Mark
			}
		}
		if !applied {
			return nil
		}
		return setReplicaState(tx, have, mark)
	})
	if err != nil {
		return false, Touched{}, fmt.Errorf("replica %s: %w", db.path, err)
	}
	touched.compact()
	return applied, touched, nil
}

// ReplicaOrigin is the origin ResetReplica last recorded ("" if none).
func (db *DB) ReplicaOrigin() (string, error) {
	var origin string
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if rb := tx.Bucket(bucketReplica); rb != nil {
			origin = string(rb.Get(keyReplicaOrigin))
		}
		return nil
	})
	return origin, err
}

// ResetReplica replaces everything the replica holds by ops, the whole
// content of the shared store instance origin at revision rev, in one
// transaction: a crash leaves the old copy. ops must hold a dialgate
// database of this schema version (ErrNoDatabase, ErrSchema otherwise): a
// replica is never filled with nothing.
func (db *DB) ResetReplica(rev, mark int64, origin string, ops []Op) error {
	if err := checkSchemaOps(ops); err != nil {
		return fmt.Errorf("replica %s: %w", db.path, err)
	}
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		var names [][]byte
		err := tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
			if !bytes.Equal(name, bucketReplica) {
				names = append(names, slices.Clone(name))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, name := range names {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		if err := applyOps(tx, ops); err != nil {
			return err
		}
		if err := tx.Bucket(bucketReplica).Put(keyReplicaOrigin, []byte(origin)); err != nil {
			return err
		}
		return setReplicaState(tx, rev, mark)
	})
	if err != nil {
		return fmt.Errorf("replica %s: load revision %d: %w", db.path, rev, err)
	}
	return nil
}

// checkSchemaOps finds the schema version among ops.
func checkSchemaOps(ops []Op) error {
	for _, op := range ops {
		if op.Bucket == string(bucketMeta) && bytes.Equal(op.Key, keySchema) && !op.Delete {
			v, err := strconv.Atoi(string(op.Value))
			if err != nil || v != SchemaVersion {
				return newError(fmt.Sprintf("the shared store holds schema version %q, this dialgate supports %d", op.Value, SchemaVersion), ErrSchema, err)
			}
			return nil
		}
	}
	return newError("the shared store holds no dialgate database (no schema version): run \"dialgate init\" or \"dialgate store migrate --to etcd\" first", ErrNoDatabase, nil)
}

// checkOp refuses a record this dialgate cannot read: whatever wrote it
// (a newer dialgate, a hand edit in etcd), a replica that took it would
// fail every read after, and the firewall with it. The change is refused
// whole and the replica keeps its last state.
func checkOp(op Op) error {
	if op.Delete || op.Seq {
		return nil
	}
	var err error
	k := string(op.Key)
	switch op.Bucket {
	case string(bucketAccounts):
		err = decodeRecord(op.Value, &accountV1{}, accountName(k))
	case string(bucketEntries):
		_, err = decodeEntry(op.Key, op.Value)
	case string(bucketGrants):
		_, err = decodeGrant(op.Key, op.Value)
	case string(bucketFQDN):
		err = decodeRecord(op.Value, &fqdnV1{}, fqdnName(k))
	case string(bucketLockouts):
		err = decodeRecord(op.Value, &lockoutV1{}, lockoutName(k))
	case string(bucketAudit):
		err = decodeRecord(op.Value, &auditV1{}, "audit record")
	}
	return err
}

// applyOps writes ops into tx's buckets, creating a bucket the first time
// the shared store names it (a later version's index, say). Every bucket
// of the schema is made: a shared store has no empty buckets.
func applyOps(tx *bbolt.Tx, ops []Op) error {
	for _, name := range slices.Concat(allBuckets, [][]byte{bucketDoorIndex, bucketEntryIndex, bucketGrantIndex}) {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	for _, op := range ops {
		if op.Bucket == "" || op.Bucket == string(bucketReplica) {
			return fmt.Errorf("change to bucket %q refused", op.Bucket)
		}
		if err := checkOp(op); err != nil {
			return fmt.Errorf("bucket %q: %w", op.Bucket, err)
		}
		b, err := tx.CreateBucketIfNotExists([]byte(op.Bucket))
		if err != nil {
			return fmt.Errorf("bucket %q: %w", op.Bucket, err)
		}
		switch {
		case op.Seq:
			if len(op.Value) != 8 {
				return fmt.Errorf("bucket %q: sequence of %d bytes", op.Bucket, len(op.Value))
			}
			err = b.SetSequence(binary.BigEndian.Uint64(op.Value))
		case op.Delete:
			err = b.Delete(op.Key)
		default:
			err = b.Put(op.Key, op.Value)
		}
		if err != nil {
			return fmt.Errorf("bucket %q key %q: %w", op.Bucket, op.Key, err)
		}
	}
	return nil
}

// Ops calls fn with every key and every non-zero sequence of the database,
// bucket by bucket in key order, from one read transaction: what a shared
// store must hold to be this database. A replica's own bookkeeping is
// left out.
func (db *DB) Ops(fn func(Op) error) error {
	return db.bolt.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			if bytes.Equal(name, bucketReplica) {
				return nil
			}
			if n := b.Sequence(); n != 0 {
				if err := fn(Op{Bucket: string(name), Seq: true, Value: seqKey(n)}); err != nil {
					return err
				}
			}
			return b.ForEach(func(k, v []byte) error {
				if v == nil {
					return fmt.Errorf("bucket %q: nested bucket %q is not part of a dialgate database", name, k)
				}
				return fn(Op{Bucket: string(name), Key: clone(k), Value: clone(v)})
			})
		})
	})
}

// CreateFromOps makes a new standalone database at path holding ops (the
// content of a shared store), in one transaction of a temporary file that
// is renamed over path only once it is complete and opens cleanly: path
// must not exist (ErrExists), so no database is ever overwritten.
func CreateFromOps(path string, ops []Op) error {
	if err := checkSchemaOps(ops); err != nil {
		return err
	}
	if _, err := os.Lstat(path); err == nil {
		return newError(fmt.Sprintf("%s already exists: move it away first, it is not overwritten", path), ErrExists, nil)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_ = f.Close()
	_ = os.Remove(tmp) // bbolt wants to create it
	defer os.Remove(tmp)
	db, err := openRaw(tmp, DefaultTimeout, false)
	if err != nil {
		return err
	}
	err = db.bolt.Update(func(tx *bbolt.Tx) error { return applyOps(tx, ops) })
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	check, err := Open(tmp, Options{})
	if err != nil {
		return fmt.Errorf("create %s: the copy does not open: %w", path, err)
	}
	if err := check.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}
