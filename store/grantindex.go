package store

import (
	"bytes"
	"fmt"

	"go.etcd.io/bbolt"
)

// The grant index finds an account's grants, and the grants for an
// address, without decoding every grant: a phone-door or registration
// grant then costs the same with thousands of live grants as with one.
//
// Keys (the grant's 8-byte record key last):
//
//	"a\x00" + account + "\x00" + key -> empty
//	"i\x00" + ip      + "\x00" + key -> empty
//
// Grants are few next to entries (accounts x max_grants) and short-lived,
// so Open simply rebuilds the index every time it opens the database for
// writing: whatever wrote the file before (an older dialgate, which knew
// no index), the index this process uses is complete. A read-only Open
// builds nothing, and lookups then scan. The records remain the truth:
// every lookup checks the record it finds.
var bucketGrantIndex = []byte("grantindex")

const (
	grantByAccount = 'a'
	grantByIP      = 'i'
)

func grantIndexKeys(g Grant, key []byte) [][]byte {
	return [][]byte{
		append(entryIndexPrefix(grantByAccount, g.Account), key...),
		append(entryIndexPrefix(grantByIP, g.IP), key...),
	}
}

func indexGrant(idx *bbolt.Bucket, g Grant, key []byte) error {
	for _, k := range grantIndexKeys(g, key) {
		if err := idx.Put(k, []byte{}); err != nil {
			return fmt.Errorf("%s: grant index: write: %w", grantName(g.ID), err)
		}
	}
	return nil
}

func unindexGrant(idx *bbolt.Bucket, g Grant, key []byte) error {
	for _, k := range grantIndexKeys(g, key) {
		if err := idx.Delete(k); err != nil {
			return fmt.Errorf("%s: grant index: delete: %w", grantName(g.ID), err)
		}
	}
	return nil
}

// buildGrantIndex (re)creates the index from the grants.
func buildGrantIndex(tx *bbolt.Tx) error {
	if tx.Bucket(bucketGrantIndex) != nil {
		if err := tx.DeleteBucket(bucketGrantIndex); err != nil {
			return fmt.Errorf("drop grant index: %w", err)
		}
	}
	idx, err := tx.CreateBucket(bucketGrantIndex)
	if err != nil {
		return fmt.Errorf("create bucket %q: %w", bucketGrantIndex, err)
	}
	return tx.Bucket(bucketGrants).ForEach(func(k, v []byte) error {
		id, err := idFromKey('g', k)
		if err != nil {
			return err
		}
		var rec grantV1
		if err := decodeRecord(v, &rec, grantName(id)); err != nil {
			return err
		}
		return indexGrant(idx, rec.grant(id), k)
	})
}

// grantsIndexed returns, in ID order, the grants the index lists under
// kind and s that still satisfy match; without the index (a read-only
// database) it scans every grant.
func (t *boltTx) grantsIndexed(kind byte, s string, match func(Grant) bool) ([]Grant, error) {
	b, err := t.bucket(bucketGrants)
	if err != nil {
		return nil, err
	}
	idx := t.tx.Bucket(bucketGrantIndex)
	if !t.grantIndex || idx == nil {
		return grantsWhere(b, match)
	}
	prefix := entryIndexPrefix(kind, s)
	var out []Grant
	c := idx.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		key := k[len(prefix):]
		if len(key) != 8 {
			continue
		}
		data := b.Get(key)
		if data == nil {
			continue
		}
		id, err := idFromKey('g', key)
		if err != nil {
			return nil, err
		}
		var rec grantV1
		if err := decodeRecord(data, &rec, grantName(id)); err != nil {
			return nil, err
		}
		if g := rec.grant(id); match(g) {
			out = append(out, g)
		}
	}
	return out, nil
}

func (t *boltTx) GrantsOfAccount(name string) ([]Grant, error) {
	return t.grantsIndexed(grantByAccount, name, func(g Grant) bool { return g.Account == name })
}

func (t *boltTx) GrantsByIP(ip string) ([]Grant, error) {
	return t.grantsIndexed(grantByIP, ip, func(g Grant) bool { return g.IP == ip })
}
