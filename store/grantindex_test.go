package store

import (
	"slices"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

func grantIDs(gs []Grant) []string {
	out := []string{}
	for _, g := range gs {
		out = append(out, g.ID)
	}
	return out
}

func checkGrantLookups(t *testing.T, db Store, byAccount, byIP map[string][]string) {
	t.Helper()
	mustView(t, db, func(tx Tx) error {
		for a, want := range byAccount {
			gs, err := tx.GrantsOfAccount(a)
			if err != nil {
				return err
			}
			if got := grantIDs(gs); !slices.Equal(got, want) {
				t.Errorf("GrantsOfAccount(%q) = %v, want %v", a, got, want)
			}
		}
		for ip, want := range byIP {
			gs, err := tx.GrantsByIP(ip)
			if err != nil {
				return err
			}
			if got := grantIDs(gs); !slices.Equal(got, want) {
				t.Errorf("GrantsByIP(%q) = %v, want %v", ip, got, want)
			}
		}
		return nil
	})
}

// A database written without the grant index (an older dialgate adds a
// grant and moves another, knowing no index) is indexed again by Open;
// read-only, lookups scan. The suite checks the lookups on live writes.
func TestGrantIndexRebuilt(t *testing.T) {
	db := openTest(t)
	exp := time.Now().Add(time.Hour)
	mustUpdate(t, db, func(tx Tx) error {
		for _, a := range []string{"alice", "bob"} {
			if err := tx.CreateAccount(Account{Name: a, Perms: NewPermSet(0), Enabled: true}); err != nil {
				return err
			}
		}
		for _, g := range []Grant{
			{Account: "alice", IP: "203.0.113.7", Expires: exp},              // g1
			{Account: "bob", IP: "203.0.113.7", Expires: exp},                // g2
			{Account: "alice", IP: "203.0.113.70", Expires: exp},             // g3
			{Account: "alice", IP: "203.0.113.8", Expires: time.Unix(10, 0)}, // g4, expired
		} {
			if _, err := tx.PutGrant(g); err != nil {
				return err
			}
		}
		g, err := tx.Grant("g3")
		if err != nil {
			return err
		}
		g.IP = "198.51.100.9"
		if _, err := tx.PutGrant(g); err != nil {
			return err
		}
		if _, err := tx.DeleteGrant("g1"); err != nil {
			return err
		}
		if _, err := tx.PurgeExpiredGrants(time.Now()); err != nil {
			return err
		}
		_, _, err = tx.DeleteAccount("bob")
		return err
	})

	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketGrants)
		n, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := b.Put(seqKey(n), []byte(`{"v":1,"account":"alice","ip":"192.0.2.5","perms":[1],"expires":"2099-01-01T00:00:00Z"}`)); err != nil {
			return err
		}
		return b.Put(seqKey(3), []byte(`{"v":1,"account":"alice","ip":"192.0.2.6","perms":[1],"expires":"2099-01-01T00:00:00Z"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	path := db.Path()
	db.Close()
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"192.0.2.5": {"g5"}, "192.0.2.6": {"g3"}, "198.51.100.9": {}}
	checkGrantLookups(t, ro, map[string][]string{"alice": {"g3", "g5"}}, want)
	ro.Close()
	rw, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	checkGrantLookups(t, rw, map[string][]string{"alice": {"g3", "g5"}}, want)
}
