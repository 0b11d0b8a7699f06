package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bolterrors "go.etcd.io/bbolt/errors"
)

var t0 = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)

func mustUpdate(t *testing.T, db Store, fn func(Tx) error) {
	t.Helper()
	if err := db.Update(fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func mustView(t *testing.T, db Store, fn func(Tx) error) {
	t.Helper()
	if err := db.View(fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

func TestRoundTripThroughReopen(t *testing.T) {
	db := openTest(t)

	bob := Account{
		Name: "bob", Perms: NewPermSet(1, 2, 8), Comment: "road warrior", Created: t0,
		Enabled: true, GrantLifetime: 8 * time.Hour, MaxGrants: 3, Extension: "201",
		MayKeyIP: true, PasscodeHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
	}
	office := Account{Name: "office", Perms: NewPermSet(PermAll), Created: t0.Add(time.Minute)}
	entries := []Entry{
		{Account: "bob", Kind: KindIP, Value: "203.0.113.7", Comment: "hotel", Created: t0},
		{Account: "office", Kind: KindCIDR, Value: "198.51.100.0/24", Perms: NewPermSet(4), Created: t0},
		{Account: "office", Kind: KindFQDN, Value: "pbx.example.org", Created: t0, Provider: "voipco"},
		{Account: "office", Kind: KindCIDR, Value: "0.0.0.0/0", Force: true, Created: t0},
	}
	grant := Grant{
		Account: "bob", IP: "2001:db8::7", Perms: NewPermSet(1), Created: t0,
		Expires: t0.Add(8 * time.Hour), Source: "phone", CallerID: "+15551234567", Channel: "PJSIP/201-00000001",
	}
	fqdn := FQDNRecord{
		Name: "pbx.example.org", Addrs: []string{"192.0.2.1", "2001:db8::1"},
		LastSuccess: t0, LastAttempt: t0.Add(5 * time.Minute), LastError: "i/o timeout",
	}
	audit := AuditRecord{Time: t0, Action: "grant", Actor: "phone", Account: "bob", Subject: "2001:db8::7", Result: "ok", Detail: "8h"}
	lockout := Lockout{Key: "callerid:+15551234567", Failures: []time.Time{t0, t0.Add(time.Second)}, LockedUntil: t0.Add(15 * time.Minute)}

	var added []Entry
	mustUpdate(t, db, func(tx Tx) error {
		if err := tx.CreateAccount(bob); err != nil {
			return err
		}
		if err := tx.CreateAccount(office); err != nil {
			return err
		}
		for _, e := range entries {
			e, err := tx.AddEntry(e)
			if err != nil {
				return err
			}
			added = append(added, e)
		}
		g, err := tx.PutGrant(grant)
		if err != nil {
			return err
		}
		grant = g
		if err := tx.PutFQDN(fqdn); err != nil {
			return err
		}
		if err := tx.Audit(audit); err != nil {
			return err
		}
		return tx.PutLockout(lockout)
	})
	if grant.ID != "g1" {
		t.Errorf("grant ID = %q, want g1", grant.ID)
	}

	db = reopen(t, db)
	mustView(t, db, func(tx Tx) error {
		check := func(what string, got, want any, err error) {
			t.Helper()
			if err != nil {
				t.Errorf("%s: %v", what, err)
			} else if !reflect.DeepEqual(got, want) {
				t.Errorf("%s:\n got %#v\nwant %#v", what, got, want)
			}
		}
		a, err := tx.Account("bob")
		check("account", a, bob, err)
		// GoString redacts the hash, so compare it separately.
		if a.PasscodeHash != bob.PasscodeHash {
			t.Errorf("passcode hash = %q, want %q", a.PasscodeHash, bob.PasscodeHash)
		}
		as, err := tx.Accounts()
		check("accounts", as, []Account{bob, office}, err)

		es, err := tx.Entries()
		check("entries", es, added, err)
		for i, e := range added {
			if want := fmt.Sprintf("e%d", i+1); e.ID != want {
				t.Errorf("entry %d ID = %q, want %q", i, e.ID, want)
			}
			got, err := tx.Entry(e.ID)
			check("entry "+e.ID, got, e, err)
		}
		g, err := tx.Grant(grant.ID)
		check("grant", g, grant, err)
		f, err := tx.FQDN(fqdn.Name)
		check("fqdn", f, fqdn, err)
		fs, err := tx.FQDNs()
		check("fqdns", fs, []FQDNRecord{fqdn}, err)
		log, err := tx.AuditLog(time.Time{}, 0)
		check("audit", log, []AuditRecord{audit}, err)
		l, err := tx.Lockout(lockout.Key)
		check("lockout", l, lockout, err)
		return nil
	})
}

func TestTimesAreStoredInUTC(t *testing.T) {
	db := openTest(t)
	zone := time.FixedZone("CET", 3600)
	local := time.Now().In(zone) // carries a monotonic reading too
	mustUpdate(t, db, func(tx Tx) error {
		return tx.CreateAccount(Account{Name: "a", Created: local})
	})
	mustView(t, db, func(tx Tx) error {
		a, err := tx.Account("a")
		if err != nil {
			return err
		}
		if !a.Created.Equal(local) || a.Created.Location() != time.UTC {
			t.Errorf("Created = %v, want %v in UTC", a.Created, local)
		}
		return nil
	})
}

func TestDefaultsFilledIn(t *testing.T) {
	db := openTest(t)
	before := time.Now()
	mustUpdate(t, db, func(tx Tx) error {
		if err := tx.CreateAccount(Account{Name: "a"}); err != nil {
			return err
		}
		e, err := tx.AddEntry(Entry{Account: "a", Kind: KindIP, Value: "192.0.2.1"})
		if err != nil {
			return err
		}
		g, err := tx.PutGrant(Grant{Account: "a", IP: "192.0.2.2", Expires: before.Add(time.Hour)})
		if err != nil {
			return err
		}
		a, err := tx.Account("a")
		if err != nil {
			return err
		}
		for what, ts := range map[string]time.Time{"account": a.Created, "entry": e.Created, "grant": g.Created} {
			if ts.Before(before.Add(-time.Second)) || ts.After(time.Now().Add(time.Second)) {
				t.Errorf("%s Created = %v, want about now", what, ts)
			}
		}
		return nil
	})
}

func TestAccountErrors(t *testing.T) {
	db := openTest(t)
	mustUpdate(t, db, func(tx Tx) error { return tx.CreateAccount(Account{Name: "bob"}) })

	err := db.Update(func(tx Tx) error { return tx.CreateAccount(Account{Name: "bob"}) })
	if !errors.Is(err, ErrExists) || err.Error() != `account "bob": already exists` {
		t.Errorf("duplicate CreateAccount = %v", err)
	}
	err = db.View(func(tx Tx) error { _, err := tx.Account("alice"); return err })
	if !errors.Is(err, ErrNotFound) || err.Error() != `account "alice": not found` {
		t.Errorf("missing Account = %v", err)
	}
	err = db.Update(func(tx Tx) error { _, _, err := tx.DeleteAccount("alice"); return err })
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteAccount of a missing account = %v", err)
	}
	for name, a := range map[string]Account{
		"empty name": {},
		"stray bits": {Name: "x", Perms: PermSet(1 << 10)},
	} {
		err := db.Update(func(tx Tx) error { return tx.PutAccount(a) })
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: PutAccount = %v, want ErrInvalid", name, err)
		}
	}

	// PutAccount replaces.
	mustUpdate(t, db, func(tx Tx) error { return tx.PutAccount(Account{Name: "bob", Comment: "new", Created: t0}) })
	mustView(t, db, func(tx Tx) error {
		a, err := tx.Account("bob")
		if err == nil && a.Comment != "new" {
			t.Errorf("after PutAccount comment = %q", a.Comment)
		}
		return err
	})
}

func TestAccountNeverShowsPasscodeHash(t *testing.T) {
	const hash = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$c2VjcmV0"
	a := Account{Name: "bob", Perms: NewPermSet(1, 2), PasscodeHash: hash}
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{fmt.Sprint(a), fmt.Sprintf("%v %+v %s %#v", a, a, a, a), fmt.Sprintf("%+v", []Account{a}), string(data)} {
		if strings.Contains(out, "c2VjcmV0") {
			t.Errorf("output leaks the hash: %s", out)
		}
	}
	if s := fmt.Sprint(a); !strings.Contains(s, "bob") || !strings.Contains(s, "[redacted]") || !strings.Contains(s, "Perms:1,2") {
		t.Errorf("String() = %s, want the other fields and a redaction marker", s)
	}
}

func TestAddEntry(t *testing.T) {
	db := openTest(t)
	mustUpdate(t, db, func(tx Tx) error {
		for _, name := range []string{"bob", "carol"} {
			if err := tx.CreateAccount(Account{Name: name}); err != nil {
				return err
			}
		}
		_, err := tx.AddEntry(Entry{Account: "bob", Kind: KindIP, Value: "203.0.113.7"})
		return err
	})

	tests := []struct {
		name    string
		entry   Entry
		wantErr error
		wantID  string
	}{
		{"duplicate", Entry{Account: "bob", Kind: KindIP, Value: "203.0.113.7"}, ErrExists, ""},
		{"same value, other kind", Entry{Account: "bob", Kind: KindCIDR, Value: "203.0.113.7"}, nil, "e2"},
		{"same value, other account", Entry{Account: "carol", Kind: KindIP, Value: "203.0.113.7"}, nil, "e3"},
		{"missing account", Entry{Account: "mallory", Kind: KindIP, Value: "192.0.2.1"}, ErrNotFound, ""},
		{"no account", Entry{Kind: KindIP, Value: "192.0.2.1"}, ErrInvalid, ""},
		{"unknown kind", Entry{Account: "bob", Kind: "mac", Value: "00:11:22:33:44:55"}, ErrInvalid, ""},
		{"empty value", Entry{Account: "bob", Kind: KindIP}, ErrInvalid, ""},
		{"stray perm bits", Entry{Account: "bob", Kind: KindIP, Value: "192.0.2.9", Perms: PermSet(1 << 11)}, ErrInvalid, ""},
		{"explicit ID", Entry{ID: "e100", Account: "bob", Kind: KindIP, Value: "192.0.2.100"}, nil, "e100"},
		{"after explicit ID", Entry{Account: "bob", Kind: KindIP, Value: "192.0.2.101"}, nil, "e101"},
		{"explicit ID taken", Entry{ID: "e2", Account: "bob", Kind: KindIP, Value: "192.0.2.102"}, ErrExists, ""},
		{"malformed ID", Entry{ID: "e007", Account: "bob", Kind: KindIP, Value: "192.0.2.103"}, ErrInvalid, ""},
		{"grant ID", Entry{ID: "g5", Account: "bob", Kind: KindIP, Value: "192.0.2.104"}, ErrInvalid, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Entry
			err := db.Update(func(tx Tx) error {
				var err error
				got, err = tx.AddEntry(tt.entry)
				return err
			})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("AddEntry = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != tt.wantID {
				t.Errorf("ID = %q, want %q", got.ID, tt.wantID)
			}
		})
	}

	err := db.Update(func(tx Tx) error {
		_, err := tx.AddEntry(Entry{Account: "bob", Kind: KindIP, Value: "203.0.113.7"})
		return err
	})
	if want := `ip entry "203.0.113.7" for account "bob" (e1): already exists`; err == nil || err.Error() != want {
		t.Errorf("duplicate error = %v, want %q", err, want)
	}
	err = db.Update(func(tx Tx) error {
		_, err := tx.AddEntry(Entry{Account: "mallory", Kind: KindIP, Value: "192.0.2.1"})
		return err
	})
	if want := `account "mallory": not found`; err == nil || err.Error() != want {
		t.Errorf("missing account error = %v, want %q", err, want)
	}

	mustView(t, db, func(tx Tx) error {
		es, err := tx.EntriesByValue("203.0.113.7")
		if err != nil {
			return err
		}
		if len(es) != 3 || es[0].ID != "e1" || es[1].ID != "e2" || es[2].ID != "e3" {
			t.Errorf("EntriesByValue = %+v", es)
		}
		return nil
	})
}

func TestEntriesInNumericOrder(t *testing.T) {
	db := openTest(t)
	mustUpdate(t, db, func(tx Tx) error {
		if err := tx.CreateAccount(Account{Name: "a"}); err != nil {
			return err
		}
		for i := range 25 {
			if _, err := tx.AddEntry(Entry{Account: "a", Kind: KindIP, Value: fmt.Sprintf("192.0.2.%d", i)}); err != nil {
				return err
			}
		}
		return nil
	})
	mustUpdate(t, db, func(tx Tx) error {
		e, err := tx.DeleteEntry("e7")
		if err != nil || e.Value != "192.0.2.6" {
			t.Errorf("DeleteEntry(e7) = %+v, %v", e, err)
		}
		for _, id := range []string{"e7", "e0", "e", "x1", "e-1", "e99"} {
			if _, err := tx.DeleteEntry(id); !errors.Is(err, ErrNotFound) {
				t.Errorf("DeleteEntry(%q) = %v, want ErrNotFound", id, err)
			}
		}
		return nil
	})
	mustView(t, db, func(tx Tx) error {
		es, err := tx.Entries()
		if err != nil {
			return err
		}
		var ids []string
		for _, e := range es {
			ids = append(ids, e.ID)
		}
		want := []string{"e1", "e2", "e3", "e4", "e5", "e6", "e8", "e9", "e10"}
		if len(ids) != 24 || !reflect.DeepEqual(ids[:9], want) || ids[23] != "e25" {
			t.Errorf("IDs = %v", ids)
		}
		return nil
	})
}

func TestDeleteAccountCascades(t *testing.T) {
	db := openTest(t)
	exp := t0.Add(time.Hour)
	mustUpdate(t, db, func(tx Tx) error {
		for _, name := range []string{"bob", "carol"} {
			if err := tx.CreateAccount(Account{Name: name}); err != nil {
				return err
			}
			for _, v := range []string{"192.0.2.1", "192.0.2.2"} {
				if _, err := tx.AddEntry(Entry{Account: name, Kind: KindIP, Value: v}); err != nil {
					return err
				}
				if _, err := tx.PutGrant(Grant{Account: name, IP: v, Expires: exp}); err != nil {
					return err
				}
			}
		}
		return nil
	})

	// A failing transaction leaves the cascade undone.
	boom := errors.New("boom")
	err := db.Update(func(tx Tx) error {
		if _, _, err := tx.DeleteAccount("bob"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want the closure's error", err)
	}
	mustView(t, db, func(tx Tx) error {
		es, _ := tx.Entries()
		gs, _ := tx.Grants()
		if len(es) != 4 || len(gs) != 4 {
			t.Errorf("after rollback: %d entries, %d grants; want 4, 4", len(es), len(gs))
		}
		return nil
	})

	var entries []Entry
	var grants []Grant
	mustUpdate(t, db, func(tx Tx) error {
		var err error
		entries, grants, err = tx.DeleteAccount("bob")
		return err
	})
	if len(entries) != 2 || len(grants) != 2 {
		t.Fatalf("DeleteAccount returned %d entries, %d grants; want 2, 2", len(entries), len(grants))
	}
	for _, e := range entries {
		if e.Account != "bob" {
			t.Errorf("removed entry of %q", e.Account)
		}
	}
	for _, g := range grants {
		if g.Account != "bob" {
			t.Errorf("removed grant of %q", g.Account)
		}
	}
	mustView(t, db, func(tx Tx) error {
		if _, err := tx.Account("bob"); !errors.Is(err, ErrNotFound) {
			t.Errorf("bob still there: %v", err)
		}
		es, _ := tx.Entries()
		gs, _ := tx.Grants()
		if len(es) != 2 || len(gs) != 2 {
			t.Errorf("left %d entries, %d grants; want carol's 2 and 2", len(es), len(gs))
		}
		for _, e := range es {
			if e.Account != "carol" {
				t.Errorf("entry of %q survived", e.Account)
			}
		}
		return nil
	})
}

func TestFailedUpdateLeavesNothing(t *testing.T) {
	db := openTest(t)
	boom := errors.New("boom")
	err := db.Update(func(tx Tx) error {
		if err := tx.CreateAccount(Account{Name: "bob"}); err != nil {
			return err
		}
		if _, err := tx.AddEntry(Entry{Account: "bob", Kind: KindIP, Value: "192.0.2.1"}); err != nil {
			return err
		}
		if _, err := tx.PutGrant(Grant{Account: "bob", IP: "192.0.2.2", Expires: t0}); err != nil {
			return err
		}
		if err := tx.PutFQDN(FQDNRecord{Name: "x.example.org"}); err != nil {
			return err
		}
		if err := tx.Audit(AuditRecord{Action: "entry.add"}); err != nil {
			return err
		}
		if err := tx.PutLockout(Lockout{Key: "k"}); err != nil {
			return err
		}
		return fmt.Errorf("late failure: %w", boom)
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v", err)
	}

	// A panic rolls back too (and still propagates).
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic did not propagate")
			}
		}()
		_ = db.Update(func(tx Tx) error {
			_ = tx.CreateAccount(Account{Name: "panicky"})
			panic("boom")
		})
	}()

	db = reopen(t, db)
	mustView(t, db, func(tx Tx) error {
		as, _ := tx.Accounts()
		es, _ := tx.Entries()
		gs, _ := tx.Grants()
		fs, _ := tx.FQDNs()
		log, _ := tx.AuditLog(time.Time{}, 0)
		_, lerr := tx.Lockout("k")
		if len(as)+len(es)+len(gs)+len(fs)+len(log) != 0 || !errors.Is(lerr, ErrNotFound) {
			t.Errorf("left behind: %v %v %v %v %v %v", as, es, gs, fs, log, lerr)
		}
		return nil
	})
	// Sequences roll back with the rest: the next IDs are still 1.
	mustUpdate(t, db, func(tx Tx) error {
		if err := tx.CreateAccount(Account{Name: "bob"}); err != nil {
			return err
		}
		e, err := tx.AddEntry(Entry{Account: "bob", Kind: KindIP, Value: "192.0.2.1"})
		if err == nil && e.ID != "e1" {
			t.Errorf("first entry after rollback is %s", e.ID)
		}
		return err
	})
}

func TestGrants(t *testing.T) {
	db := openTest(t)
	now := t0
	mustUpdate(t, db, func(tx Tx) error {
		if err := tx.CreateAccount(Account{Name: "bob"}); err != nil {
			return err
		}
		for i, exp := range []time.Time{now.Add(-time.Hour), now, now.Add(time.Hour)} {
			g, err := tx.PutGrant(Grant{Account: "bob", IP: fmt.Sprintf("192.0.2.%d", i), Expires: exp, Created: t0})
			if err != nil {
				return err
			}
			if want := fmt.Sprintf("g%d", i+1); g.ID != want {
				t.Errorf("grant ID = %q, want %q", g.ID, want)
			}
		}
		return nil
	})

	// Renewal: upsert by ID keeps the ID and replaces the record.
	mustUpdate(t, db, func(tx Tx) error {
		g, err := tx.Grant("g1")
		if err != nil {
			return err
		}
		g.Expires = now.Add(2 * time.Hour)
		g, err = tx.PutGrant(g)
		if err != nil || g.ID != "g1" {
			t.Errorf("renewal = %+v, %v", g, err)
		}
		return err
	})

	var purged []Grant
	mustUpdate(t, db, func(tx Tx) error {
		var err error
		purged, err = tx.PurgeExpiredGrants(now)
		return err
	})
	if len(purged) != 1 || purged[0].ID != "g2" {
		t.Errorf("purged %+v, want only g2 (expiring exactly now)", purged)
	}
	mustView(t, db, func(tx Tx) error {
		gs, err := tx.Grants()
		if err != nil {
			return err
		}
		if len(gs) != 2 || gs[0].ID != "g1" || gs[1].ID != "g3" {
			t.Errorf("remaining grants %+v", gs)
		}
		return nil
	})

	for name, g := range map[string]Grant{
		"no expiry":   {Account: "bob", IP: "192.0.2.9"},
		"no IP":       {Account: "bob", Expires: now},
		"no account":  {IP: "192.0.2.9", Expires: now},
		"bad ID":      {ID: "grant-1", Account: "bob", IP: "192.0.2.9", Expires: now},
		"stray perms": {Account: "bob", IP: "192.0.2.9", Expires: now, Perms: PermSet(1 << 15)},
	} {
		err := db.Update(func(tx Tx) error { _, err := tx.PutGrant(g); return err })
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: PutGrant = %v, want ErrInvalid", name, err)
		}
	}
	err := db.Update(func(tx Tx) error {
		_, err := tx.PutGrant(Grant{Account: "mallory", IP: "192.0.2.9", Expires: now})
		return err
	})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("PutGrant for a missing account = %v, want ErrNotFound", err)
	}
	err = db.Update(func(tx Tx) error { _, err := tx.DeleteGrant("g2"); return err })
	if !errors.Is(err, ErrNotFound) || err.Error() != `grant "g2": not found` {
		t.Errorf("DeleteGrant(g2) = %v", err)
	}
}

