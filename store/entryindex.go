package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"go.etcd.io/bbolt"
)

// The entry index finds the entries with a given value, and those of a
// given account, with a prefix scan instead of a pass over every entry:
// adding one entry, checking it is not a duplicate, or computing the
// kernel members behind one address then costs the same at 10 000
// entries as at ten, and a bulk import is linear instead of quadratic.
//
// Keys (the entry's 8-byte record key last, so a prefix scan yields
// entries in ID order):
//
//	"v\x00" + value   + "\x00" + key -> empty
//	"a\x00" + account + "\x00" + key -> empty
//	"seq"                            -> the entries bucket's sequence when
//	                                    the index was last brought up to date
//
// Like the door index it is derived: AddEntry, DeleteEntry and the account
// deletion keep it in step in their own transaction, and Open builds it
// when it is missing. The records remain the truth: every lookup reads the
// entry a key points at and checks it still has that value or account, so
// a stale key is skipped, never believed. A key can only be missing if
// something wrote entries without maintaining the index (an older dialgate
// on this file); such a writer advances the entries bucket's sequence
// without updating "seq", and Open rebuilds the index when the two differ.
var bucketEntryIndex = []byte("entryindex")

var keyEntryIndexSeq = []byte("seq")

const (
	entryByValue   = 'v'
	entryByAccount = 'a'
)

func entryIndexPrefix(kind byte, s string) []byte {
	p := make([]byte, 0, len(s)+3)
	p = append(p, kind, 0)
	p = append(p, s...)
	return append(p, 0)
}

// entryIndexKeys are the index keys of entry e stored under key.
func entryIndexKeys(e Entry, key []byte) [][]byte {
	return [][]byte{
		append(entryIndexPrefix(entryByValue, e.Value), key...),
		append(entryIndexPrefix(entryByAccount, e.Account), key...),
	}
}

// validIndexable refuses what would blur the parts of an index key.
func validIndexable(e Entry) error {
	if strings.IndexByte(e.Value, 0) >= 0 {
		return invalidf("entry %q: value contains a NUL byte", e.Value)
	}
	if strings.IndexByte(e.Account, 0) >= 0 {
		return invalidf("entry %q: account name contains a NUL byte", e.Value)
	}
	if k := len(entryIndexPrefix(entryByValue, e.Value)) + 8; k > bbolt.MaxKeySize {
		return invalidf("entry value of %d bytes is too long", len(e.Value))
	}
	return nil
}

// indexEntry adds e's keys. When the index was current before the entry
// was written (wasCurrent), it records the entries bucket's sequence so
// it stays current; a stale index stays marked stale.
func indexEntry(idx, entries bucket, e Entry, key []byte, wasCurrent bool) error {
	for _, k := range entryIndexKeys(e, key) {
		if err := idx.Put(k, []byte{}); err != nil {
			return fmt.Errorf("%s: entry index: write: %w", entryName(e.ID), err)
		}
	}
	if !wasCurrent {
		return nil
	}
	return putIndexSeq(idx, entries)
}

func unindexEntry(idx bucket, e Entry, key []byte) error {
	for _, k := range entryIndexKeys(e, key) {
		if err := idx.Delete(k); err != nil {
			return fmt.Errorf("%s: entry index: delete: %w", entryName(e.ID), err)
		}
	}
	return nil
}

func putIndexSeq(idx, entries bucket) error {
	if err := idx.Put(keyEntryIndexSeq, binary.BigEndian.AppendUint64(nil, entries.Sequence())); err != nil {
		return fmt.Errorf("entry index: write sequence: %w", err)
	}
	return nil
}

// entryIndexCurrent reports whether the index exists and saw every entry
// written: its recorded sequence is the entries bucket's.
func entryIndexCurrent(tx *bbolt.Tx) bool {
	idx := tx.Bucket(bucketEntryIndex)
	if idx == nil {
		return false
	}
	seq := idx.Get(keyEntryIndexSeq)
	return len(seq) == 8 && binary.BigEndian.Uint64(seq) == tx.Bucket(bucketEntries).Sequence()
}

// buildEntryIndex (re)creates the index from the entries.
func buildEntryIndex(tx *bbolt.Tx) error {
	if tx.Bucket(bucketEntryIndex) != nil {
		if err := tx.DeleteBucket(bucketEntryIndex); err != nil {
			return fmt.Errorf("drop stale entry index: %w", err)
		}
	}
	idx, err := tx.CreateBucket(bucketEntryIndex)
	if err != nil {
		return fmt.Errorf("create bucket %q: %w", bucketEntryIndex, err)
	}
	entries := tx.Bucket(bucketEntries)
	err = entries.ForEach(func(k, v []byte) error {
		e, err := decodeEntry(k, v)
		if err != nil {
			return err
		}
		for _, ik := range entryIndexKeys(e, k) {
			if err := idx.Put(ik, []byte{}); err != nil {
				return fmt.Errorf("%s: entry index: write: %w", entryName(e.ID), err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return putIndexSeq(plain(idx), plain(entries))
}

// entriesIndexed returns, in ID order, the entries the index lists under
// prefix that still satisfy match (the record is checked, not the key).
// A database opened read-only is not repaired by Open: with a missing or
// stale index it scans every entry instead, slower but right.
func (t *boltTx) entriesIndexed(kind byte, s string, match func(Entry) bool) ([]Entry, error) {
	b, err := t.bucket(bucketEntries)
	if err != nil {
		return nil, err
	}
	if !entryIndexCurrent(t.tx) {
		return entriesWhere(b, match)
	}
	idx, err := t.bucket(bucketEntryIndex)
	if err != nil {
		return nil, err
	}
	return indexLookup(idx, b, entryIndexPrefix(kind, s), decodeEntry, match)
}

// indexLookup reads, in key order, the records of records that the index
// idx lists under prefix (each index key is prefix + the record's 8-byte
// key) and keeps those that still satisfy match: a stale key, whose
// record is gone or no longer matches, is skipped, never believed.
func indexLookup[T any](idx, records bucket, prefix []byte, decode func(k, v []byte) (T, error), match func(T) bool) ([]T, error) {
	var out []T
	c := idx.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		key := k[len(prefix):]
		if len(key) != 8 {
			continue // a longer value sharing the prefix cannot: values hold no NUL
		}
		data := records.Get(key)
		if data == nil {
			continue // stale: the record is gone
		}
		r, err := decode(key, data)
		if err != nil {
			return nil, err
		}
		if match(r) {
			out = append(out, r)
		}
	}
	return out, nil
}
