package store

import (
	"errors"
	"slices"

	"go.etcd.io/bbolt"
)

// Touched says what changes applied to a replica can have moved in the
// firewall: the addresses (IP or CIDR values of entries, grants and FQDN
// records, before and after), or Full when a change may have moved
// anything (an account's permissions, a setting, an FQDN entry whose
// addresses live elsewhere). Index, audit and lockout writes move
// nothing. A node applies another node's change to its kernel for these
// addresses alone, as the node that made it did.
type Touched struct {
	Full   bool
	Values []string
}

// Any reports whether the kernel has anything to follow.
func (t Touched) Any() bool { return t.Full || len(t.Values) > 0 }

// Merge adds o to t.
func (t *Touched) Merge(o Touched) {
	t.Full = t.Full || o.Full
	if !t.Full {
		t.Values = append(t.Values, o.Values...)
	} else {
		t.Values = nil
	}
}

// errFull: a record whose change may move anything.
var errFull = errors.New("may move anything")

// touchedBy notes what op moves, reading the record it replaces from tx
// before it is applied.
func touchedBy(tx *bbolt.Tx, op Op, t *Touched) {
	if t.Full || op.Seq {
		return
	}
	var old []byte
	if b := tx.Bucket([]byte(op.Bucket)); b != nil {
		old = b.Get(op.Key)
	}
	var values func(v []byte) ([]string, error)
	switch op.Bucket {
	case string(bucketAudit), string(bucketLockouts), string(bucketDoorIndex), string(bucketEntryIndex), string(bucketGrantIndex):
		return
	case string(bucketGrants):
		values = func(v []byte) ([]string, error) {
			g, err := decodeGrant(op.Key, v)
			return []string{g.IP}, err
		}
	case string(bucketEntries):
		values = func(v []byte) ([]string, error) {
			e, err := decodeEntry(op.Key, v)
			if err == nil && e.Kind == KindFQDN {
				err = errFull // its addresses are in the FQDN records
			}
			return []string{e.Value}, err
		}
	case string(bucketFQDN):
		values = func(v []byte) ([]string, error) {
			var rec fqdnV1
			err := decodeRecord(v, &rec, fqdnName(string(op.Key)))
			return rec.fqdn().Addrs, err
		}
	default:
		t.Full = true
	}
	for _, v := range [][]byte{old, op.Value} {
		if v == nil || t.Full {
			continue
		}
		vs, err := values(v)
		if err != nil {
			t.Full = true
			break
		}
		t.Values = append(t.Values, vs...)
	}
	if t.Full {
		t.Values = nil
	}
}

// compact sorts and dedups the values.
func (t *Touched) compact() {
	slices.Sort(t.Values)
	t.Values = slices.Compact(t.Values)
}
