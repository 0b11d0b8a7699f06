package store

import (
	"go.etcd.io/bbolt"
)

// bucket is a bbolt bucket whose writes are also noted in a write set
// when the database is the local replica of a shared store: the write set
// is what the replica sends to the shared store to commit (see Replica).
// Reads go straight to bbolt. With ws nil (a standalone database, or a
// transaction of Open's own upkeep) it is the bbolt bucket unchanged.
type bucket struct {
	*bbolt.Bucket
	name string
	ws   *writeSet
}

func (b bucket) Put(key, value []byte) error {
	if err := b.Bucket.Put(key, value); err != nil {
		return err
	}
	b.ws.put(b.name, key, value)
	return nil
}

func (b bucket) Delete(key []byte) error {
	if err := b.Bucket.Delete(key); err != nil {
		return err
	}
	b.ws.del(b.name, key)
	return nil
}

func (b bucket) NextSequence() (uint64, error) {
	n, err := b.Bucket.NextSequence()
	if err == nil {
		b.ws.seq(b.name, n)
	}
	return n, err
}

func (b bucket) SetSequence(n uint64) error {
	if err := b.Bucket.SetSequence(n); err != nil {
		return err
	}
	b.ws.seq(b.name, n)
	return nil
}

// exists says the bucket is in the database: the indexes may be missing
// from a database Open did not upgrade (read-only).
func (b bucket) exists() bool { return b.Bucket != nil }

// plain wraps a bucket of Open's own upkeep, whose writes are never sent
// anywhere.
func plain(b *bbolt.Bucket) bucket { return bucket{Bucket: b} }
