package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// realDB writes a database with enough in it to span many pages (and a
// bucket big enough to need branch pages), closes it and returns its
// path and bytes.
func realDB(t testing.TB) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dialgate.db")
	db, err := Open(path, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx Tx) error {
		for i := range 300 {
			name := fmt.Sprintf("acct%03d", i)
			a := Account{Name: name, Perms: NewPermSet(1, 8), Enabled: true, Comment: strings.Repeat("x", 40),
				Number: fmt.Sprintf("%06d", 100000+i), CallerIDs: []string{fmt.Sprintf("+4930%07d", i)}, Extension: fmt.Sprint(200 + i%20)}
			if err := tx.CreateAccount(a); err != nil {
				return err
			}
			if _, err := tx.AddEntry(Entry{Account: name, Kind: KindIP, Value: fmt.Sprintf("198.51.%d.%d", i/250, i%250+1)}); err != nil {
				return err
			}
			if err := tx.Audit(AuditRecord{Action: "entry.add", Actor: "cli", Account: name, Result: "ok"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A second transaction, so the two meta pages differ.
	if err := db.Update(func(tx Tx) error { return tx.CreateAccount(Account{Name: "last", Enabled: true}) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, data
}

// damagedCopy writes data to a fresh path and returns it.
func damagedCopy(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dialgate.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// wantRefused opens path as serve and restore do and wants sentinel, a
// message naming the file and the remedy, and the file unchanged.
func wantRefused(t *testing.T, path string, sentinel error, remedy string) {
	t.Helper()
	before, _ := os.ReadFile(path)
	_, statErr := os.Stat(path)
	for _, opts := range []Options{{}, {ReadOnly: true}} {
		db, err := Open(path, opts)
		if err == nil {
			db.Close()
			t.Fatalf("Open(%+v) succeeded", opts)
		}
		if !errors.Is(err, sentinel) {
			t.Errorf("Open(%+v): %v, want %v", opts, err, sentinel)
		}
		for _, want := range []string{path, remedy, "Backup and restore"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Open(%+v): %q does not say %q", opts, err, want)
			}
		}
	}
	after, _ := os.ReadFile(path)
	if _, err := os.Stat(path); (err == nil) != (statErr == nil) || !bytes.Equal(before, after) {
		t.Errorf("a refused Open changed %s (%d bytes before, %d after)", path, len(before), len(after))
	}
}

func TestOpenRefusesMissingOrEmpty(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "sub", "dialgate.db")
	wantRefused(t, missing, ErrNoDatabase, "dialgate init")
	if _, err := os.Stat(filepath.Dir(missing)); err == nil {
		t.Error("a refused Open created the directory")
	}

	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, empty, ErrNoDatabase, "dialgate init")

	// A bbolt file with no buckets: an init that died before its first
	// transaction. Only Create finishes it.
	bare := filepath.Join(dir, "bare.db")
	bdb, err := bbolt.Open(bare, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	bdb.Close()
	wantRefused(t, bare, ErrNoDatabase, "never initialised")

	for _, path := range []string{missing, empty, bare} {
		db, err := Open(path, Options{Create: true})
		if err != nil {
			t.Fatalf("Create %s: %v", path, err)
		}
		if err := db.View(func(tx Tx) error { _, err := tx.Accounts(); return err }); err != nil {
			t.Error(err)
		}
		db.Close()
		// Created once, it opens without Create.
		db, err = Open(path, Options{})
		if err != nil {
			t.Fatalf("reopen %s: %v", path, err)
		}
		db.Close()
	}
}

func TestOpenRefusesDamaged(t *testing.T) {
	_, good := realDB(t)
	ps := 4096
	if len(good) < 16*ps {
		t.Fatalf("test database is only %d bytes", len(good))
	}
	random := make([]byte, len(good))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	corruptMetas := bytes.Clone(good)
	for _, off := range []int{0, ps} {
		corruptMetas[off+16+20] ^= 0xff // inside each meta, under its checksum
	}
	garbledRoot := bytes.Clone(good)
	// Every page after the metas overwritten: nothing reachable is left.
	for i := 2 * ps; i < len(garbledRoot); i++ {
		garbledRoot[i] = byte(rng.Uint32())
	}
	cases := []struct {
		name string
		data []byte
		why  string
	}{
		{"truncated to 16 KiB", good[:16<<10], "truncated?"},
		{"truncated to half", good[:len(good)/2], "truncated?"},
		{"truncated mid-page", good[:len(good)/2+100], "truncated?"},
		{"truncated to 100 bytes", good[:100], "truncated?"},
		{"random bytes", random, "no valid meta page"},
		{"both meta pages corrupted", corruptMetas, "no valid meta page"},
		{"data pages overwritten", garbledRoot, "damaged"},
		{"text file", []byte(strings.Repeat("not a database\n", 1000)), "no valid meta page"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := damagedCopy(t, c.data)
			wantRefused(t, path, ErrDamaged, "dialgate db backup")
			_, err := Open(path, Options{Create: true})
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), c.why) {
				t.Errorf("Create on a damaged file: %v, want ErrDamaged saying %q", err, c.why)
			}
			if _, err := CheckFile(path, 0); !errors.Is(err, ErrDamaged) {
				t.Errorf("CheckFile: %v, want ErrDamaged", err)
			}
		})
	}
}

// TestOpenOneTornMeta: bbolt keeps two meta pages so that a torn write of
// one leaves the previous transaction; that is not damage.
func TestOpenOneTornMeta(t *testing.T) {
	_, good := realDB(t)
	ps := 4096
	// The newer meta (higher txid) is the one a crash tears.
	newer := 0
	if m0, m1 := native.Uint64(good[16+48:]), native.Uint64(good[ps+16+48:]); m1 > m0 {
		newer = ps
	}
	torn := bytes.Clone(good)
	torn[newer+16+20] ^= 0xff
	path := damagedCopy(t, torn)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open with one torn meta: %v", err)
	}
	defer db.Close()
	var n int
	db.View(func(tx Tx) error { as, err := tx.Accounts(); n = len(as); return err })
	if n != 300 { // the last transaction (account "last") is lost
		t.Errorf("%d accounts after falling back to the previous transaction, want 300", n)
	}
}

