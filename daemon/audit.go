package daemon

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dialgate/dialgate/store"
)

// AuditConfig is the [audit] table: how much of the audit log is kept.
// The purge loop drops what is older than MaxAge or beyond the newest
// MaxRecords; every field of a record is bounded when it is written
// (store.MaxAuditField), so the log's size is bounded too.
type AuditConfig struct {
	// MaxAge drops records older than this; 0 keeps them whatever their
	// age (MaxRecords still applies).
	MaxAge Duration `toml:"max_age"`
	// MaxRecords keeps at most this many records, the newest; 0: no limit
	// by number.
	MaxRecords int `toml:"max_records"`
}

// defaultAudit keeps a year, and at most 100 000 records (some 30 MB).
func defaultAudit() AuditConfig {
	return AuditConfig{MaxAge: Duration{365 * 24 * time.Hour}, MaxRecords: 100_000}
}

func (a AuditConfig) validate() error {
	switch {
	case a.MaxAge.Duration < 0 || (a.MaxAge.Duration > 0 && a.MaxAge.Duration < time.Hour):
		return fmt.Errorf("audit.max_age: %v: 0 (no age limit) or at least 1h", a.MaxAge)
	case a.MaxRecords < 0 || (a.MaxRecords > 0 && a.MaxRecords < 100):
		return fmt.Errorf("audit.max_records: %d: 0 (no limit) or at least 100", a.MaxRecords)
	}
	return nil
}

// cutoff is the time before which records are too old at now; zero: none.
func (a AuditConfig) cutoff(now time.Time) time.Time {
	if a.MaxAge.Duration <= 0 {
		return time.Time{}
	}
	return now.Add(-a.MaxAge.Duration)
}

// purgeAudit applies the [audit] retention; the purge loop runs it with
// the expired grants.
func (d *Daemon) purgeAudit(tx store.Tx, now time.Time) error {
	a := d.config().Audit
	n, err := tx.PurgeAudit(a.cutoff(now), a.MaxRecords)
	if err == nil && n > 0 {
		d.log.Info("audit log: records past retention dropped", "records", n, "max_age", a.MaxAge, "max_records", a.MaxRecords)
	}
	return err
}

// parseDuration is time.ParseDuration that also takes whole days, "90d",
// as retention periods are usually given.
func parseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseUint(n, 10, 32)
		if err == nil && days <= 100_000 {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	return time.ParseDuration(s)
}
