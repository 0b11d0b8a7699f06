package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/firewall/fwfake"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// createDB makes an empty database at path, as `dialgate init` does:
// New and Restore never create one.
func createDB(t testing.TB, path string) {
	t.Helper()
	db, err := store.Open(path, store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
}

// newStoreTest is a Daemon on a fresh database and the in-memory kernel.
func newStoreTest(t *testing.T, edit func(*Config)) (*Daemon, *fwfake.Backend) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DB = filepath.Join(t.TempDir(), "dialgate.db")
	cfg.AGI.Listen = ""
	if edit != nil {
		edit(&cfg)
	}
	createDB(t, cfg.DB)
	fw := fwfake.New()
	d, err := New(Options{Config: cfg, Backend: fw, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, fw
}

// TestServeAndRestoreNeverCreate: New (serve) and Restore refuse a
// missing, empty or damaged database, create nothing and call nothing on
// the kernel.
func TestServeAndRestoreNeverCreate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	createDB(t, good)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"empty.db": {}, "truncated.db": data[:4096], "text.db": []byte(strings.Repeat("dialgate\n", 2000))}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]error{
		"missing.db": store.ErrNoDatabase, "empty.db": store.ErrNoDatabase,
		"truncated.db": store.ErrDamaged, "text.db": store.ErrDamaged,
	} {
		path := filepath.Join(dir, name)
		cfg := DefaultConfig()
		cfg.DB = path
		fw := fwfake.New()
		_, err := New(Options{Config: cfg, Backend: fw, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if !errors.Is(err, want) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "left as it is") {
			t.Errorf("New on %s: %v, want %v naming the file", name, err, want)
		}
		err = Restore(context.Background(), cfg, fw, nil, false)
		if !errors.Is(err, want) || !strings.Contains(err.Error(), path) {
			t.Errorf("Restore on %s: %v, want %v", name, err, want)
		}
		if calls := fw.Calls(); len(calls) != 0 || fw.Loaded() {
			t.Errorf("%s: the kernel was called: %v", name, calls)
		}
		after, err := os.ReadFile(path)
		if name == "missing.db" {
			if err == nil {
				t.Errorf("%s was created", name)
			}
		} else if string(after) != string(files[name]) {
			t.Errorf("%s was changed", name)
		}
	}
}

// TestRefusedHugeValueAuditedOnce: a 10 000-character value refused by
// the daemon is in the audit log once, bounded.
func TestRefusedHugeValueAuditedOnce(t *testing.T) {
	d, _ := newStoreTest(t, nil)
	ctx := context.Background()
	if _, err := d.AddAccount(ctx, localapi.AddAccountRequest{Name: "bob", Perms: "8"}); err != nil {
		t.Fatal(err)
	}
	huge := strings.Repeat("7", 10_000)
	if _, err := d.AddEntry(ctx, localapi.AddEntryRequest{Account: "bob", Kind: store.KindIP, Value: huge}); err == nil {
		t.Fatal("a 10 000-character address was accepted")
	}
	recs, err := d.Audit(localapi.AuditFilter{Result: "refused"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("%d refusal records, want 1: %+v", len(recs), recs)
	}
	r := recs[0]
	total := len(r.Action) + len(r.Actor) + len(r.Account) + len(r.Subject) + len(r.Result) + len(r.Detail)
	if total > 2*store.MaxAuditField || !strings.HasPrefix(r.Subject, "7777") || strings.Contains(r.Detail, "7777") {
		t.Errorf("refusal stored %d bytes, want the value once, in the subject: %+v", total, r)
	}
	if !strings.Contains(r.Subject, "(10000 bytes)") {
		t.Errorf("subject does not say how long the value was: %q", r.Subject)
	}
}

// TestAuditRetention: the purge loop drops records past max_age and
// beyond max_records, the oldest first.
func TestAuditRetention(t *testing.T) {
	d, _ := newStoreTest(t, func(c *Config) {
		c.Audit = AuditConfig{MaxAge: Duration{30 * 24 * time.Hour}, MaxRecords: 100}
	})
	now := time.Now()
	d.now = func() time.Time { return now }
	err := d.db.Update(func(tx store.Tx) error {
		for i := range 50 { // 31 to 80 days old: too old
			if err := tx.Audit(store.AuditRecord{Time: now.Add(-time.Duration(80-i) * 24 * time.Hour), Action: "old"}); err != nil {
				return err
			}
		}
		for i := range 150 { // recent, but 50 too many
			if err := tx.Audit(store.AuditRecord{Time: now.Add(-time.Duration(150-i) * time.Minute), Action: fmt.Sprint("new", i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.purgeExpired(); err != nil {
		t.Fatal(err)
	}
	recs, err := d.Audit(localapi.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 100 || recs[0].Action != "new50" || recs[99].Action != "new149" {
		t.Fatalf("%d records kept, from %q to %q; want the newest 100", len(recs), recs[0].Action, recs[len(recs)-1].Action)
	}
	// Without a count limit only age applies.
	cfg := d.config()
	cfg.Audit.MaxRecords = 0
	d.cfg.Store(&cfg)
	now = now.Add(time.Duration(30*24*60-50) * time.Minute) // new50..new99 now older than 30 days
	if err := d.purgeExpired(); err != nil {
		t.Fatal(err)
	}
	if recs, _ = d.Audit(localapi.AuditFilter{}); len(recs) != 50 || recs[0].Action != "new100" {
		t.Fatalf("%d records after the age purge, first %q", len(recs), recs[0].Action)
	}
}

func TestAuditConfig(t *testing.T) {
	c, err := parseConfig("t", []byte("[audit]\nmax_age = \"90d\"\nmax_records = 500\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Audit.MaxAge.Duration != 90*24*time.Hour || c.Audit.MaxRecords != 500 {
		t.Errorf("audit %+v", c.Audit)
	}
	if c, err := parseConfig("t", []byte(DefaultConfigText(DefaultConfig()))); err != nil || c.Audit != DefaultConfig().Audit {
		t.Errorf("default text: %+v, %v; want %+v", c.Audit, err, DefaultConfig().Audit)
	}
	if DefaultConfig().Audit.MaxAge.Duration != 365*24*time.Hour || DefaultConfig().Audit.MaxRecords != 100_000 {
		t.Errorf("defaults %+v", DefaultConfig().Audit)
	}
	for _, bad := range []string{`max_age = "-1h"`, `max_age = "5m"`, `max_age = "90x"`, `max_records = -1`, `max_records = 10`} {
		if _, err := parseConfig("t", []byte("[audit]\n"+bad+"\n")); err == nil || !strings.Contains(err.Error(), "audit") && !strings.Contains(err.Error(), "90x") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	for _, ok := range []string{`max_age = "0s"`, `max_records = 0`, `max_age = "2160h"`} {
		if _, err := parseConfig("t", []byte("[audit]\n"+ok+"\n")); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}