// TestOpenNeverCrashes overwrites each page in turn, then flips single
// bytes all over the file: Open either succeeds or reports damage; it
// never takes the process down.
func TestOpenNeverCrashes(t *testing.T) {
	_, good := realDB(t)
	ps := 4096
	rng := rand.New(rand.NewPCG(3, 4))
	try := func(t *testing.T, data []byte, what string) {
		path := damagedCopy(t, data)
		db, err := Open(path, Options{})
		if err != nil {
			if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrSchema) {
				t.Errorf("%s: %v, want ErrDamaged or ErrSchema", what, err)
			}
			return
		}
		// What opens must also read without crashing (errors are fine).
		db.View(func(tx Tx) error {
			tx.Accounts()
			tx.Entries()
			tx.AuditLog(time.Time{}, 0)
			return nil
		})
		db.Check()
		db.Close()
	}
	for p := 2; p < len(good)/ps; p++ {
		data := bytes.Clone(good)
		for i := p * ps; i < (p+1)*ps; i++ {
			data[i] = byte(rng.Uint32())
		}
		try(t, data, fmt.Sprintf("page %d overwritten", p))
	}
	for range 200 {
		data := bytes.Clone(good)
		i := rng.IntN(len(data))
		data[i] ^= byte(1 + rng.IntN(255))
		try(t, data, fmt.Sprintf("byte %d flipped", i))
	}
}

