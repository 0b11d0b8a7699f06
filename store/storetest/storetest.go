package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dialgate/dialgate/store"
)

// opener returns a fresh, initialised, empty database and registers its
// own cleanup.
type opener = func(t *testing.T) store.Store

// Run runs the conformance suite against the backend open makes, one
// subtest per behaviour, each on its own database.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, opener)
	}{
		{"RoundTrip", testRoundTrip},
		{"TimesAreStoredInUTC", testTimesAreStoredInUTC},
		{"DefaultsFilledIn", testDefaultsFilledIn},
		{"AccountErrors", testAccountErrors},
		{"AddEntry", testAddEntry},
		{"EntryRefreshRoundTrip", testEntryRefreshRoundTrip},
		{"EntriesInNumericOrder", testEntriesInNumericOrder},
		{"DeleteAccountCascades", testDeleteAccountCascades},
		{"FailedUpdateLeavesNothing", testFailedUpdateLeavesNothing},
		{"Grants", testGrants},
		{"GrantLookups", testGrantLookups},
		{"FQDNAndLockoutDeletes", testFQDNAndLockoutDeletes},
		{"Lockouts", testLockouts},
		{"PurgeLockouts", testPurgeLockouts},
		{"SettingsRoundTrip", testSettingsRoundTrip},
		{"AuditLogOrdering", testAuditLogOrdering},
		{"AuditBounded", testAuditBounded},
		{"PurgeAudit", testPurgeAudit},
		{"DoorFieldsRoundTrip", testDoorFieldsRoundTrip},
		{"DoorLookupMisses", testDoorLookupMisses},
		{"DoorUniqueness", testDoorUniqueness},
		{"DoorValuesAreReleased", testDoorValuesAreReleased},
		{"DoorLookupsRollBack", testDoorLookupsRollBack},
		{"AccountsByExtension", testAccountsByExtension},
		{"EntryLookups", testEntryLookups},
		{"UpdateEntryRefusesIdentityChange", testUpdateEntryRefusesIdentityChange},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"TxMisuse", testTxMisuse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

// t0 has nanoseconds, so a backend that rounds times is caught.
var t0 = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)

