package store

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

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

func TestDoorFieldsRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   Account
		want Account // what reads back
	}{
		{
			name: "all door fields",
			in: Account{Name: "bob", Perms: NewPermSet(1), Created: t0, Enabled: true, Extension: "201",
				Number: "4711", CallerIDs: []string{"+15551234567", "201"}},
			want: Account{Name: "bob", Perms: NewPermSet(1), Created: t0, Enabled: true, Extension: "201",
				Number: "4711", CallerIDs: []string{"+15551234567", "201"}},
		},
		{
			name: "none",
			in:   Account{Name: "carol", Created: t0},
			want: Account{Name: "carol", Created: t0},
		},
		{
			name: "empty caller ID list reads back as nil",
			in:   Account{Name: "dave", Created: t0, CallerIDs: []string{}},
			want: Account{Name: "dave", Created: t0},
		},
	}
	db := openTest(t)
	mustUpdate(t, db, func(tx Tx) error {
		for _, tt := range tests {
			if err := tx.CreateAccount(tt.in); err != nil {
				return err
			}
		}
		return nil
	})
	db = reopen(t, db)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustView(t, db, func(tx Tx) error {
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

	// The new JSON fields are omitted when empty, so a record without
	// them looks as it did before they existed.
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

func TestDoorLookupMisses(t *testing.T) {
	db := openTest(t)
	mustUpdate(t, db, func(tx Tx) error {
		return tx.CreateAccount(Account{Name: "bob", Number: "4711", CallerIDs: []string{"+1555"}, Extension: "201"})
	})
	checkDoor(t, db, doorState{
		numbers:    map[string]string{"": "", "471": "", "47111": "", "+1555": ""},
		callerIDs:  map[string]string{"": "", "+155": "", "4711": ""},
		extensions: map[string][]string{"": nil, "20": nil, "2010": nil, "201\x00bob": nil},
	})
	err := db.View(func(tx Tx) error { _, err := tx.AccountByNumber("12"); return err })
	if want := `account with number "12": not found`; err == nil || err.Error() != want {
		t.Errorf("missing number: %v, want %q", err, want)
	}
}

func TestDoorUniqueness(t *testing.T) {
	// bob holds number 100, caller IDs +1555 and +1666; carol holds 200
	// and +1777.
	bob := Account{Name: "bob", Created: t0, Extension: "201", Number: "100", CallerIDs: []string{"+1555", "+1666"}}
	carol := Account{Name: "carol", Created: t0, Extension: "202", Number: "200", CallerIDs: []string{"+1777"}}
	before := doorState{
		numbers:    map[string]string{"100": "bob", "200": "carol", "300": ""},
		callerIDs:  map[string]string{"+1555": "bob", "+1666": "bob", "+1777": "carol", "+1888": ""},
		extensions: map[string][]string{"201": {"bob"}, "202": {"carol"}, "203": nil},
	}

	tests := []struct {
		name    string
		create  bool // CreateAccount instead of PutAccount
		a       Account
		wantErr error
		mention []string // the error must name these
	}{
		{"create: number taken", true,
			Account{Name: "dave", Number: "100"}, ErrExists, []string{`"dave"`, `number "100"`, `"bob"`}},
		{"create: caller ID taken", true,
			Account{Name: "dave", CallerIDs: []string{"+1888", "+1666"}}, ErrExists, []string{`caller ID "+1666"`, `"bob"`}},
		{"create: both taken", true,
			Account{Name: "dave", Number: "200", CallerIDs: []string{"+1555"}}, ErrExists, []string{`number "200"`, `"carol"`}},
		{"create: name taken", true,
			Account{Name: "carol", CallerIDs: []string{"100"}}, ErrExists, []string{`"carol"`}},
		{"put: number taken", false,
			Account{Name: "carol", Number: "100", CallerIDs: []string{"+1777"}}, ErrExists, []string{`"carol"`, `number "100"`, `"bob"`}},
		{"put: caller ID taken", false,
			Account{Name: "carol", Number: "300", CallerIDs: []string{"+1555"}}, ErrExists, []string{`caller ID "+1555"`, `"bob"`}},
		{"put: both taken", false,
			Account{Name: "carol", Number: "100", CallerIDs: []string{"+1666"}}, ErrExists, []string{`"bob"`}},
		{"put: new account, caller ID taken", false,
			Account{Name: "dave", Number: "300", CallerIDs: []string{"+1777"}}, ErrExists, []string{`caller ID "+1777"`, `"carol"`}},
		{"empty caller ID", false,
			Account{Name: "carol", Number: "300", CallerIDs: []string{""}}, ErrInvalid, []string{"empty caller ID"}},
		{"caller ID twice", true,
			Account{Name: "dave", CallerIDs: []string{"+1888", "+1888"}}, ErrInvalid, []string{`"+1888" listed twice`}},
		{"NUL in number", true,
			Account{Name: "dave", Number: "1\x002"}, ErrInvalid, []string{"NUL"}},
		{"NUL in caller ID", true,
			Account{Name: "dave", CallerIDs: []string{"+1\x00"}}, ErrInvalid, []string{"NUL"}},
		{"NUL in extension", false,
			Account{Name: "carol", Extension: "202\x00x"}, ErrInvalid, []string{"NUL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t)
			mustUpdate(t, db, func(tx Tx) error {
				if err := tx.CreateAccount(bob); err != nil {
					return err
				}
				return tx.CreateAccount(carol)
			})
			keysBefore := indexKeys(t, db)

			// The closure swallows the error and commits: a refused
			// account must have written nothing for this to be safe.
			var err error
			mustUpdate(t, db, func(tx Tx) error {
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

			if after := indexKeys(t, db); !reflect.DeepEqual(after, keysBefore) {
				t.Errorf("index changed:\n got %q\nwant %q", after, keysBefore)
			}
			checkDoor(t, db, before)
			mustView(t, db, func(tx Tx) error {
				as, err := tx.Accounts()
				if err != nil {
					return err
				}
				if !reflect.DeepEqual(as, []Account{bob, carol}) {
					t.Errorf("accounts changed: %v", as)
				}
				return nil
			})
		})
	}
}

func TestDoorValuesAreReleased(t *testing.T) {
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

	steps := []struct {
		name string
		fn   func(tx Tx) error
		want doorState
	}{
		{
			name: "re-putting bob unchanged keeps everything",
			fn: func(tx Tx) error {
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
			fn: func(tx Tx) error {
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
			fn: func(tx Tx) error {
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
			fn: func(tx Tx) error {
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
			fn:   func(tx Tx) error { _, _, err := tx.DeleteAccount("bob"); return err },
			want: doorState{
				numbers:    map[string]string{"100": "carol", "101": ""},
				callerIDs:  map[string]string{"+1555": "carol", "+1666": ""},
				extensions: map[string][]string{"202": {"carol"}},
			},
		},
		{
			name: "a new account takes bob's old values",
			fn: func(tx Tx) error {
				return tx.CreateAccount(Account{Name: "dave", Number: "101", CallerIDs: []string{"+1666"}})
			},
			want: doorState{
				numbers:   map[string]string{"101": "dave"},
				callerIDs: map[string]string{"+1666": "dave"},
			},
		},
		{
			name: "a new bob is not found through the old bob's values",
			fn:   func(tx Tx) error { return tx.CreateAccount(Account{Name: "bob"}) },
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

	// Nothing left over: exactly the keys of the accounts that remain.
	want := map[string]string{
		"n\x00100": "carol", "c\x00+1555": "carol", "x\x00202\x00carol": "",
		"n\x00101": "dave", "c\x00+1666": "dave",
	}
	if got := indexKeys(t, db); !reflect.DeepEqual(got, want) {
		t.Errorf("index = %q\nwant %q", got, want)
	}
}

func TestDoorIndexRollsBack(t *testing.T) {
	db := openTest(t)
	boom := errors.New("boom")
	err := db.Update(func(tx Tx) error {
		if err := tx.CreateAccount(Account{Name: "bob", Number: "100", CallerIDs: []string{"+1555"}, Extension: "201"}); err != nil {
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

func TestAccountsByExtension(t *testing.T) {
	db := openTest(t)
	mustUpdate(t, db, func(tx Tx) error {
		// Created out of order; results come back sorted by name.
		for _, a := range []Account{
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
			mustView(t, db, func(tx Tx) error {
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
	mustView(t, db, func(tx Tx) error {
		as, err := tx.AccountsByExtension("201")
		if err == nil && (len(as) != 2 || as[0].Comment != "shares 201 with zed") {
			t.Errorf("full records not returned: %+v", as)
		}
		return err
	})
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

func TestLockouts(t *testing.T) {
	db := openTest(t)
	mustView(t, db, func(tx Tx) error {
		ls, err := tx.Lockouts()
		if err != nil || ls != nil {
			t.Errorf("empty Lockouts = %v, %v; want nil", ls, err)
		}
		return nil
	})
	recs := []Lockout{
		{Key: "src:192.0.2.1", Failures: []time.Time{t0}},
		{Key: "cid:+1555", Failures: []time.Time{t0, t0.Add(time.Second)}, LockedUntil: t0.Add(time.Hour)},
		{Key: "cid:+1444"},
	}
	mustUpdate(t, db, func(tx Tx) error {
		for _, l := range recs {
			if err := tx.PutLockout(l); err != nil {
				return err
			}
		}
		return nil
	})
	db = reopen(t, db)
	mustView(t, db, func(tx Tx) error {
		ls, err := tx.Lockouts()
		if err != nil {
			return err
		}
		want := []Lockout{recs[2], recs[1], recs[0]}
		if !reflect.DeepEqual(ls, want) {
			t.Errorf("Lockouts =\n %+v\nwant\n %+v", ls, want)
		}
		return nil
	})
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
