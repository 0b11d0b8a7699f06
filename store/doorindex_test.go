package store

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// doorState is what the door index should answer, checked through the
// public lookups.
type doorState struct {
	numbers    map[string]string   // number -> account name, "" = not found
	callerIDs  map[string]string   // caller ID -> account name, "" = not found
	extensions map[string][]string // extension -> account names in order
}

func checkDoor(t *testing.T, db Store, want doorState) {
	t.Helper()
	mustView(t, db, func(tx Tx) error {
		lookup := func(what, value, want string, get func(string) (Account, error)) {
			t.Helper()
			a, err := get(value)
			switch {
			case want == "" && !errors.Is(err, ErrNotFound):
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

// indexKeys returns the raw door index, for tests that must see exactly
// which keys are left.
func indexKeys(t *testing.T, db *DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketDoorIndex)
		if b == nil {
			return errors.New("no door index bucket")
		}
		return b.ForEach(func(k, v []byte) error { out[string(k)] = string(v); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDoorIndexUpgrade(t *testing.T) {
	// A record as a dialgate from before the door index wrote it.
	const oldRecord = `{"v":1,"name":"olga","perms":[1],"enabled":true,"extension":"201"}`
	dropIndex := func(tx *bbolt.Tx) error { return tx.DeleteBucket(bucketDoorIndex) }

	tests := []struct {
		name    string
		edit    func(tx *bbolt.Tx) error
		wantErr error // from Open
		want    doorState
	}{
		{
			name: "index missing is built from the accounts",
			edit: func(tx *bbolt.Tx) error {
				if err := tx.Bucket(bucketAccounts).Put([]byte("olga"), []byte(oldRecord)); err != nil {
					return err
				}
				return dropIndex(tx)
			},
			want: doorState{
				numbers:    map[string]string{"100": "bob", "200": "carol"},
				callerIDs:  map[string]string{"+1555": "bob", "+1666": "carol"},
				extensions: map[string][]string{"201": {"bob", "olga"}, "202": {"carol"}},
			},
		},
		{
			name: "two accounts claiming one number refuse to open",
			edit: func(tx *bbolt.Tx) error {
				rec := `{"v":1,"name":"mallory","perms":[],"enabled":true,"number":"100"}`
				if err := tx.Bucket(bucketAccounts).Put([]byte("mallory"), []byte(rec)); err != nil {
					return err
				}
				return dropIndex(tx)
			},
			wantErr: ErrExists,
		},
		{
			name: "an existing index is trusted, not rebuilt",
			edit: func(tx *bbolt.Tx) error { return tx.Bucket(bucketDoorIndex).Delete([]byte("c\x00+1555")) },
			want: doorState{
				numbers:   map[string]string{"100": "bob"},
				callerIDs: map[string]string{"+1555": "", "+1666": "carol"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t)
			mustUpdate(t, db, func(tx Tx) error {
				for _, a := range []Account{
					{Name: "bob", Extension: "201", Number: "100", CallerIDs: []string{"+1555"}},
					{Name: "carol", Extension: "202", Number: "200", CallerIDs: []string{"+1666"}},
				} {
					if err := tx.CreateAccount(a); err != nil {
						return err
					}
				}
				return nil
			})
			path := db.Path()
			db.Close()
			writeRaw(t, path, tt.edit)

			db, err := Open(path, Options{})
			if tt.wantErr != nil {
				if err == nil {
					db.Close()
					t.Fatal("Open succeeded")
				}
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "door index") {
					t.Fatalf("Open = %v, want %v naming the file and the index", err, tt.wantErr)
				}
				// Nothing half-built was left behind.
				writeRaw(t, path, func(tx *bbolt.Tx) error {
					if tx.Bucket(bucketDoorIndex) != nil {
						t.Error("failed build left an index bucket")
					}
					return nil
				})
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			checkDoor(t, db, tt.want)
			mustView(t, db, func(tx Tx) error {
				// The old record reads with zero door fields.
				if a, err := tx.Account("olga"); err == nil && (a.Number != "" || a.CallerIDs != nil) {
					t.Errorf("old record = %#v", a)
				}
				return nil
			})
			// And the index is maintained from here on.
			mustUpdate(t, db, func(tx Tx) error {
				return tx.CreateAccount(Account{Name: "dave", Number: "300", Extension: "201"})
			})
			checkDoor(t, db, doorState{numbers: map[string]string{"300": "dave"}})
		})
	}
}

func TestFreshDatabaseHasDoorIndex(t *testing.T) {
	db := openTest(t)
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketDoorIndex) == nil {
			t.Error("fresh database has no door index bucket")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestStaleDoorIndex(t *testing.T) {
	// An index edited behind the store's back (or left stale by an older
	// dialgate) may make a lookup fail, but never return the wrong account.
	db := openTest(t)
	mustUpdate(t, db, func(tx Tx) error {
		for _, a := range []Account{
			{Name: "bob", Number: "100", Extension: "201"},
			{Name: "carol", Number: "200"},
		} {
			if err := tx.CreateAccount(a); err != nil {
				return err
			}
		}
		return nil
	})
	path := db.Path()
	db.Close()
	writeRaw(t, path, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketDoorIndex)
		for k, v := range map[string]string{
			"n\x00100":         "carol", // carol's record says 200
			"n\x00999":         "ghost", // no such account
			"x\x00201\x00zoe":  "",      // no such account
			"c\x00+1555":       "bob",   // bob's record lists no caller IDs
			"x\x00202\x00bob":  "",      // bob is on 201
			"n\x00300":         "bob",   // bob's record says 100
			"c\x00+1666":       "ghost",
			"x\x00203\x00nope": "",
		} {
			if err := b.Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	tests := []struct {
		name string
		get  func(tx Tx) (any, error)
	}{
		{"number names another holder", func(tx Tx) (any, error) { return tx.AccountByNumber("100") }},
		{"number names a missing account", func(tx Tx) (any, error) { return tx.AccountByNumber("999") }},
		{"caller ID not in the record", func(tx Tx) (any, error) { return tx.AccountByCallerID("+1555") }},
		{"extension names a missing account", func(tx Tx) (any, error) { return tx.AccountsByExtension("201") }},
		{"extension not in the record", func(tx Tx) (any, error) { return tx.AccountsByExtension("202") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := db.View(func(tx Tx) error {
				got, err := tt.get(tx)
				if err == nil {
					t.Errorf("got %v, want an error", got)
				}
				return err
			})
			if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "stale index") {
				t.Errorf("error = %v, want a stale-index error that is not ErrNotFound", err)
			}
		})
	}

	// Writes take stale keys over instead of refusing.
	mustUpdate(t, db, func(tx Tx) error {
		if err := tx.CreateAccount(Account{Name: "dave", Number: "999", CallerIDs: []string{"+1555", "+1666"}}); err != nil {
			return err
		}
		return tx.PutAccount(Account{Name: "carol", Number: "300"})
	})
	checkDoor(t, db, doorState{
		numbers:   map[string]string{"999": "dave", "300": "carol", "200": ""},
		callerIDs: map[string]string{"+1555": "dave", "+1666": "dave"},
	})
	// A value that is really held is still refused.
	err = db.Update(func(tx Tx) error { return tx.PutAccount(Account{Name: "carol", Number: "999"}) })
	if !errors.Is(err, ErrExists) {
		t.Errorf("taking dave's number = %v, want ErrExists", err)
	}
}

func TestDeleteAccountWithUnreadableRecord(t *testing.T) {
	// A record this build cannot decode can still be deleted, and takes its
	// index keys with it.
	db := openTest(t)
	mustUpdate(t, db, func(tx Tx) error {
		if err := tx.CreateAccount(Account{Name: "future", Number: "100", CallerIDs: []string{"+1555"}, Extension: "201"}); err != nil {
			return err
		}
		return tx.CreateAccount(Account{Name: "bob", Number: "200", Extension: "201"})
	})
	path := db.Path()
	db.Close()
	writeRaw(t, path, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketAccounts).Put([]byte("future"), []byte(`{"v":2,"name":"future"}`))
	})
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustUpdate(t, db, func(tx Tx) error { _, _, err := tx.DeleteAccount("future"); return err })
	want := map[string]string{"n\x00200": "bob", "x\x00201\x00bob": ""}
	if got := indexKeys(t, db); !reflect.DeepEqual(got, want) {
		t.Errorf("index = %q, want %q", got, want)
	}
}

// BenchmarkAccountByNumber compares the indexed lookup with what it
// replaces, a scan of every account, on 10 000 accounts.
func BenchmarkAccountByNumber(b *testing.B) {
	const n = 10000
	db, err := Open(b.TempDir()+"/dialgate.db", Options{Create: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx Tx) error {
		for i := range n {
			a := Account{
				Name: fmt.Sprintf("user%05d", i), Perms: NewPermSet(1, 2), Enabled: true,
				Extension: fmt.Sprint(1000 + i%500), Number: fmt.Sprint(100000 + i),
				CallerIDs:    []string{fmt.Sprintf("+1555%07d", i)},
				PasscodeHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
			}
			if err := tx.CreateAccount(a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	target := fmt.Sprint(100000 + n*3/4)

	var indexed float64
	b.Run("index", func(b *testing.B) {
		for b.Loop() {
			err := db.View(func(tx Tx) error {
				a, err := tx.AccountByNumber(target)
				if err == nil && a.Number != target {
					err = fmt.Errorf("found %q", a.Name)
				}
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		indexed = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			err := db.View(func(tx Tx) error {
				as, err := tx.Accounts()
				if err != nil {
					return err
				}
				for _, a := range as {
					if a.Number == target {
						return nil
					}
				}
				return errors.New("not found by scan")
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		// A benchmark with sub-benchmarks reports nothing itself, so the
		// ratio goes here; it needs the index run of the same invocation.
		if scanned := float64(b.Elapsed().Nanoseconds()) / float64(b.N); indexed > 0 {
			b.ReportMetric(scanned/indexed, "scan/index")
		}
	})
}

// The door fields are omitted from the JSON record when empty, so a record
// without them looks as it did before they existed.
func TestDoorFieldsOmittedWhenEmpty(t *testing.T) {
	db := openTest(t)
	mustUpdate(t, db, func(tx Tx) error {
		return tx.CreateAccount(Account{Name: "carol", Created: t0, CallerIDs: []string{}})
	})
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		raw := string(tx.Bucket(bucketAccounts).Get([]byte("carol")))
		if strings.Contains(raw, "number") || strings.Contains(raw, "caller_ids") {
			t.Errorf("record without door fields = %s", raw)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A refused account writes no index key: the conformance suite sees the
// lookups unchanged, this sees the raw index unchanged.
func TestRefusedAccountLeavesDoorIndex(t *testing.T) {
	db := openTest(t)
	mustUpdate(t, db, func(tx Tx) error {
		if err := tx.CreateAccount(Account{Name: "bob", Extension: "201", Number: "100", CallerIDs: []string{"+1555", "+1666"}}); err != nil {
			return err
		}
		return tx.CreateAccount(Account{Name: "carol", Extension: "202", Number: "200", CallerIDs: []string{"+1777"}})
	})
	keysBefore := indexKeys(t, db)
	for _, r := range []struct {
		create bool
		a      Account
	}{
		{true, Account{Name: "dave", Number: "100"}},
		{true, Account{Name: "dave", CallerIDs: []string{"+1888", "+1666"}}},
		{true, Account{Name: "dave", Number: "200", CallerIDs: []string{"+1555"}}},
		{true, Account{Name: "carol", CallerIDs: []string{"100"}}},
		{false, Account{Name: "carol", Number: "100", CallerIDs: []string{"+1777"}}},
		{false, Account{Name: "carol", Number: "300", CallerIDs: []string{"+1555"}}},
		{false, Account{Name: "carol", Number: "100", CallerIDs: []string{"+1666"}}},
		{false, Account{Name: "dave", Number: "300", CallerIDs: []string{"+1777"}}},
		{false, Account{Name: "carol", Number: "300", CallerIDs: []string{""}}},
		{true, Account{Name: "dave", CallerIDs: []string{"+1888", "+1888"}}},
		{true, Account{Name: "dave", Number: "1\x002"}},
		{true, Account{Name: "dave", CallerIDs: []string{"+1\x00"}}},
		{false, Account{Name: "carol", Extension: "202\x00x"}},
	} {
		var err error
		mustUpdate(t, db, func(tx Tx) error {
			if r.create {
				err = tx.CreateAccount(r.a)
			} else {
				err = tx.PutAccount(r.a)
			}
			return nil
		})
		if err == nil {
			t.Fatalf("%#v accepted", r.a)
		}
		if after := indexKeys(t, db); !reflect.DeepEqual(after, keysBefore) {
			t.Errorf("%#v: index changed:\n got %q\nwant %q", r.a, after, keysBefore)
		}
	}
}

// After values move between accounts and accounts go, the index holds
// exactly the keys of the accounts that remain: nothing left over.
func TestDoorIndexHoldsOnlyLiveKeys(t *testing.T) {
	db := openTest(t)
	mustUpdate(t, db, func(tx Tx) error {
		for _, a := range []Account{
			{Name: "bob", Extension: "201", Number: "100", CallerIDs: []string{"+1555", "+1666"}},
			{Name: "carol", Extension: "202"},
		} {
			if err := tx.CreateAccount(a); err != nil {
				return err
			}
		}
		return nil
	})
	edit := func(name string, fn func(a *Account)) func(tx Tx) error {
		return func(tx Tx) error {
			a, err := tx.Account(name)
			if err != nil {
				return err
			}
			fn(&a)
			return tx.PutAccount(a)
		}
	}
	for _, step := range []func(tx Tx) error{
		edit("bob", func(a *Account) {}),
		edit("bob", func(a *Account) { a.Number, a.CallerIDs = "101", []string{"+1666"} }),
		edit("carol", func(a *Account) { a.Number, a.CallerIDs = "100", []string{"+1555"} }),
		edit("bob", func(a *Account) { a.Extension = "202" }),
		func(tx Tx) error { _, _, err := tx.DeleteAccount("bob"); return err },
		func(tx Tx) error {
			return tx.CreateAccount(Account{Name: "dave", Number: "101", CallerIDs: []string{"+1666"}})
		},
		func(tx Tx) error { return tx.CreateAccount(Account{Name: "bob"}) },
	} {
		mustUpdate(t, db, step)
	}
	want := map[string]string{
		"n\x00100": "carol", "c\x00+1555": "carol", "x\x00202\x00carol": "",
		"n\x00101": "dave", "c\x00+1666": "dave",
	}
	if got := indexKeys(t, db); !reflect.DeepEqual(got, want) {
		t.Errorf("index = %q\nwant %q", got, want)
	}
}

// The raw index after a rollback, and bbolt's own error for a write in a
// read-only transaction; the suite checks what the lookups say.
func TestDoorIndexRollsBack(t *testing.T) {
	db := openTest(t)
	boom := errors.New("boom")
	err := db.Update(func(tx Tx) error {
		if err := tx.CreateAccount(Account{Name: "bob", Number: "100", CallerIDs: []string{"+1555"}, Extension: "201"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if got := indexKeys(t, db); len(got) != 0 {
		t.Errorf("index after rollback = %q", got)
	}

	err = db.View(func(tx Tx) error {
		return tx.CreateAccount(Account{Name: "bob", Number: "100"})
	})
	if !errors.Is(err, bolterrors.ErrTxNotWritable) {
		t.Errorf("CreateAccount with a number in View = %v, want ErrTxNotWritable", err)
	}
}