func mustUpdate(t *testing.T, db store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := db.Update(fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func mustView(t *testing.T, db store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := db.View(fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

func testRoundTrip(t *testing.T, open opener) {
	db := open(t)

	bob := store.Account{
		Name: "bob", Perms: store.NewPermSet(1, 2, 8), Comment: "road warrior", Created: t0,
		Enabled: true, GrantLifetime: 8 * time.Hour, MaxGrants: 3, Extension: "201",
		MayKeyIP: true, PasscodeHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
	}
	office := store.Account{Name: "office", Perms: store.NewPermSet(store.PermAll), Created: t0.Add(time.Minute)}
	entries := []store.Entry{
		{Account: "bob", Kind: store.KindIP, Value: "203.0.113.7", Comment: "hotel", Created: t0},
		{Account: "office", Kind: store.KindCIDR, Value: "198.51.100.0/24", Perms: store.NewPermSet(4), Created: t0},
		{Account: "office", Kind: store.KindFQDN, Value: "pbx.example.org", Created: t0, Provider: "voipco"},
		{Account: "office", Kind: store.KindCIDR, Value: "0.0.0.0/0", Force: true, Created: t0},
	}
	grant := store.Grant{
		Account: "bob", IP: "2001:db8::7", Perms: store.NewPermSet(1), Created: t0,
		Expires: t0.Add(8 * time.Hour), Source: "phone", CallerID: "+15551234567", Channel: "PJSIP/201-00000001",
	}
	fqdn := store.FQDNRecord{
		Name: "pbx.example.org", Addrs: []string{"192.0.2.1", "2001:db8::1"},
		LastSuccess: t0, LastAttempt: t0.Add(5 * time.Minute), LastError: "i/o timeout",
	}
	audit := store.AuditRecord{Time: t0, Action: "grant", Actor: "phone", Account: "bob", Subject: "2001:db8::7", Result: "ok", Detail: "8h"}
	lockout := store.Lockout{Key: "callerid:+15551234567", Failures: []time.Time{t0, t0.Add(time.Second)}, LockedUntil: t0.Add(15 * time.Minute)}

	var added []store.Entry
	var stored store.Grant
	mustUpdate(t, db, func(tx store.Tx) error {
		added = nil
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
		var err error
		if stored, err = tx.PutGrant(grant); err != nil {
			return err
		}
		if err := tx.PutFQDN(fqdn); err != nil {
			return err
		}
		if err := tx.Audit(audit); err != nil {
			return err
		}
		return tx.PutLockout(lockout)
	})
	if stored.ID != "g1" {
		t.Errorf("grant ID = %q, want g1", stored.ID)
	}
	grant.ID = stored.ID

	mustView(t, db, func(tx store.Tx) error {
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
		check("accounts", as, []store.Account{bob, office}, err)

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
		check("fqdns", fs, []store.FQDNRecord{fqdn}, err)
		log, err := tx.AuditLog(time.Time{}, 0)
		// Node is the backend's to fill in (a shared store names the PBX
		// that wrote the record); everything else comes back as written.
		for i := range log {
			log[i].Node = ""
		}
		check("audit", log, []store.AuditRecord{audit}, err)
		l, err := tx.Lockout(lockout.Key)
		check("lockout", l, lockout, err)
		return nil
	})
}

func testTimesAreStoredInUTC(t *testing.T, open opener) {
	db := open(t)
	zone := time.FixedZone("CET", 3600)
	local := time.Now().In(zone) // carries a monotonic reading too
	mustUpdate(t, db, func(tx store.Tx) error {
		return tx.CreateAccount(store.Account{Name: "a", Created: local})
	})
	mustView(t, db, func(tx store.Tx) error {
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

func testDefaultsFilledIn(t *testing.T, open opener) {
	db := open(t)
	before := time.Now()
	mustUpdate(t, db, func(tx store.Tx) error {
		if err := tx.CreateAccount(store.Account{Name: "a"}); err != nil {
			return err
		}
		e, err := tx.AddEntry(store.Entry{Account: "a", Kind: store.KindIP, Value: "192.0.2.1"})
		if err != nil {
			return err
		}
		g, err := tx.PutGrant(store.Grant{Account: "a", IP: "192.0.2.2", Expires: before.Add(time.Hour)})
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

func testAccountErrors(t *testing.T, open opener) {
	db := open(t)
	mustUpdate(t, db, func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "bob"}) })

	err := db.Update(func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "bob"}) })
	if !errors.Is(err, store.ErrExists) || err.Error() != `account "bob": already exists` {
		t.Errorf("duplicate CreateAccount = %v", err)
	}
	err = db.View(func(tx store.Tx) error { _, err := tx.Account("alice"); return err })
	if !errors.Is(err, store.ErrNotFound) || err.Error() != `account "alice": not found` {
		t.Errorf("missing Account = %v", err)
	}
	err = db.Update(func(tx store.Tx) error { _, _, err := tx.DeleteAccount("alice"); return err })
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteAccount of a missing account = %v", err)
	}
	for name, a := range map[string]store.Account{
		"empty name": {},
		"stray bits": {Name: "x", Perms: store.PermSet(1 << 10)},
	} {
		err := db.Update(func(tx store.Tx) error { return tx.PutAccount(a) })
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: PutAccount = %v, want ErrInvalid", name, err)
		}
	}

	// PutAccount replaces.
	mustUpdate(t, db, func(tx store.Tx) error {
		return tx.PutAccount(store.Account{Name: "bob", Comment: "new", Created: t0})
	})
	mustView(t, db, func(tx store.Tx) error {
		a, err := tx.Account("bob")
		if err == nil && a.Comment != "new" {
			t.Errorf("after PutAccount comment = %q", a.Comment)
		}
		return err
	})
}

func testAddEntry(t *testing.T, open opener) {
	db := open(t)
	mustUpdate(t, db, func(tx store.Tx) error {
		for _, name := range []string{"bob", "carol"} {
			if err := tx.CreateAccount(store.Account{Name: name}); err != nil {
				return err
			}
		}
		_, err := tx.AddEntry(store.Entry{Account: "bob", Kind: store.KindIP, Value: "203.0.113.7"})
		return err
	})

	tests := []struct {
		name    string
		entry   store.Entry
		wantErr error
		wantID  string
	}{
		{"duplicate", store.Entry{Account: "bob", Kind: store.KindIP, Value: "203.0.113.7"}, store.ErrExists, ""},
		{"same value, other kind", store.Entry{Account: "bob", Kind: store.KindCIDR, Value: "203.0.113.7"}, nil, "e2"},
		{"same value, other account", store.Entry{Account: "carol", Kind: store.KindIP, Value: "203.0.113.7"}, nil, "e3"},
		{"missing account", store.Entry{Account: "mallory", Kind: store.KindIP, Value: "192.0.2.1"}, store.ErrNotFound, ""},
		{"no account", store.Entry{Kind: store.KindIP, Value: "192.0.2.1"}, store.ErrInvalid, ""},
		{"unknown kind", store.Entry{Account: "bob", Kind: "mac", Value: "00:11:22:33:44:55"}, store.ErrInvalid, ""},
		{"empty value", store.Entry{Account: "bob", Kind: store.KindIP}, store.ErrInvalid, ""},
		{"stray perm bits", store.Entry{Account: "bob", Kind: store.KindIP, Value: "192.0.2.9", Perms: store.PermSet(1 << 11)}, store.ErrInvalid, ""},
		{"explicit ID", store.Entry{ID: "e100", Account: "bob", Kind: store.KindIP, Value: "192.0.2.100"}, nil, "e100"},
		{"after explicit ID", store.Entry{Account: "bob", Kind: store.KindIP, Value: "192.0.2.101"}, nil, "e101"},
		{"explicit ID taken", store.Entry{ID: "e2", Account: "bob", Kind: store.KindIP, Value: "192.0.2.102"}, store.ErrExists, ""},
		{"malformed ID", store.Entry{ID: "e007", Account: "bob", Kind: store.KindIP, Value: "192.0.2.103"}, store.ErrInvalid, ""},
		{"grant ID", store.Entry{ID: "g5", Account: "bob", Kind: store.KindIP, Value: "192.0.2.104"}, store.ErrInvalid, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got store.Entry
			err := db.Update(func(tx store.Tx) error {
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

	err := db.Update(func(tx store.Tx) error {
		_, err := tx.AddEntry(store.Entry{Account: "bob", Kind: store.KindIP, Value: "203.0.113.7"})
		return err
	})
	if want := `ip entry "203.0.113.7" for account "bob" (e1): already exists`; err == nil || err.Error() != want {
		t.Errorf("duplicate error = %v, want %q", err, want)
	}
	err = db.Update(func(tx store.Tx) error {
		_, err := tx.AddEntry(store.Entry{Account: "mallory", Kind: store.KindIP, Value: "192.0.2.1"})
		return err
	})
	if want := `account "mallory": not found`; err == nil || err.Error() != want {
		t.Errorf("missing account error = %v, want %q", err, want)
	}

	mustView(t, db, func(tx store.Tx) error {
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

func testEntryRefreshRoundTrip(t *testing.T, open opener) {
	db := open(t)
	mustUpdate(t, db, func(tx store.Tx) error {
		if err := tx.CreateAccount(store.Account{Name: "a", Perms: store.NewPermSet(1)}); err != nil {
			return err
		}
		_, err := tx.AddEntry(store.Entry{Account: "a", Kind: store.KindFQDN, Value: "x.example", Refresh: 90 * time.Second})
		return err
	})
	mustView(t, db, func(tx store.Tx) error {
		es, err := tx.Entries()
		if err != nil || len(es) != 1 || es[0].Refresh != 90*time.Second {
			t.Errorf("got %+v, %v", es, err)
		}
		return nil
	})
}

func testEntriesInNumericOrder(t *testing.T, open opener) {
	db := open(t)
	mustUpdate(t, db, func(tx store.Tx) error {
		if err := tx.CreateAccount(store.Account{Name: "a"}); err != nil {
			return err
		}
		for i := range 25 {
			if _, err := tx.AddEntry(store.Entry{Account: "a", Kind: store.KindIP, Value: fmt.Sprintf("192.0.2.%d", i)}); err != nil {
				return err
			}
		}
		return nil
	})
	mustUpdate(t, db, func(tx store.Tx) error {
		e, err := tx.DeleteEntry("e7")
		if err != nil || e.Value != "192.0.2.6" {
			t.Errorf("DeleteEntry(e7) = %+v, %v", e, err)
		}
		for _, id := range []string{"e7", "e0", "e", "x1", "e-1", "e99"} {
			if _, err := tx.DeleteEntry(id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("DeleteEntry(%q) = %v, want ErrNotFound", id, err)
			}
		}
		return nil
	})
	mustView(t, db, func(tx store.Tx) error {
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

func testDeleteAccountCascades(t *testing.T, open opener) {
	db := open(t)
	exp := t0.Add(time.Hour)
	mustUpdate(t, db, func(tx store.Tx) error {
		for _, name := range []string{"bob", "carol"} {
			if err := tx.CreateAccount(store.Account{Name: name}); err != nil {
				return err
			}
			for _, v := range []string{"192.0.2.1", "192.0.2.2"} {
				if _, err := tx.AddEntry(store.Entry{Account: name, Kind: store.KindIP, Value: v}); err != nil {
					return err
				}
				if _, err := tx.PutGrant(store.Grant{Account: name, IP: v, Expires: exp}); err != nil {
					return err
				}
			}
		}
		return nil
	})

	// A failing transaction leaves the cascade undone.
	boom := errors.New("boom")
	err := db.Update(func(tx store.Tx) error {
		if _, _, err := tx.DeleteAccount("bob"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want the closure's error", err)
	}
	mustView(t, db, func(tx store.Tx) error {
		es, _ := tx.Entries()
		gs, _ := tx.Grants()
		if len(es) != 4 || len(gs) != 4 {
			t.Errorf("after rollback: %d entries, %d grants; want 4, 4", len(es), len(gs))
		}
		return nil
	})

	var entries []store.Entry
	var grants []store.Grant
	mustUpdate(t, db, func(tx store.Tx) error {
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
	mustView(t, db, func(tx store.Tx) error {
		if _, err := tx.Account("bob"); !errors.Is(err, store.ErrNotFound) {
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

func testFailedUpdateLeavesNothing(t *testing.T, open opener) {
	db := open(t)
	boom := errors.New("boom")
	err := db.Update(func(tx store.Tx) error {
		if err := tx.CreateAccount(store.Account{Name: "bob"}); err != nil {
			return err
		}
		if _, err := tx.AddEntry(store.Entry{Account: "bob", Kind: store.KindIP, Value: "192.0.2.1"}); err != nil {
			return err
		}
		if _, err := tx.PutGrant(store.Grant{Account: "bob", IP: "192.0.2.2", Expires: t0}); err != nil {
			return err
		}
		if err := tx.PutFQDN(store.FQDNRecord{Name: "x.example.org"}); err != nil {
			return err
		}
		if err := tx.Audit(store.AuditRecord{Action: "entry.add"}); err != nil {
			return err
		}
		if err := tx.PutLockout(store.Lockout{Key: "k"}); err != nil {
			return err
		}
		if err := tx.PutSetting("s", []byte("v")); err != nil {
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
		_ = db.Update(func(tx store.Tx) error {
			_ = tx.CreateAccount(store.Account{Name: "panicky"})
			panic("boom")
		})
	}()

	mustView(t, db, func(tx store.Tx) error {
		as, _ := tx.Accounts()
		es, _ := tx.Entries()
		gs, _ := tx.Grants()
		fs, _ := tx.FQDNs()
		log, _ := tx.AuditLog(time.Time{}, 0)
		_, lerr := tx.Lockout("k")
		if len(as)+len(es)+len(gs)+len(fs)+len(log) != 0 || !errors.Is(lerr, store.ErrNotFound) {
			t.Errorf("left behind: %v %v %v %v %v %v", as, es, gs, fs, log, lerr)
		}
		if _, err := tx.Setting("s"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("setting left behind: %v", err)
		}
		return nil
	})
	// Sequences roll back with the rest: the next IDs are still 1.
	mustUpdate(t, db, func(tx store.Tx) error {
		if err := tx.CreateAccount(store.Account{Name: "bob"}); err != nil {
			return err
		}
		e, err := tx.AddEntry(store.Entry{Account: "bob", Kind: store.KindIP, Value: "192.0.2.1"})
		if err == nil && e.ID != "e1" {
			t.Errorf("first entry after rollback is %s", e.ID)
		}
		return err
	})
}

func testGrants(t *testing.T, open opener) {
	db := open(t)
	now := t0
	mustUpdate(t, db, func(tx store.Tx) error {
		if err := tx.CreateAccount(store.Account{Name: "bob"}); err != nil {
			return err
		}
		for i, exp := range []time.Time{now.Add(-time.Hour), now, now.Add(time.Hour)} {
			g, err := tx.PutGrant(store.Grant{Account: "bob", IP: fmt.Sprintf("192.0.2.%d", i), Expires: exp, Created: t0})
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
	mustUpdate(t, db, func(tx store.Tx) error {
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

	var purged []store.Grant
	mustUpdate(t, db, func(tx store.Tx) error {
		var err error
		purged, err = tx.PurgeExpiredGrants(now)
		return err
	})
	if len(purged) != 1 || purged[0].ID != "g2" {
		t.Errorf("purged %+v, want only g2 (expiring exactly now)", purged)
	}
	mustView(t, db, func(tx store.Tx) error {
		gs, err := tx.Grants()
		if err != nil {
			return err
		}
		if len(gs) != 2 || gs[0].ID != "g1" || gs[1].ID != "g3" {
			t.Errorf("remaining grants %+v", gs)
		}
		return nil
	})

	for name, g := range map[string]store.Grant{
		"no expiry":   {Account: "bob", IP: "192.0.2.9"},
		"no IP":       {Account: "bob", Expires: now},
		"no account":  {IP: "192.0.2.9", Expires: now},
		"bad ID":      {ID: "grant-1", Account: "bob", IP: "192.0.2.9", Expires: now},
		"stray perms": {Account: "bob", IP: "192.0.2.9", Expires: now, Perms: store.PermSet(1 << 15)},
	} {
		err := db.Update(func(tx store.Tx) error { _, err := tx.PutGrant(g); return err })
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: PutGrant = %v, want ErrInvalid", name, err)
		}
	}
	err := db.Update(func(tx store.Tx) error {
		_, err := tx.PutGrant(store.Grant{Account: "mallory", IP: "192.0.2.9", Expires: now})
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PutGrant for a missing account = %v, want ErrNotFound", err)
	}
	err = db.Update(func(tx store.Tx) error { _, err := tx.DeleteGrant("g2"); return err })
	if !errors.Is(err, store.ErrNotFound) || err.Error() != `grant "g2": not found` {
		t.Errorf("DeleteGrant(g2) = %v", err)
	}
}

func grantIDs(gs []store.Grant) []string {
	out := []string{}
	for _, g := range gs {
		out = append(out, g.ID)
	}
	return out
}

func checkGrantLookups(t *testing.T, db store.Store, byAccount, byIP map[string][]string) {
	t.Helper()
	mustView(t, db, func(tx store.Tx) error {
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

// The lookups follow every write: a grant moved to a new address keeps
// its ID, and expired grants are listed until purged.
func testGrantLookups(t *testing.T, open opener) {
	db := open(t)
	exp := time.Now().Add(time.Hour)
	mustUpdate(t, db, func(tx store.Tx) error {
		for _, a := range []string{"alice", "bob"} {
			if err := tx.CreateAccount(store.Account{Name: a, Perms: store.NewPermSet(0), Enabled: true}); err != nil {
				return err
			}
		}
		for _, g := range []store.Grant{
			{Account: "alice", IP: "203.0.113.7", Expires: exp},              // g1
			{Account: "bob", IP: "203.0.113.7", Expires: exp},                // g2
			{Account: "alice", IP: "203.0.113.70", Expires: exp},             // g3
			{Account: "alice", IP: "203.0.113.8", Expires: time.Unix(10, 0)}, // g4, expired
		} {
			if _, err := tx.PutGrant(g); err != nil {
				return err
			}
		}
		return nil
	})
	checkGrantLookups(t, db,
		map[string][]string{"alice": {"g1", "g3", "g4"}, "bob": {"g2"}, "al": {}},
		map[string][]string{"203.0.113.7": {"g1", "g2"}, "203.0.113.70": {"g3"}, "203.0.113": {}})
	mustUpdate(t, db, func(tx store.Tx) error {
		g, err := tx.Grant("g3")
		if err != nil {
			return err
		}
		g.IP = "198.51.100.9" // moved, same ID
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
	checkGrantLookups(t, db,
		map[string][]string{"alice": {"g3"}, "bob": {}},
		map[string][]string{"203.0.113.7": {}, "203.0.113.70": {}, "198.51.100.9": {"g3"}, "203.0.113.8": {}})
}

func testFQDNAndLockoutDeletes(t *testing.T, open opener) {
	db := open(t)
	mustUpdate(t, db, func(tx store.Tx) error {
		if err := tx.PutFQDN(store.FQDNRecord{Name: "b.example.org"}); err != nil {
			return err
		}
		if err := tx.PutFQDN(store.FQDNRecord{Name: "a.example.org"}); err != nil {
			return err
		}
		return tx.PutLockout(store.Lockout{Key: "k", LockedUntil: t0})
	})
	mustUpdate(t, db, func(tx store.Tx) error {
		fs, err := tx.FQDNs()
		if err != nil || len(fs) != 2 || fs[0].Name != "a.example.org" {
			t.Errorf("FQDNs = %+v, %v; want sorted by name", fs, err)
		}
		if err := tx.DeleteFQDN("a.example.org"); err != nil {
			return err
		}
		if err := tx.DeleteFQDN("a.example.org"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second DeleteFQDN = %v", err)
		}
		if _, err := tx.FQDN("a.example.org"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("FQDN after delete = %v", err)
		}
		if err := tx.DeleteLockout("k"); err != nil {
			return err
		}
		if err := tx.DeleteLockout("k"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second DeleteLockout = %v", err)
		}
		if err := tx.PutFQDN(store.FQDNRecord{}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("PutFQDN without name = %v", err)
		}
		if err := tx.PutLockout(store.Lockout{}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("PutLockout without key = %v", err)
		}
		return nil
	})
}

func testLockouts(t *testing.T, open opener) {
	db := open(t)
	mustView(t, db, func(tx store.Tx) error {
		ls, err := tx.Lockouts()
		if err != nil || ls != nil {
			t.Errorf("empty Lockouts = %v, %v; want nil", ls, err)
		}
		return nil
	})
	recs := []store.Lockout{
		{Key: "src:192.0.2.1", Failures: []time.Time{t0}},
		{Key: "cid:+1555", Failures: []time.Time{t0, t0.Add(time.Second)}, LockedUntil: t0.Add(time.Hour)},
		{Key: "cid:+1444"},
	}
	mustUpdate(t, db, func(tx store.Tx) error {
		for _, l := range recs {
			if err := tx.PutLockout(l); err != nil {
				return err
			}
		}
		return nil
	})
	mustView(t, db, func(tx store.Tx) error {
		ls, err := tx.Lockouts()
		if err != nil {
			return err
		}
		want := []store.Lockout{recs[2], recs[1], recs[0]}
		if !reflect.DeepEqual(ls, want) {
			t.Errorf("Lockouts =\n %+v\nwant\n %+v", ls, want)
		}
		return nil
	})
}

func testPurgeLockouts(t *testing.T, open opener) {
	db := open(t)
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	recs := []store.Lockout{
		{Key: "cid:locked", LockedUntil: now.Add(time.Minute)},
		{Key: "cid:recent", Failures: []time.Time{now.Add(-time.Minute)}},
		{Key: "cid:stale", Failures: []time.Time{now.Add(-time.Hour)}, LockedUntil: now.Add(-30 * time.Minute)},
		{Key: "cid:old", Failures: []time.Time{now.Add(-2 * time.Hour), now.Add(-time.Hour)}},
	}
	mustUpdate(t, db, func(tx store.Tx) error {
		for _, l := range recs {
			if err := tx.PutLockout(l); err != nil {
				return err
			}
		}
		return nil
	})
	var n int
	mustUpdate(t, db, func(tx store.Tx) (err error) {
		n, err = tx.PurgeLockouts(now, now.Add(-15*time.Minute))
		return err
	})
	if n != 2 {
		t.Errorf("purged %d, want 2", n)
	}
	mustView(t, db, func(tx store.Tx) error {
		for key, want := range map[string]bool{"cid:locked": true, "cid:recent": true, "cid:stale": false, "cid:old": false} {
			_, err := tx.Lockout(key)
			if got := err == nil; got != want {
				t.Errorf("%s kept=%v, want %v (%v)", key, got, want, err)
			}
		}
		return nil
	})
}

func testSettingsRoundTrip(t *testing.T, open opener) {
	db := open(t)
	mustView(t, db, func(tx store.Tx) error {
		_, err := tx.Setting("sip-domains")
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing setting: %v", err)
		}
		return nil
	})
	mustUpdate(t, db, func(tx store.Tx) error { return tx.PutSetting("sip-domains", []byte(`["a.example"]`)) })
	mustView(t, db, func(tx store.Tx) error {
		v, err := tx.Setting("sip-domains")
		if err != nil || string(v) != `["a.example"]` {
			t.Errorf("got %q, %v", v, err)
		}
		if err := tx.PutSetting("x", nil); err == nil {
			t.Error("write in a read-only transaction accepted")
		}
		return nil
	})
	if err := db.Update(func(tx store.Tx) error { return tx.PutSetting("", nil) }); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("empty key: %v", err)
	}
}

func testAuditLogOrdering(t *testing.T, open opener) {
	db := open(t)
	const n = 500
	// Many records at one instant: the sequence must keep insertion order.
	mustUpdate(t, db, func(tx store.Tx) error {
		for i := range n {
			if err := tx.Audit(store.AuditRecord{Time: t0, Action: "grant", Detail: fmt.Sprint(i)}); err != nil {
				return err
			}
		}
		// Out of order, and before 1970 to exercise the sign handling.
		for _, ts := range []time.Time{t0.Add(time.Nanosecond), t0.Add(-time.Nanosecond), time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC)} {
			if err := tx.Audit(store.AuditRecord{Time: ts, Action: "probe"}); err != nil {
				return err
			}
		}
		return nil
	})
	// Records in separate transactions with a zero Time get "now".
	for range 3 {
		mustUpdate(t, db, func(tx store.Tx) error { return tx.Audit(store.AuditRecord{Action: "late"}) })
	}

	mustView(t, db, func(tx store.Tx) error {
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

// A refused 10 000-character value, quoted again in the refusal's
// message, is stored once and bounded: no request may bloat the log.
func testAuditBounded(t *testing.T, open opener) {
	db := open(t)
	huge := strings.Repeat("a", 10_000)
	odd := strings.Repeat("é\x01", 3000) // multi-byte, and quoted with escapes
	recs := []store.AuditRecord{
		{Action: "entry.add", Actor: "cli", Account: "bob", Subject: huge, Result: "refused",
			Detail: fmt.Sprintf("invalid: ip %q: not an IP address", huge)},
		{Action: "account.add", Actor: "cli", Account: odd, Result: "refused",
			Detail: fmt.Sprintf("account name %q: not allowed", odd)},
		{Action: "x", Detail: strings.Repeat("ü", 5000)},
	}
	for _, r := range recs {
		mustUpdate(t, db, func(tx store.Tx) error { return tx.Audit(r) })
	}
	var got []store.AuditRecord
	mustView(t, db, func(tx store.Tx) (err error) { got, err = tx.AuditLog(time.Time{}, 0); return })
	if len(got) != len(recs) {
		t.Fatalf("%d records, want %d", len(got), len(recs))
	}
	for i, r := range got {
		for name, f := range map[string]string{"action": r.Action, "account": r.Account, "subject": r.Subject, "detail": r.Detail} {
			if len(f) > store.MaxAuditField {
				t.Errorf("record %d: %s is %d bytes, want at most %d", i, name, len(f), store.MaxAuditField)
			}
			if !utf8.ValidString(f) {
				t.Errorf("record %d: %s cut inside a character", i, name)
			}
		}
	}
	if !strings.HasSuffix(got[0].Subject, "…(10000 bytes)") || !strings.HasPrefix(got[0].Subject, "aaaa") {
		t.Errorf("subject %q", got[0].Subject)
	}
	if strings.Contains(got[0].Detail, "aaaaaaaa") || got[0].Detail != "invalid: ip (the subject, 10000 bytes): not an IP address" {
		t.Errorf("detail repeats the value: %q", got[0].Detail)
	}
	if want := "account name (the account, " + strconv.Itoa(len(odd)) + " bytes): not allowed"; got[1].Detail != want {
		t.Errorf("detail %q, want %q", got[1].Detail, want)
	}
	if !strings.HasSuffix(got[2].Detail, "…(10000 bytes)") {
		t.Errorf("detail %q", got[2].Detail)
	}
}

func testPurgeAudit(t *testing.T, open opener) {
	db := open(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Ten records a day apart, two sharing a time.
	mustUpdate(t, db, func(tx store.Tx) error {
		for i := range 10 {
			if err := tx.Audit(store.AuditRecord{Time: t0.Add(time.Duration(i) * 24 * time.Hour), Action: strconv.Itoa(i)}); err != nil {
				return err
			}
		}
		return tx.Audit(store.AuditRecord{Time: t0.Add(9 * 24 * time.Hour), Action: "9b"})
	})
	actions := func() string {
		var rs []store.AuditRecord
		mustView(t, db, func(tx store.Tx) (err error) { rs, err = tx.AuditLog(time.Time{}, 0); return })
		var out []string
		for _, r := range rs {
			out = append(out, r.Action)
		}
		return strings.Join(out, ",")
	}
	purge := func(before time.Time, keep int) int {
		t.Helper()
		var n int
		mustUpdate(t, db, func(tx store.Tx) (err error) { n, err = tx.PurgeAudit(before, keep); return })
		return n
	}
	if n := purge(time.Time{}, 0); n != 0 || actions() != "0,1,2,3,4,5,6,7,8,9,9b" {
		t.Fatalf("no limits purged %d: %s", n, actions())
	}
	if n := purge(t0.Add(2*24*time.Hour), 0); n != 2 || actions() != "2,3,4,5,6,7,8,9,9b" {
		t.Fatalf("by age: %d, %s", n, actions())
	}
	if n := purge(time.Time{}, 20); n != 0 {
		t.Fatalf("keep more than there are: purged %d", n)
	}
	if n := purge(time.Time{}, 4); n != 5 || actions() != "7,8,9,9b" {
		t.Fatalf("by count: %d, %s", n, actions())
	}
	// Both: the stricter rule wins.
	if n := purge(t0.Add(9*24*time.Hour), 3); n != 2 || actions() != "9,9b" {
		t.Fatalf("age stricter than count: %d, %s", n, actions())
	}
	if n := purge(t0.Add(100*24*time.Hour), 3); n != 2 || actions() != "" {
		t.Fatalf("everything too old: %d, %s", n, actions())
	}
	if n := purge(t0.Add(100*24*time.Hour), 3); n != 0 {
		t.Fatalf("empty log: purged %d", n)
	}
}

// doorState is what the door lookups should answer.
type doorState struct {
	numbers    map[string]string   // number -> account name, "" = not found
	callerIDs  map[string]string   // caller ID -> account name, "" = not found
	extensions map[string][]string // extension -> account names in order
}

func checkDoor(t *testing.T, db store.Store, want doorState) {
	t.Helper()
	mustView(t, db, func(tx store.Tx) error {
		lookup := func(what, value, want string, get func(string) (store.Account, error)) {
			t.Helper()
			a, err := get(value)
			switch {
			case want == "" && !errors.Is(err, store.ErrNotFound):
				t.Errorf("%s %q: got %q, %v; want ErrNotFound", what, value, a.Name, err)
			case want != "" && err != nil:
				t.Errorf("%s %q: %v; want account %q", what, value, err, want)
			case want != "" && a.Name != want:
				t.Errorf("%s %q: got account %q, want %q", what, value, a.Name, want)
			}
		}
		for n, name := range want.numbers {
			lookup("number", n, name, tx.AccountByNumber)
		}
		for id, name := range want.callerIDs {
			lookup("caller ID", id, name, tx.AccountByCallerID)
		}
		for ext, names := range want.extensions {
			as, err := tx.AccountsByExtension(ext)
			if err != nil {
				t.Errorf("extension %q: %v", ext, err)
				continue
			}
			var got []string
			for _, a := range as {
				got = append(got, a.Name)
			}
			if !reflect.DeepEqual(got, names) {
				t.Errorf("extension %q: got %q, want %q", ext, got, names)
			}
		}
		return nil
	})
}

func testDoorFieldsRoundTrip(t *testing.T, open opener) {
	tests := []struct {
		name string
		in   store.Account
		want store.Account // what reads back
	}{
		{
			name: "all door fields",
			in: store.Account{Name: "bob", Perms: store.NewPermSet(1), Created: t0, Enabled: true, Extension: "201",
				Number: "4711", CallerIDs: []string{"+15551234567", "201"}},
			want: store.Account{Name: "bob", Perms: store.NewPermSet(1), Created: t0, Enabled: true, Extension: "201",
				Number: "4711", CallerIDs: []string{"+15551234567", "201"}},
		},
		{
			name: "none",
			in:   store.Account{Name: "carol", Created: t0},
			want: store.Account{Name: "carol", Created: t0},
		},
		{
			name: "empty caller ID list reads back as nil",
			in:   store.Account{Name: "dave", Created: t0, CallerIDs: []string{}},
			want: store.Account{Name: "dave", Created: t0},
		},
	}
	db := open(t)
	mustUpdate(t, db, func(tx store.Tx) error {
		for _, tt := range tests {
			if err := tx.CreateAccount(tt.in); err != nil {
				return err
			}
		}
		return nil
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustView(t, db, func(tx store.Tx) error {
				got, err := tx.Account(tt.in.Name)
				if err != nil {
					return err
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got %#v\nwant %#v", got, tt.want)
				}
				if tt.in.Number != "" {
					if got, err := tx.AccountByNumber(tt.in.Number); err != nil || !reflect.DeepEqual(got, tt.want) {
						t.Errorf("AccountByNumber = %#v, %v", got, err)
					}
				}
				for _, id := range tt.in.CallerIDs {
					if got, err := tx.AccountByCallerID(id); err != nil || !reflect.DeepEqual(got, tt.want) {
						t.Errorf("AccountByCallerID(%q) = %#v, %v", id, got, err)
					}
				}
				return nil
			})
		})
	}
}

func testDoorLookupMisses(t *testing.T, open opener) {
	db := open(t)
	mustUpdate(t, db, func(tx store.Tx) error {
		return tx.CreateAccount(store.Account{Name: "bob", Number: "4711", CallerIDs: []string{"+1555"}, Extension: "201"})
	})
	checkDoor(t, db, doorState{
		numbers:    map[string]string{"": "", "471": "", "47111": "", "+1555": ""},
		callerIDs:  map[string]string{"": "", "+155": "", "4711": ""},
		extensions: map[string][]string{"": nil, "20": nil, "2010": nil, "201\x00bob": nil},
	})
	err := db.View(func(tx store.Tx) error { _, err := tx.AccountByNumber("12"); return err })
	if want := `account with number "12": not found`; err == nil || err.Error() != want {
		t.Errorf("missing number: %v, want %q", err, want)
	}
}

func testDoorUniqueness(t *testing.T, open opener) {
	// bob holds number 100, caller IDs +1555 and +1666; carol holds 200
	// and +1777.
	bob := store.Account{Name: "bob", Created: t0, Extension: "201", Number: "100", CallerIDs: []string{"+1555", "+1666"}}
	carol := store.Account{Name: "carol", Created: t0, Extension: "202", Number: "200", CallerIDs: []string{"+1777"}}
	before := doorState{
		numbers:    map[string]string{"100": "bob", "200": "carol", "300": ""},
		callerIDs:  map[string]string{"+1555": "bob", "+1666": "bob", "+1777": "carol", "+1888": ""},
		extensions: map[string][]string{"201": {"bob"}, "202": {"carol"}, "203": nil},
	}

	tests := []struct {
		name    string
		create  bool // CreateAccount instead of PutAccount
		a       store.Account
		wantErr error
		mention []string // the error must name these
	}{
		{"create: number taken", true,
			store.Account{Name: "dave", Number: "100"}, store.ErrExists, []string{`"dave"`, `number "100"`, `"bob"`}},
		{"create: caller ID taken", true,
			store.Account{Name: "dave", CallerIDs: []string{"+1888", "+1666"}}, store.ErrExists, []string{`caller ID "+1666"`, `"bob"`}},
		{"create: both taken", true,
			store.Account{Name: "dave", Number: "200", CallerIDs: []string{"+1555"}}, store.ErrExists, []string{`number "200"`, `"carol"`}},
		{"create: name taken", true,
			store.Account{Name: "carol", CallerIDs: []string{"100"}}, store.ErrExists, []string{`"carol"`}},
		{"put: number taken", false,
			store.Account{Name: "carol", Number: "100", CallerIDs: []string{"+1777"}}, store.ErrExists, []string{`"carol"`, `number "100"`, `"bob"`}},
		{"put: caller ID taken", false,
			store.Account{Name: "carol", Number: "300", CallerIDs: []string{"+1555"}}, store.ErrExists, []string{`caller ID "+1555"`, `"bob"`}},
		{"put: both taken", false,
			store.Account{Name: "carol", Number: "100", CallerIDs: []string{"+1666"}}, store.ErrExists, []string{`"bob"`}},
		{"put: new account, caller ID taken", false,
			store.Account{Name: "dave", Number: "300", CallerIDs: []string{"+1777"}}, store.ErrExists, []string{`caller ID "+1777"`, `"carol"`}},
		{"empty caller ID", false,
			store.Account{Name: "carol", Number: "300", CallerIDs: []string{""}}, store.ErrInvalid, []string{"empty caller ID"}},
		{"caller ID twice", true,
			store.Account{Name: "dave", CallerIDs: []string{"+1888", "+1888"}}, store.ErrInvalid, []string{`"+1888" listed twice`}},
		{"NUL in number", true,
			store.Account{Name: "dave", Number: "1\x002"}, store.ErrInvalid, []string{"NUL"}},
		{"NUL in caller ID", true,
			store.Account{Name: "dave", CallerIDs: []string{"+1\x00"}}, store.ErrInvalid, []string{"NUL"}},
		{"NUL in extension", false,
			store.Account{Name: "carol", Extension: "202\x00x"}, store.ErrInvalid, []string{"NUL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := open(t)
			mustUpdate(t, db, func(tx store.Tx) error {
				if err := tx.CreateAccount(bob); err != nil {
					return err
				}
				return tx.CreateAccount(carol)
			})

			// The closure swallows the error and commits: a refused
			// account must have written nothing for this to be safe.
			var err error
			mustUpdate(t, db, func(tx store.Tx) error {
				if tt.create {
					err = tx.CreateAccount(tt.a)
				} else {
					err = tx.PutAccount(tt.a)
				}
				return nil
			})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			for _, m := range tt.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %s", err, m)
				}
			}

			checkDoor(t, db, before)
			mustView(t, db, func(tx store.Tx) error {
				as, err := tx.Accounts()
				if err != nil {
					return err
				}
				if !reflect.DeepEqual(as, []store.Account{bob, carol}) {
					t.Errorf("accounts changed: %v", as)
				}
				return nil
			})
		})
	}
}

func testDoorValuesAreReleased(t *testing.T, open opener) {
	db := open(t)
	mustUpdate(t, db, func(tx store.Tx) error {
		for _, a := range []store.Account{
			{Name: "bob", Extension: "201", Number: "100", CallerIDs: []string{"+1555", "+1666"}},
			{Name: "carol", Extension: "202"},
		} {
			if err := tx.CreateAccount(a); err != nil {
				return err
			}
		}
		return nil
	})

	steps := []struct {
		name string
		fn   func(tx store.Tx) error
		want doorState
	}{
		{
			name: "re-putting bob unchanged keeps everything",
			fn: func(tx store.Tx) error {
				a, err := tx.Account("bob")
				if err != nil {
					return err
				}
				return tx.PutAccount(a)
			},
			want: doorState{
				numbers:   map[string]string{"100": "bob"},
				callerIDs: map[string]string{"+1555": "bob", "+1666": "bob"},
			},
		},
		{
			name: "bob changes number and drops a caller ID",
			fn: func(tx store.Tx) error {
				a, err := tx.Account("bob")
				if err != nil {
					return err
				}
				a.Number, a.CallerIDs = "101", []string{"+1666"}
				return tx.PutAccount(a)
			},
			want: doorState{
				numbers:   map[string]string{"100": "", "101": "bob"},
				callerIDs: map[string]string{"+1555": "", "+1666": "bob"},
			},
		},
		{
			name: "carol takes what bob gave up",
			fn: func(tx store.Tx) error {
				a, err := tx.Account("carol")
				if err != nil {
					return err
				}
				a.Number, a.CallerIDs = "100", []string{"+1555"}
				return tx.PutAccount(a)
			},
			want: doorState{
				numbers:   map[string]string{"100": "carol", "101": "bob"},
				callerIDs: map[string]string{"+1555": "carol", "+1666": "bob"},
			},
		},
		{
			name: "bob moves to carol's extension",
			fn: func(tx store.Tx) error {
				a, err := tx.Account("bob")
				if err != nil {
					return err
				}
				a.Extension = "202"
				return tx.PutAccount(a)
			},
			want: doorState{extensions: map[string][]string{"201": nil, "202": {"bob", "carol"}}},
		},
		{
			name: "deleting bob frees his keys",
			fn:   func(tx store.Tx) error { _, _, err := tx.DeleteAccount("bob"); return err },
			want: doorState{
				numbers:    map[string]string{"100": "carol", "101": ""},
				callerIDs:  map[string]string{"+1555": "carol", "+1666": ""},
				extensions: map[string][]string{"202": {"carol"}},
			},
		},
		{
			name: "a new account takes bob's old values",
			fn: func(tx store.Tx) error {
				return tx.CreateAccount(store.Account{Name: "dave", Number: "101", CallerIDs: []string{"+1666"}})
			},
			want: doorState{
				numbers:   map[string]string{"101": "dave"},
				callerIDs: map[string]string{"+1666": "dave"},
			},
		},
		{
			name: "a new bob is not found through the old bob's values",
			fn:   func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "bob"}) },
			want: doorState{
				numbers:    map[string]string{"101": "dave"},
				extensions: map[string][]string{"201": nil, "202": {"carol"}},
			},
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			mustUpdate(t, db, st.fn)
			checkDoor(t, db, st.want)
		})
	}
}

// Lookups see the transaction's own writes, and a rolled-back account
// leaves nothing to find.
func testDoorLookupsRollBack(t *testing.T, open opener) {
	db := open(t)
	boom := errors.New("boom")
	err := db.Update(func(tx store.Tx) error {
		if err := tx.CreateAccount(store.Account{Name: "bob", Number: "100", CallerIDs: []string{"+1555"}, Extension: "201"}); err != nil {
			return err
		}
		if _, err := tx.AccountByNumber("100"); err != nil {
			t.Errorf("lookup inside the creating transaction: %v", err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	checkDoor(t, db, doorState{
		numbers:    map[string]string{"100": ""},
		callerIDs:  map[string]string{"+1555": ""},
		extensions: map[string][]string{"201": nil},
	})

	err = db.View(func(tx store.Tx) error {
		return tx.CreateAccount(store.Account{Name: "bob", Number: "100"})
	})
	if err == nil {
		t.Error("CreateAccount with a number in View succeeded")
	}
	checkDoor(t, db, doorState{numbers: map[string]string{"100": ""}})
}

func testAccountsByExtension(t *testing.T, open opener) {
	db := open(t)
	mustUpdate(t, db, func(tx store.Tx) error {
		// Created out of order; results come back sorted by name.
		for _, a := range []store.Account{
			{Name: "zed", Extension: "201"},
			{Name: "bob", Extension: "201", Comment: "shares 201 with zed"},
			{Name: "carol", Extension: "2010"},
			{Name: "dave", Extension: "20"},
			{Name: "erin"},
		} {
			if err := tx.CreateAccount(a); err != nil {
				return err
			}
		}
		return nil
	})
	tests := []struct {
		ext  string
		want []string
	}{
		{"201", []string{"bob", "zed"}},
		{"2010", []string{"carol"}},
		{"20", []string{"dave"}},
		{"2", nil},
		{"", nil},
		{"999", nil},
	}
	for _, tt := range tests {
		t.Run(tt.ext, func(t *testing.T) {
			mustView(t, db, func(tx store.Tx) error {
				as, err := tx.AccountsByExtension(tt.ext)
				if err != nil {
					return err
				}
				if tt.want == nil && as != nil {
					t.Errorf("got %v, want nil", as)
				}
				var names []string
				for _, a := range as {
					if a.Extension != tt.ext {
						t.Errorf("account %q has extension %q", a.Name, a.Extension)
					}
					names = append(names, a.Name)
				}
				if !reflect.DeepEqual(names, tt.want) {
					t.Errorf("got %q, want %q", names, tt.want)
				}
				return nil
			})
		})
	}
	mustView(t, db, func(tx store.Tx) error {
		as, err := tx.AccountsByExtension("201")
		if err == nil && (len(as) != 2 || as[0].Comment != "shares 201 with zed") {
			t.Errorf("full records not returned: %+v", as)
		}
		return err
	})
}

func entryIDs(es []store.Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func seedEntries(t *testing.T, db store.Store) {
	t.Helper()
	mustUpdate(t, db, func(tx store.Tx) error {
		for _, a := range []string{"alice", "bob", "al"} {
			if err := tx.CreateAccount(store.Account{Name: a, Perms: store.NewPermSet(0), Enabled: true}); err != nil {
				return err
			}
		}
		for _, e := range []store.Entry{
			{Account: "alice", Kind: store.KindIP, Value: "203.0.113.7"},       // e1
			{Account: "bob", Kind: store.KindIP, Value: "203.0.113.7"},         // e2
			{Account: "alice", Kind: store.KindCIDR, Value: "198.51.100.0/24"}, // e3
			{Account: "al", Kind: store.KindIP, Value: "203.0.113.70"},         // e4: value and account share prefixes
			{Account: "alice", Kind: store.KindFQDN, Value: "pbx.example.org"}, // e5
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

func checkEntryLookups(t *testing.T, db store.Store, want entryLookups) {
	t.Helper()
	mustView(t, db, func(tx store.Tx) error {
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
}

func testEntryLookups(t *testing.T, open opener) {
	db := open(t)
	seedEntries(t, db)
	checkEntryLookups(t, db, entryLookups{
		byValue: map[string][]string{
			"203.0.113.7": {"e1", "e2"}, "203.0.113.70": {"e4"}, "203.0.113": {},
			"198.51.100.0/24": {"e3"}, "pbx.example.org": {"e5"},
		},
		byAccount: map[string][]string{"alice": {"e1", "e3", "e5"}, "bob": {"e2"}, "al": {"e4"}, "nobody": {}},
	})

	// The same value for another account or kind is not a duplicate.
	mustUpdate(t, db, func(tx store.Tx) error {
		_, err := tx.AddEntry(store.Entry{Account: "bob", Kind: store.KindIP, Value: "203.0.113.7"})
		if !errors.Is(err, store.ErrExists) {
			t.Errorf("duplicate: %v", err)
		}
		_, err = tx.AddEntry(store.Entry{Account: "al", Kind: store.KindIP, Value: "203.0.113.7"})
		return err // e6
	})

	// Updates keep an entry findable; deletes make it unfindable.
	mustUpdate(t, db, func(tx store.Tx) error {
		e, err := tx.Entry("e3")
		if err != nil {
			return err
		}
		e.Perms, e.Comment = store.NewPermSet(1, 2), "branch office"
		if _, err := tx.UpdateEntry(e); err != nil {
			return err
		}
		if _, err := tx.DeleteEntry("e1"); err != nil {
			return err
		}
		_, _, err = tx.DeleteAccount("bob")
		return err
	})
	checkEntryLookups(t, db, entryLookups{
		byValue:   map[string][]string{"203.0.113.7": {"e6"}, "198.51.100.0/24": {"e3"}},
		byAccount: map[string][]string{"alice": {"e3", "e5"}, "bob": {}, "al": {"e4", "e6"}},
	})
	mustView(t, db, func(tx store.Tx) error {
		e, err := tx.Entry("e3")
		if err == nil && (e.Perms != store.NewPermSet(1, 2) || e.Comment != "branch office" || e.Created.IsZero()) {
			t.Errorf("updated entry: %+v", e)
		}
		return err
	})
}

func testUpdateEntryRefusesIdentityChange(t *testing.T, open opener) {
	db := open(t)
	seedEntries(t, db)
	for _, edit := range []func(*store.Entry){
		func(e *store.Entry) { e.Value = "203.0.113.8" },
		func(e *store.Entry) { e.Account = "bob" },
		func(e *store.Entry) { e.Kind = store.KindCIDR },
	} {
		err := db.Update(func(tx store.Tx) error {
			e, err := tx.Entry("e1")
			if err != nil {
				return err
			}
			edit(&e)
			_, err = tx.UpdateEntry(e)
			return err
		})
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("identity change: %v, want ErrInvalid", err)
		}
	}
	err := db.Update(func(tx store.Tx) error {
		_, err := tx.UpdateEntry(store.Entry{ID: "e99", Account: "alice", Kind: store.KindIP, Value: "192.0.2.1"})
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing entry: %v", err)
	}
}

// Read-modify-writes from many goroutines: a lost update shows as a
// counter short of its total, a reused ID as fewer distinct entry IDs.
func testConcurrentUpdates(t *testing.T, open opener) {
	db := open(t)
	const counter = "conformance-counter"
	mustUpdate(t, db, func(tx store.Tx) error {
		if err := tx.CreateAccount(store.Account{Name: "counter"}); err != nil {
			return err
		}
		return tx.PutSetting(counter, []byte("0"))
	})

	const workers, perWorker = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				err := db.Update(func(tx store.Tx) error {
					a, err := tx.Account("counter")
					if err != nil {
						return err
					}
					a.MaxGrants++
					if err := tx.PutAccount(a); err != nil {
						return err
					}
					raw, err := tx.Setting(counter)
					if err != nil {
						return err
					}
					n, err := strconv.Atoi(string(raw))
					if err != nil {
						return err
					}
					if err := tx.PutSetting(counter, []byte(strconv.Itoa(n+1))); err != nil {
						return err
					}
					_, err = tx.AddEntry(store.Entry{Account: "counter", Kind: store.KindFQDN, Value: fmt.Sprintf("w%d-%d.example.org", w, i)})
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

	mustView(t, db, func(tx store.Tx) error {
		a, err := tx.Account("counter")
		if err != nil {
			return err
		}
		if a.MaxGrants != workers*perWorker {
			t.Errorf("account counter = %d, want %d", a.MaxGrants, workers*perWorker)
		}
		raw, err := tx.Setting(counter)
		if err != nil {
			return err
		}
		if want := strconv.Itoa(workers * perWorker); string(raw) != want {
			t.Errorf("setting counter = %s, want %s", raw, want)
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

// Which error a backend gives is its own business; that it gives one,
// and writes nothing, is not.
func testTxMisuse(t *testing.T, open opener) {
	db := open(t)

	err := db.View(func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "a"}) })
	if err == nil {
		t.Error("write in View succeeded")
	}
	mustView(t, db, func(tx store.Tx) error {
		if _, err := tx.Account("a"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("account written in View: %v", err)
		}
		return nil
	})

	var leaked store.Tx
	mustView(t, db, func(tx store.Tx) error { leaked = tx; return nil })
	if _, err := leaked.Accounts(); err == nil {
		t.Error("a Tx used after its View returned still works")
	}
	mustUpdate(t, db, func(tx store.Tx) error { leaked = tx; return nil })
	if err := leaked.PutSetting("late", []byte("x")); err == nil {
		t.Error("a Tx used after its Update returned still writes")
	}
	mustView(t, db, func(tx store.Tx) error {
		if _, err := tx.Setting("late"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("write through an escaped Tx landed: %v", err)
		}
		return nil
	})
}
