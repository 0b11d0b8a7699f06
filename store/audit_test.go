package store

import (
	"testing"
	"time"
)

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

// The suite checks that long fields are bounded; that short ones are
// left exactly as they are is boundAudit's own promise.
func TestBoundAuditKeepsShort(t *testing.T) {
	short := AuditRecord{Action: "entry.add", Subject: "203.0.113.999", Detail: `invalid: ip "203.0.113.999": not an IP address`}
	if b := boundAudit(short); b != short {
		t.Errorf("short record changed: %+v", b)
	}
}
