package store

import (
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

func indexGrant(idx bucket, g Grant, key []byte) error {
	for _, k := range grantIndexKeys(g, key) {
		if err := idx.Put(k, []byte{}); err != nil {
			return fmt.Errorf("%s: grant index: write: %w", grantName(g.ID), err)
		}
	}
	return nil
}

func unindexGrant(idx bucket, g Grant, key []byte) error {
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
		g, err := decodeGrant(k, v)
		if err != nil {
			return err
		}
		return indexGrant(plain(idx), g, k)
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
	idx := t.bkt(bucketGrantIndex)
	if !t.grantIndex || !idx.exists() {
		return grantsWhere(b, match)
	}
	return indexLookup(idx, b, entryIndexPrefix(kind, s), decodeGrant, match)
}

func (t *boltTx) GrantsOfAccount(name string) ([]Grant, error) {
	return t.grantsIndexed(grantByAccount, name, func(g Grant) bool { return g.Account == name })
}

func (t *boltTx) GrantsByIP(ip string) ([]Grant, error) {
	return t.grantsIndexed(grantByIP, ip, func(g Grant) bool { return g.IP == ip })
}
