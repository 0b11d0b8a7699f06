package store

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// openTest opens a fresh database in a temporary directory and closes it
// when the test ends.
func openTest(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "dialgate.db"), Options{Create: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func reopen(t *testing.T, db *DB) *DB {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	db2, err := Open(db.Path(), Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { _ = db2.Close() })
	return db2
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestOpenCreatesPrivateFileDespiteUmask(t *testing.T) {
	old := syscall.Umask(0) // process-wide: this test must not run in parallel
	defer syscall.Umask(old)

	dir := filepath.Join(t.TempDir(), "var", "lib", "dialgate")
	path := filepath.Join(dir, "dialgate.db")
	db, err := Open(path, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	if got := mode(t, path); got != 0o600 {
		t.Errorf("database mode = %o, want 600", got)
	}
	if got := mode(t, dir); got != 0o700 {
		t.Errorf("directory mode = %o, want 700", got)
	}
	if db.Path() != path {
		t.Errorf("Path() = %q, want %q", db.Path(), path)
	}
}

func TestOpenTightensExistingFile(t *testing.T) {
	db := openTest(t)
	path := db.Path()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := mode(t, path); got != 0o600 {
		t.Errorf("mode after reopen = %o, want 600", got)
	}
}

func TestOpenInitialisesEmptyFile(t *testing.T) {
	// An admin may touch the file before init; with Create an empty file
	// is a new database.
	path := filepath.Join(t.TempDir(), "dialgate.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := mode(t, path); got != 0o600 {
		t.Errorf("mode = %o, want 600", got)
	}
	if err := db.View(func(tx Tx) error { _, err := tx.Accounts(); return err }); err != nil {
		t.Error(err)
	}
}

func TestOpenLockedFailsFast(t *testing.T) {
	first := openTest(t)

	const timeout = 200 * time.Millisecond
	start := time.Now()
	second, err := Open(first.Path(), Options{Timeout: timeout})
	elapsed := time.Since(start)
	if err == nil {
		second.Close()
		t.Fatal("second Open succeeded while the first holds the database")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("error %v does not wrap ErrLocked", err)
	}
	if !errors.Is(err, bolterrors.ErrTimeout) {
		t.Errorf("error %v lost bbolt's cause", err)
	}
	for _, want := range []string{first.Path(), "held by another process", `"dialgate serve"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if elapsed > timeout+2*time.Second {
		t.Errorf("second Open took %v with a %v timeout", elapsed, timeout)
	}

	// The first opener is unaffected, and once it closes the lock is free.
	if err := first.Update(func(tx Tx) error { return tx.CreateAccount(Account{Name: "a"}) }); err != nil {
		t.Fatal(err)
	}
	reopen(t, first)
}

// writeRaw edits a database with bbolt directly, behind the store's back.
func writeRaw(t *testing.T, path string, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	bdb, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	if err := bdb.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func TestOpenSchemaMismatch(t *testing.T) {
	tests := []struct {
		name string
		edit func(tx *bbolt.Tx) error // nil: a foreign database, built from scratch
		want string
	}{
		{
			name: "newer version",
			edit: func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte("7")) },
			want: "has schema version 7, this dialgate supports 1",
		},
		{
			name: "garbled version",
			edit: func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte("seven")) },
			want: `unreadable schema version "seven"`,
		},
		{
			name: "version key missing",
			edit: func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keySchema) },
			want: "has no schema version",
		},
		{
			name: "bucket missing",
			edit: func(tx *bbolt.Tx) error { return tx.DeleteBucket(bucketGrants) },
			want: `lacks bucket "grants"`,
		},
		{
			name: "not a dialgate database",
			want: "is it a dialgate database?",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "dialgate.db")
			if tt.edit != nil {
				db, err := Open(path, Options{Create: true})
				if err != nil {
					t.Fatal(err)
				}
				db.Close()
				writeRaw(t, path, tt.edit)
			} else {
				writeRaw(t, path, func(tx *bbolt.Tx) error {
					_, err := tx.CreateBucket([]byte("someone-elses-data"))
					return err
				})
			}

			db, err := Open(path, Options{})
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, ErrSchema) {
				t.Errorf("error %v does not wrap ErrSchema", err)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to name %s and say %q", err, path, tt.want)
			}

			// A refused database must not have been "repaired".
			if tt.edit == nil {
				writeRaw(t, path, func(tx *bbolt.Tx) error {
					if tx.Bucket(bucketMeta) != nil {
						t.Error("Open wrote into a foreign database")
					}
					return nil
				})
			}
		})
	}
}

func TestOpenNotABoltFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dialgate.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database\n", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, Options{})
	if err == nil {
		db.Close()
		t.Fatal("Open succeeded on garbage")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
}

func TestRecordVersionMismatch(t *testing.T) {
	db := openTest(t)
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
	err = db.View(func(tx Tx) error { _, err := tx.Account("future"); return err })
	if !errors.Is(err, ErrSchema) {
		t.Fatalf("reading a v2 record: %v, want ErrSchema", err)
	}
	if want := `account "future": record version 2, this dialgate supports 1`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

const helperEnv = "DIALGATE_STORE_HELPER_DB"

// TestHelperWriter is not a test: TestReopenAfterCrash runs the test binary
// again with only this function selected, as a writer to be SIGKILLed.
func TestHelperWriter(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process for TestReopenAfterCrash")
	}
	db, err := Open(path, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx Tx) error { return tx.CreateAccount(Account{Name: "crash"}) }); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		err := db.Update(func(tx Tx) error {
			// Several writes per transaction, so a kill mid-commit could
			// show up as a half-applied transaction.
			if _, err := tx.AddEntry(Entry{Account: "crash", Kind: KindIP, Value: "192.0.2." + strconv.Itoa(i)}); err != nil {
				return err
			}
			return tx.Audit(AuditRecord{Action: "entry.add", Subject: strconv.Itoa(i)})
		})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			os.Stdout.WriteString("ready\n")
		}
	}
}

func TestReopenAfterCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	path := filepath.Join(t.TempDir(), "dialgate.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	// Kill only after the first commit, so "count > 0" tests the store and
	// not the speed of the machine.
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- nil
				return
			}
		}
		ready <- fmt.Errorf("exited before its first commit (%v)", sc.Err())
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("writer: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("writer never committed")
	}
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	db, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer db.Close()

	// bbolt's own structural check: page tree, freelist.
	err = db.bolt.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt check: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	var entries []Entry
	var audit []AuditRecord
	err = db.View(func(tx Tx) error {
		var err error
		if entries, err = tx.Entries(); err != nil {
			return err
		}
		audit, err = tx.AuditLog(time.Time{}, 0)
		return err
	})
	if err != nil {
		t.Fatalf("reading after crash: %v", err)
	}
	if len(entries) == 0 {
		t.Fatal("no entries survived")
	}
	// Each transaction added exactly one entry and one audit record, and
	// IDs are handed out in order: any gap or mismatch is a torn commit.
	for i, e := range entries {
		if want := formatID('e', uint64(i+1)); e.ID != want {
			t.Fatalf("entry %d has ID %q, want %q", i, e.ID, want)
		}
		if e.Account != "crash" || e.Kind != KindIP || e.Value != "192.0.2."+strconv.Itoa(i) {
			t.Fatalf("entry %s = %+v", e.ID, e)
		}
	}
	if len(audit) != len(entries) {
		t.Fatalf("%d entries but %d audit records", len(entries), len(audit))
	}
	t.Logf("%d transactions survived SIGKILL", len(entries))

	// And the database is writable again.
	err = db.Update(func(tx Tx) error {
		_, err := tx.AddEntry(Entry{Account: "crash", Kind: KindFQDN, Value: "after.example.org"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
