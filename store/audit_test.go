package store

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestAuditBounded: a refused 10 000-character value, quoted again in the
// refusal's message, is stored once and bounded.
func TestAuditBounded(t *testing.T) {
	db := openTest(t)
	huge := strings.Repeat("a", 10_000)
	odd := strings.Repeat("é\x01", 3000) // multi-byte, and quoted with escapes
	recs := []AuditRecord{
		{Action: "entry.add", Actor: "cli", Account: "bob", Subject: huge, Result: "refused",
			Detail: fmt.Sprintf("invalid: ip %q: not an IP address", huge)},
		{Action: "account.add", Actor: "cli", Account: odd, Result: "refused",
			Detail: fmt.Sprintf("account name %q: not allowed", odd)},
		{Action: "x", Detail: strings.Repeat("ü", 5000)},
	}
	for _, r := range recs {
		mustUpdate(t, db, func(tx Tx) error { return tx.Audit(r) })
	}
	var got []AuditRecord
	db.View(func(tx Tx) (err error) { got, err = tx.AuditLog(time.Time{}, 0); return })
	if len(got) != len(recs) {
		t.Fatalf("%d records, want %d", len(got), len(recs))
	}
	for i, r := range got {
		for name, f := range map[string]string{"action": r.Action, "account": r.Account, "subject": r.Subject, "detail": r.Detail} {
			if len(f) > MaxAuditField {
				t.Errorf("record %d: %s is %d bytes, want at most %d", i, name, len(f), MaxAuditField)
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
	// Short values are stored as they are.
	short := AuditRecord{Action: "entry.add", Subject: "203.0.113.999", Detail: `invalid: ip "203.0.113.999": not an IP address`}
	if b := boundAudit(short); b != short {
		t.Errorf("short record changed: %+v", b)
	}
}

func TestPurgeAudit(t *testing.T) {
	db := openTest(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Ten records a day apart, two sharing a time.
	mustUpdate(t, db, func(tx Tx) error {
		for i := range 10 {
			if err := tx.Audit(AuditRecord{Time: t0.Add(time.Duration(i) * 24 * time.Hour), Action: strconv.Itoa(i)}); err != nil {
				return err
			}
		}
		return tx.Audit(AuditRecord{Time: t0.Add(9 * 24 * time.Hour), Action: "9b"})
	})
	actions := func() string {
		var rs []AuditRecord
		db.View(func(tx Tx) (err error) { rs, err = tx.AuditLog(time.Time{}, 0); return })
		var out []string
		for _, r := range rs {
			out = append(out, r.Action)
		}
		return strings.Join(out, ",")
	}
	purge := func(before time.Time, keep int) int {
		t.Helper()
		var n int
		mustUpdate(t, db, func(tx Tx) (err error) { n, err = tx.PurgeAudit(before, keep); return })
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

// BenchmarkPurgeAuditSteady: the purge loop's cost on a full log with
// nothing to drop.
func BenchmarkPurgeAuditSteady(b *testing.B) {
	db, err := Open(b.TempDir()+"/d.db", Options{Create: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	const n = 100_000
	for i := 0; i < n; i += 10_000 {
		db.Update(func(tx Tx) error {
			for j := range 10_000 {
				tx.Audit(AuditRecord{Time: now.Add(time.Duration(i+j) * time.Millisecond), Action: "entry.add", Actor: "cli", Account: "bob", Subject: "203.0.113.7", Result: "ok", Detail: "e12 ip perms 1,8"})
			}
			return nil
		})
	}
	for b.Loop() {
		db.Update(func(tx Tx) error {
			_, err := tx.PurgeAudit(now.Add(-time.Hour), n)
			return err
		})
	}
}
