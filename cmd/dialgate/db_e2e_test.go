package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/firewall/fwtest"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// dbPath is the database newE2E's config names.
func (e *e2e) dbPath() string { return filepath.Join(e.dir, "db", "dialgate.db") }

var packetCounters = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// ruleset is e.kernel() without packet counters, which stray IPv6
// neighbour discovery moves: chains, rules, sets and their members.
func (e *e2e) ruleset() string {
	e.t.Helper()
	return packetCounters.ReplaceAllString(e.kernel(), "counter")
}

// dbLab is a server with a whitelist in the kernel (ops may SSH from the
// client, nobody else), the daemon stopped, and the database's bytes.
func dbLab(t *testing.T, backend string) (*e2e, []byte) {
	e := newE2E(t)
	e.appendConfig("[firewall]\nbackend = \"" + backend + "\"\n")
	e.lab.Echo(t, "tcp", 22)
	e.ok("init")
	e.startServe()
	e.ok("account", "add", "ops", "--perms", "8")
	e.ok("allow", "ip", "ops", fwtest.ClientV4.String())
	e.ok("allow", "cidr", "ops", "198.51.100.0/24")
	e.ok("account", "add", "trunk", "--perms", "1")
	e.ok("allow", "ip", "trunk", "192.0.2.77")
	e.stop()
	e.lab.Check(t, probe, ssh(true), from(fwtest.OtherV4, false))
	good, err := os.ReadFile(e.dbPath())
	if err != nil {
		t.Fatal(err)
	}
	return e, good
}

// TestDBNeverSilentlyWiped: serve and restore against a missing, empty,
// truncated, overwritten or corrupted database refuse, say which file and
// what to do, exit non-zero and leave the kernel's chains, sets and
// members exactly as they were. Before the fix a missing or empty file
// emptied every set (everybody locked out) and a truncated one crashed
// with SIGSEGV.
func TestDBNeverSilentlyWiped(t *testing.T) {
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) { neverWiped(t, backend) })
	}
}