func TestFQDNAndLockoutDeletes(t *testing.T) {
	db := openTest(t)
	mustUpdate(t, db, func(tx Tx) error {
		if err := tx.PutFQDN(FQDNRecord{Name: "b.example.org"}); err != nil {
			return err
		}
		if err := tx.PutFQDN(FQDNRecord{Name: "a.example.org"}); err != nil {
			return err
		}
		return tx.PutLockout(Lockout{Key: "k", LockedUntil: t0})
	})
	mustUpdate(t, db, func(tx Tx) error {
		fs, err := tx.FQDNs()
		if err != nil || len(fs) != 2 || fs[0].Name != "a.example.org" {
			t.Errorf("FQDNs = %+v, %v; want sorted by name", fs, err)
		}
		if err := tx.DeleteFQDN("a.example.org"); err != nil {
			return err
		}
		if err := tx.DeleteFQDN("a.example.org"); !errors.Is(err, ErrNotFound) {
			t.Errorf("second DeleteFQDN = %v", err)
		}
		if _, err := tx.FQDN("a.example.org"); !errors.Is(err, ErrNotFound) {
			t.Errorf("FQDN after delete = %v", err)
		}
		if err := tx.DeleteLockout("k"); err != nil {
			return err
		}
		if err := tx.DeleteLockout("k"); !errors.Is(err, ErrNotFound) {
			t.Errorf("second DeleteLockout = %v", err)
		}
		if err := tx.PutFQDN(FQDNRecord{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("PutFQDN without name = %v", err)
		}
		if err := tx.PutLockout(Lockout{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("PutLockout without key = %v", err)
		}
		return nil
	})
}

func TestAuditLogOrdering(t *testing.T) {
	db := openTest(t)
	const n = 500
	// Many records at one instant: the sequence must keep insertion order.
	mustUpdate(t, db, func(tx Tx) error {
		for i := range n {
			if err := tx.Audit(AuditRecord{Time: t0, Action: "grant", Detail: fmt.Sprint(i)}); err != nil {
				return err
			}
		}
		// Out of order, and before 1970 to exercise the sign handling.
		for _, ts := range []time.Time{t0.Add(time.Nanosecond), t0.Add(-time.Nanosecond), time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC)} {
			if err := tx.Audit(AuditRecord{Time: ts, Action: "probe"}); err != nil {
				return err
			}
		}
		return nil
	})
	// Records in separate transactions with a zero Time get "now".
	for range 3 {
		mustUpdate(t, db, func(tx Tx) error { return tx.Audit(AuditRecord{Action: "late"}) })
	}

	mustView(t, db, func(tx Tx) error {
		all, err := tx.AuditLog(time.Time{}, 0)
		if err != nil {
			return err
		}
		if len(all) != n+6 {
			t.Fatalf("got %d records, want %d", len(all), n+6)
		}
		if all[0].Time.Year() != 1969 || !all[1].Time.Equal(t0.Add(-time.Nanosecond)) || !all[n+2].Time.Equal(t0.Add(time.Nanosecond)) {
			t.Errorf("time order wrong: %v, %v, %v", all[0].Time, all[1].Time, all[n+2].Time)
		}
		for i := range n {
			if all[i+2].Detail != fmt.Sprint(i) {
				t.Fatalf("record %d has detail %q: same-time records out of insertion order", i, all[i+2].Detail)
			}
		}
		for i := 1; i < len(all); i++ {
			if all[i].Time.Before(all[i-1].Time) {
				t.Errorf("record %d (%v) before record %d (%v)", i, all[i].Time, i-1, all[i-1].Time)
			}
		}
		if last := all[len(all)-1]; last.Action != "late" || time.Since(last.Time) > time.Minute {
			t.Errorf("newest record %+v, want a late one stamped now", last)
		}

		tail, err := tx.AuditLog(time.Time{}, 4)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(tail, all[len(all)-4:]) {
			t.Errorf("AuditLog(limit 4) = %+v, want the newest 4 oldest-first", tail)
		}

		since, err := tx.AuditLog(t0, 0)
		if err != nil {
			return err
		}
		if len(since) != n+4 || since[0].Detail != "0" {
			t.Errorf("AuditLog(since t0) returned %d records starting %+v", len(since), since[0])
		}
		// since bounds a limited query too.
		few, err := tx.AuditLog(t0.Add(time.Nanosecond), 100)
		if err != nil {
			return err
		}
		if len(few) != 4 || few[0].Action != "probe" {
			t.Errorf("AuditLog(since t0+1ns, 100) = %+v", few)
		}
		return nil
	})
}

func TestConcurrentUpdates(t *testing.T) {
	db := openTest(t)
	mustUpdate(t, db, func(tx Tx) error { return tx.CreateAccount(Account{Name: "counter"}) })

	const workers, perWorker = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				err := db.Update(func(tx Tx) error {
					// Read-modify-write: lost if transactions interleave.
					a, err := tx.Account("counter")
					if err != nil {
						return err
					}
					a.MaxGrants++
					if err := tx.PutAccount(a); err != nil {
						return err
					}
					_, err = tx.AddEntry(Entry{Account: "counter", Kind: KindFQDN, Value: fmt.Sprintf("w%d-%d.example.org", w, i)})
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	mustView(t, db, func(tx Tx) error {
		a, err := tx.Account("counter")
		if err != nil {
			return err
		}
		if a.MaxGrants != workers*perWorker {
			t.Errorf("counter = %d, want %d", a.MaxGrants, workers*perWorker)
		}
		es, err := tx.Entries()
		if err != nil {
			return err
		}
		ids := map[string]bool{}
		for _, e := range es {
			ids[e.ID] = true
		}
		if len(es) != workers*perWorker || len(ids) != len(es) {
			t.Errorf("%d entries with %d distinct IDs, want %d", len(es), len(ids), workers*perWorker)
		}
		return nil
	})
}

func TestTxMisuse(t *testing.T) {
	db := openTest(t)

	err := db.View(func(tx Tx) error { return tx.CreateAccount(Account{Name: "a"}) })
	if !errors.Is(err, bolterrors.ErrTxNotWritable) {
		t.Errorf("write in View = %v, want ErrTxNotWritable", err)
	}

	var leaked Tx
	mustView(t, db, func(tx Tx) error { leaked = tx; return nil })
	if _, err := leaked.Accounts(); !errors.Is(err, bolterrors.ErrTxClosed) {
		t.Errorf("escaped Tx = %v, want ErrTxClosed", err)
	}
}

func TestSettingsRoundTrip(t *testing.T) {
	db := openTest(t)
	if err := db.View(func(tx Tx) error {
		_, err := tx.Setting("sip-domains")
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("missing setting: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx Tx) error { return tx.PutSetting("sip-domains", []byte(`["a.example"]`)) }); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db)
	if err := db.View(func(tx Tx) error {
		v, err := tx.Setting("sip-domains")
		if err != nil || string(v) != `["a.example"]` {
			t.Errorf("got %q, %v", v, err)
		}
		if err := tx.PutSetting("x", nil); err == nil {
			t.Error("write in a read-only transaction accepted")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx Tx) error { return tx.PutSetting("", nil) }); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty key: %v", err)
	}
}

func TestEntryRefreshRoundTrip(t *testing.T) {
	db := openTest(t)
	err := db.Update(func(tx Tx) error {
		if err := tx.CreateAccount(Account{Name: "a", Perms: NewPermSet(1)}); err != nil {
			return err
		}
		_, err := tx.AddEntry(Entry{Account: "a", Kind: KindFQDN, Value: "x.example", Refresh: 90 * time.Second})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db)
	db.View(func(tx Tx) error {
		es, err := tx.Entries()
		if err != nil || len(es) != 1 || es[0].Refresh != 90*time.Second {
			t.Errorf("got %+v, %v", es, err)
		}
		return nil
	})
}

func TestPurgeLockouts(t *testing.T) {
	db := openTest(t)
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	recs := []Lockout{
		{Key: "cid:locked", LockedUntil: now.Add(time.Minute)},
		{Key: "cid:recent", Failures: []time.Time{now.Add(-time.Minute)}},
		{Key: "cid:stale", Failures: []time.Time{now.Add(-time.Hour)}, LockedUntil: now.Add(-30 * time.Minute)},
		{Key: "cid:old", Failures: []time.Time{now.Add(-2 * time.Hour), now.Add(-time.Hour)}},
	}
	if err := db.Update(func(tx Tx) error {
		for _, l := range recs {
			if err := tx.PutLockout(l); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.Update(func(tx Tx) (err error) {
		n, err = tx.PurgeLockouts(now, now.Add(-15*time.Minute))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("purged %d, want 2", n)
	}
	db.View(func(tx Tx) error {
		for key, want := range map[string]bool{"cid:locked": true, "cid:recent": true, "cid:stale": false, "cid:old": false} {
			_, err := tx.Lockout(key)
			if got := err == nil; got != want {
				t.Errorf("%s kept=%v, want %v (%v)", key, got, want, err)
			}
		}
		return nil
	})
}
