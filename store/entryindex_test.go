package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// entryIDs lists the IDs of es, for comparing lookups.
func entryIDs(es []Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func seedEntries(t *testing.T, db Store) {
	t.Helper()
	mustUpdate(t, db, func(tx Tx) error {
		for _, a := range []string{"alice", "bob", "al"} {
			if err := tx.CreateAccount(Account{Name: a, Perms: NewPermSet(0), Enabled: true}); err != nil {
				return err
			}
		}
		for _, e := range []Entry{
			{Account: "alice", Kind: KindIP, Value: "203.0.113.7"},       // e1
			{Account: "bob", Kind: KindIP, Value: "203.0.113.7"},         // e2
			{Account: "alice", Kind: KindCIDR, Value: "198.51.100.0/24"}, // e3
			{Account: "al", Kind: KindIP, Value: "203.0.113.70"},         // e4: value and account share prefixes
			{Account: "alice", Kind: KindFQDN, Value: "pbx.example.org"}, // e5
		} {
			if _, err := tx.AddEntry(e); err != nil {
				return err
			}
		}
		return nil
	})
}

type entryLookups struct {
	byValue   map[string][]string
	byAccount map[string][]string
}

func checkEntryLookups(t *testing.T, db Store, want entryLookups) {
	t.Helper()
	err := db.View(func(tx Tx) error {
		for v, ids := range want.byValue {
			es, err := tx.EntriesByValue(v)
			if err != nil {
				return err
			}
			if got := entryIDs(es); !slices.Equal(got, ids) {
				t.Errorf("EntriesByValue(%q) = %v, want %v", v, got, ids)
			}
		}
		for a, ids := range want.byAccount {
			es, err := tx.EntriesOfAccount(a)
			if err != nil {
				return err
			}
			if got := entryIDs(es); !slices.Equal(got, ids) {
				t.Errorf("EntriesOfAccount(%q) = %v, want %v", a, got, ids)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// An index that is missing, or that an older dialgate left behind while
// adding entries without it, is rebuilt by Open; a read-only Open, which
// cannot rebuild, scans instead. Either way no entry is missed.
func TestEntryIndexRebuilt(t *testing.T) {
	// An entry record as a dialgate without the index writes it.
	oldWriter := func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		n, err := b.NextSequence()
		if err != nil {
			return err
		}
		rec := `{"v":1,"account":"bob","kind":"ip","value":"192.0.2.55","perms":[8]}`
		return b.Put(seqKey(n), []byte(rec))
	}
	want := entryLookups{
		byValue:   map[string][]string{"192.0.2.55": {"e6"}, "203.0.113.7": {"e1", "e2"}},
		byAccount: map[string][]string{"bob": {"e2", "e6"}},
	}
	for _, tt := range []struct {
		name string
		edit func(tx *bbolt.Tx) error
	}{
		{"index missing", func(tx *bbolt.Tx) error {
			if err := oldWriter(tx); err != nil {
				return err
			}
			return tx.DeleteBucket(bucketEntryIndex)
		}},
		{"entries added behind the index's back", oldWriter},
		{"stale keys of deleted entries", func(tx *bbolt.Tx) error {
			if err := oldWriter(tx); err != nil {
				return err
			}
			return tx.Bucket(bucketEntries).Delete(seqKey(3))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t)
			seedEntries(t, db)
			if err := db.bolt.Update(tt.edit); err != nil {
				t.Fatal(err)
			}
			path := db.Path()
			db.Close()

			ro, err := Open(path, Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			checkEntryLookups(t, ro, want)
			ro.Close()

			rw, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer rw.Close()
			rw.bolt.View(func(tx *bbolt.Tx) error {
				if !entryIndexCurrent(tx) {
					t.Error("Open left the index stale")
				}
				return nil
			})
			checkEntryLookups(t, rw, want)
			// and a duplicate of the entry the old writer added is caught
			err = rw.Update(func(tx Tx) error {
				_, err := tx.AddEntry(Entry{Account: "bob", Kind: KindIP, Value: "192.0.2.55"})
				return err
			})
			if !errors.Is(err, ErrExists) {
				t.Errorf("duplicate after rebuild: %v", err)
			}
		})
	}
}

// BenchmarkAddEntry adds one entry (and takes it out again) to a
// whitelist of 100 and of 10 000 entries; the ratio says whether adding
// grows with the whitelist (it should not: the duplicate check and every
// lookup go through the index).
func BenchmarkAddEntry(b *testing.B) {
	per := map[int]float64{}
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			db, err := Open(b.TempDir()+"/dialgate.db", Options{Create: true})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			err = db.Update(func(tx Tx) error {
				if err := tx.CreateAccount(Account{Name: "alice", Perms: NewPermSet(0), Enabled: true}); err != nil {
					return err
				}
				for i := range n {
					v := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
					if _, err := tx.AddEntry(Entry{Account: "alice", Kind: KindIP, Value: v, Created: time.Now()}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				err := db.Update(func(tx Tx) error {
					e, err := tx.AddEntry(Entry{Account: "alice", Kind: KindIP, Value: "192.0.2.1"})
					if err != nil {
						return err
					}
					_, err = tx.DeleteEntry(e.ID)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			per[n] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if n == 10000 && per[100] > 0 {
				b.ReportMetric(per[10000]/per[100], "x-of-100")
			}
		})
	}
}

// After adds, updates and deletes the index holds exactly the live
// entries' keys (and its sequence); the suite checks the lookups.
func TestEntryIndexHoldsOnlyLiveKeys(t *testing.T) {
	db := openTest(t)
	seedEntries(t, db)
	mustUpdate(t, db, func(tx Tx) error {
		if _, err := tx.AddEntry(Entry{Account: "al", Kind: KindIP, Value: "203.0.113.7"}); err != nil {
			return err
		}
		e, err := tx.Entry("e3")
		if err != nil {
			return err
		}
		e.Perms, e.Comment = NewPermSet(1, 2), "branch office"
		if _, err := tx.UpdateEntry(e); err != nil {
			return err
		}
		if _, err := tx.DeleteEntry("e1"); err != nil {
			return err
		}
		_, _, err = tx.DeleteAccount("bob")
		return err
	})
	var keys int
	db.bolt.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketEntryIndex).ForEach(func(k, v []byte) error { keys++; return nil })
	})
	if keys != 2*4+1 {
		t.Errorf("index holds %d keys, want %d (2 per live entry + sequence)", keys, 2*4+1)
	}
}