func neverWiped(t *testing.T, backend string) {
	e, good := dbLab(t, backend)
	before := e.ruleset()
	if !strings.Contains(before, "192.0.2.77") || !strings.Contains(before, "198.51.100.0/24") {
		t.Fatalf("the lab's members are not in the kernel:\n%s", before)
	}
	random := make([]byte, len(good))
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	badMetas := bytes.Clone(good)
	for _, off := range []int{0, 4096} {
		badMetas[off+16+24] ^= 0x5a // each meta page's page-size field, under its checksum
	}
	cases := []struct {
		name string
		data []byte // nil: no file at all
		want []string
	}{
		{"missing", nil, []string{"does not exist", "dialgate init"}},
		{"empty", []byte{}, []string{"is empty (0 bytes)", "dialgate init"}},
		{"truncated to 16 KiB", good[:16<<10], []string{"is damaged", "truncated?"}},
		{"truncated to half", good[:len(good)/2], []string{"is damaged", "truncated?"}},
		{"random bytes", random, []string{"is damaged", "no valid meta page"}},
		{"corrupted meta pages", badMetas, []string{"is damaged", "meta"}},
	}
	for _, c := range cases {
		os.Remove(e.dbPath())
		if c.data != nil {
			if err := os.WriteFile(e.dbPath(), c.data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		for _, cmd := range []string{"restore", "serve"} {
			out, code := e.within(20*time.Second, cmd)
			if code != exitError {
				t.Errorf("%s, %s: exit %d, want %d\n%s", c.name, cmd, code, exitError, out)
			}
			for _, want := range append(c.want, e.dbPath(), "left as it is", "dialgate db backup", "Backup and restore") {
				if !strings.Contains(out, want) {
					t.Errorf("%s, %s: output does not say %q:\n%s", c.name, cmd, want, out)
				}
			}
			if strings.Contains(out, "SIGSEGV") || strings.Contains(out, "panic") || strings.Contains(out, "firewall restored") {
				t.Errorf("%s, %s:\n%s", c.name, cmd, out)
			}
			if k := e.ruleset(); k != before {
				t.Fatalf("%s, %s changed the kernel:\n%s\nwas:\n%s", c.name, cmd, k, before)
			}
			after, err := os.ReadFile(e.dbPath())
			if c.data == nil && err == nil {
				t.Fatalf("%s, %s created the database", c.name, cmd)
			}
			if c.data != nil && !bytes.Equal(after, c.data) {
				t.Fatalf("%s, %s changed the database file", c.name, cmd)
			}
		}
	}

	// The good file is used again as ever.
	if err := os.WriteFile(e.dbPath(), good, 0o600); err != nil {
		t.Fatal(err)
	}
	e.ok("restore")
	if k := e.ruleset(); k != before {
		t.Errorf("restore of the good database changed the kernel:\n%s\nwas:\n%s", k, before)
	}
	e.lab.Check(t, probe, ssh(true), from(fwtest.OtherV4, false))
}

// TestDBBackupCheckRestore: backups through the daemon and straight from
// the file, each checked and opened; db check on sound and damaged
// files; and the README's restore procedure after the database is lost.
func TestDBBackupCheckRestore(t *testing.T) {
	e, _ := dbLab(t, "iptables")
	e.startServe()
	for i := range 20 { // writes while the backups run must not matter
		e.ok("account", "add", "u"+string(rune('a'+i)), "--perms", "1")
	}
	bak := filepath.Join(e.dir, "backups", "online.db")
	os.MkdirAll(filepath.Dir(bak), 0o700)

	n := len(e.status().Accounts)
	nAccounts := fmt.Sprintf("%d accounts", n)
	out := e.ok("db", "backup", bak)
	if !strings.Contains(out, "through the daemon") || !strings.Contains(out, nAccounts) {
		t.Errorf("online backup:\n%s", out)
	}
	wantBackup(t, bak, e.status().Accounts)
	if out := e.ok("db", "check"); !strings.Contains(out, e.dbPath()+": sound") {
		t.Errorf("online check:\n%s", out)
	}
	if out := e.ok("db", "check", bak); !strings.Contains(out, bak+": sound") || !strings.Contains(out, nAccounts) {
		t.Errorf("check of the backup:\n%s", out)
	}
	var rep store.CheckReport
	if err := json.Unmarshal([]byte(e.ok("db", "check", "--json")), &rep); err != nil || rep.Accounts != n || rep.Entries < 4 {
		t.Errorf("check --json: %+v, %v", rep, err)
	}
	e.fails(exitUsage, "the database itself", "db", "backup", e.dbPath())
	e.fails(exitUsage, "want 1 argument", "db", "backup")

	accounts := e.status().Accounts
	e.stop()
	off := filepath.Join(e.dir, "backups", "offline.db")
	out = e.ok("db", "backup", off)
	if !strings.Contains(out, "daemon is not running") {
		t.Errorf("offline backup:\n%s", out)
	}
	wantBackup(t, off, accounts)
	if out := e.ok("db", "check"); !strings.Contains(out, e.dbPath()+": sound") {
		t.Errorf("offline check:\n%s", out)
	}

	// Damage: db check names it, exit 1.
	data, _ := os.ReadFile(bak)
	broken := filepath.Join(e.dir, "backups", "broken.db")
	os.WriteFile(broken, data[:len(data)/2], 0o600)
	e.fails(exitError, "is damaged", "db", "check", broken)
	e.fails(exitError, "does not exist", "db", "check", filepath.Join(e.dir, "nope.db"))

	// The database is lost: restore refuses, the README's procedure
	// brings it back (stop, copy the backup over the path 0600, start).
	os.WriteFile(e.dbPath(), data[:16<<10], 0o644)
	e.fails(exitError, "is damaged", "restore")
	e.fails(exitError, "is damaged", "db", "check")
	if out, err := e.lab.Exec(e.lab.Server, "install", "-m", "0600", bak, e.dbPath()); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	e.ok("remove", "--yes")
	e.lab.Check(t, probe, from(fwtest.OtherV4, true))
	e.ok("restore")
	e.lab.Check(t, probe, ssh(true), from(fwtest.OtherV4, false))
	e.startServe()
	if got := len(e.status().Accounts); got != n {
		t.Errorf("%d accounts after restoring the backup, want %d", got, n)
	}
}

// wantBackup checks that the backup at path is private and opens as a
// database with the accounts named.
func wantBackup(t *testing.T, path string, accounts []localapi.AccountInfo) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %o, want 600", fi.Mode().Perm())
	}
	db, err := store.Open(path, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("the backup does not open: %v", err)
	}
	defer db.Close()
	var got []store.Account
	db.View(func(tx store.Tx) (err error) { got, err = tx.Accounts(); return })
	if len(got) != len(accounts) {
		t.Fatalf("backup has %d accounts, the daemon %d", len(got), len(accounts))
	}
	for i := range got {
		if got[i].Name != accounts[i].Name {
			t.Errorf("account %d: %q in the backup, %q in the daemon", i, got[i].Name, accounts[i].Name)
		}
	}
}