func TestCheckFile(t *testing.T) {
	path, _ := realDB(t)
	rep, err := CheckFile(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Accounts != 301 || rep.Entries != 300 || rep.Audit != 300 || !rep.DoorIndex || rep.Path != path || rep.Bytes == 0 {
		t.Errorf("report %+v", rep)
	}
	// A check changes nothing, and works while nobody holds the file.
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CheckFile(path, 100*time.Millisecond); !errors.Is(err, ErrLocked) {
		t.Errorf("CheckFile while the database is held: %v, want ErrLocked", err)
	}
	if rep2, err := db.Check(); err != nil || rep2 != rep {
		t.Errorf("Check on the open database: %+v, %v; want %+v", rep2, err, rep)
	}
	db.Close()

	// Records bbolt finds sound but dialgate cannot read.
	for name, edit := range map[string]func(tx *bbolt.Tx) error{
		"garbled account": func(tx *bbolt.Tx) error { return tx.Bucket(bucketAccounts).Put([]byte("acct001"), []byte("{garbage")) },
		"orphan entry": func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketEntries).Put(seqKey(9999), []byte(`{"v":1,"account":"ghost","kind":"ip","value":"192.0.2.1"}`))
		},
		"stale door index": func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketDoorIndex).Put([]byte("n\x00999999"), []byte("acct001"))
		},
		"garbled audit": func(tx *bbolt.Tx) error { return tx.Bucket(bucketAudit).Put(auditKey(time.Now(), 1), []byte("nope")) },
	} {
		t.Run(name, func(t *testing.T) {
			p, _ := realDB(t)
			writeRaw(t, p, edit)
			if _, err := CheckFile(p, 0); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), p) {
				t.Errorf("CheckFile: %v, want ErrDamaged naming %s", err, p)
			}
		})
	}
}

func TestBackupWhileWriting(t *testing.T) {
	path, _ := realDB(t)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			err := db.Update(func(tx Tx) error {
				return tx.Audit(AuditRecord{Action: "busy", Detail: strings.Repeat("y", 300)})
			})
			if err != nil {
				done <- err
				return
			}
		}
	}()
	out := filepath.Join(t.TempDir(), "backups", "dialgate.db.bak")
	os.MkdirAll(filepath.Dir(out), 0o755)
	var reps []CheckReport
	for range 5 {
		rep, err := SaveBackup(out, func(w io.Writer) error { _, err := db.Backup(w); return err })
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, rep)
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := mode(t, out); got != 0o600 {
		t.Errorf("backup mode %o, want 600", got)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	for _, rep := range reps {
		if rep.Accounts != 301 || rep.Path != out {
			t.Errorf("backup report %+v", rep)
		}
	}
	// The backup opens as a database of its own with the same accounts.
	bak, err := Open(out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer bak.Close()
	var a, b []Account
	db.View(func(tx Tx) (err error) { a, err = tx.Accounts(); return })
	bak.View(func(tx Tx) (err error) { b, err = tx.Accounts(); return })
	if len(a) != len(b) || len(a) != 301 {
		t.Fatalf("backup has %d accounts, the database %d", len(b), len(a))
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Number != b[i].Number {
			t.Fatalf("account %d: %+v in the backup, %+v in the database", i, b[i], a[i])
		}
	}
}

func TestSaveBackupKeepsOldOnFailure(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "b.db")
	if err := os.WriteFile(out, []byte("previous backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, write := range map[string]func(io.Writer) error{
		"write fails": func(w io.Writer) error { w.Write([]byte("partial")); return errors.New("connection lost") },
		"not a database": func(w io.Writer) error {
			_, err := w.Write(bytes.Repeat([]byte{0xAB}, 64<<10))
			return err
		},
	} {
		if _, err := SaveBackup(out, write); err == nil {
			t.Errorf("%s: SaveBackup succeeded", name)
		}
		if got, _ := os.ReadFile(out); string(got) != "previous backup" {
			t.Errorf("%s: the previous backup was replaced", name)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	if _, err := SaveBackup(dir, func(io.Writer) error { return nil }); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("backup onto a directory: %v", err)
	}
}

// BenchmarkOpenChecks: what the checks cost serve and restore at start.
func BenchmarkOpenChecks(b *testing.B) {
	path, data := realDB(b)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		db, err := Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
}

func TestCheckCopy(t *testing.T) {
	path, _ := realDB(t)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rep, err := db.CheckCopy()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Path != path || rep.Accounts != 301 || rep.Audit != 300 {
		t.Errorf("report %+v", rep)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("files left next to the database: %v", ents)
	}
	// A record only dialgate finds wrong is reported against the database.
	if err := db.bolt.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketEntries).Put(seqKey(9999), []byte(`{"v":1,"account":"ghost","kind":"ip","value":"192.0.2.1"}`))
	}); err != nil {
		t.Fatal(err)
	}
	_, err = db.CheckCopy()
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "database "+path+" is damaged") || !strings.Contains(err.Error(), "ghost") {
		t.Errorf("CheckCopy of a damaged database: %v", err)
	}
}
