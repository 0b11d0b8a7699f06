package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// Automatic account numbers are random and six digits long. Sequential
// ones (101, 102, ...) would let anyone lock every account's number path
// by guessing five times at each number in turn; random ones must first
// be found, and a wrong number sounds the same as a wrong passcode.
const (
	minAutoNumber = 100000
	maxAutoNumber = 999999
)

// randomNumber draws an automatic account number; tests replace it.
var randomNumber = func() int {
	n, err := rand.Int(rand.Reader, big.NewInt(maxAutoNumber-minAutoNumber+1))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return minAutoNumber + int(n.Int64())
}

// assignNumber gives a an account number if it has none: a random one
// that no account holds.
func assignNumber(tx store.Tx, a *store.Account) error {
	if a.Number != "" {
		return nil
	}
	for range 1000 {
		num := strconv.Itoa(randomNumber())
		_, err := tx.AccountByNumber(num)
		if errors.Is(err, store.ErrNotFound) {
			a.Number = num
			return nil
		}
		if err != nil {
			return err
		}
	}
	return errors.New("no free account number found in 1000 draws; set one with account set --number")
}

// numberMissingAccounts gives every account that has a passcode but no
// account number (made before numbers existed) one, audited, and says so:
// those callers now key the number before the passcode, unless their
// extension or caller ID identifies them.
func (d *Daemon) numberMissingAccounts() error {
	var assigned []string
	err := d.db.Update(func(tx store.Tx) error {
		// The shared store may run this again after a conflict: start clean.
		assigned = nil
		as, err := tx.Accounts()
		if err != nil {
			return err
		}
		for _, a := range as {
			if a.PasscodeHash == "" || a.Number != "" {
				continue
			}
			if err := assignNumber(tx, &a); err != nil {
				return err
			}
			if err := tx.PutAccount(a); err != nil {
				return err
			}
			if err := tx.Audit(store.AuditRecord{Action: "account.number", Actor: "daemon", Account: a.Name, Subject: a.Number, Result: "ok",
				Detail: "assigned: the account had a passcode but no account number"}); err != nil {
				return err
			}
			assigned = append(assigned, a.Name+"="+a.Number)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("assign account numbers: %w", err)
	}
	if len(assigned) > 0 {
		d.log.Warn("accounts got phone-door account numbers: callers key the number, then the passcode, unless their extension or a bound caller ID identifies them (dialgate account list)",
			"accounts", strings.Join(assigned, " "))
	}
	return nil
}

// parseCallerIDs reads bound caller IDs as typed, refusing duplicates.
func parseCallerIDs(in []string) ([]string, error) {
	var out []string
	for _, s := range in {
		if strings.TrimSpace(s) == "" {
			continue
		}
		id, err := auth.ParseCallerID(s)
		if err != nil {
			return nil, err
		}
		if slices.Contains(out, id) {
			return nil, fmt.Errorf("%w: caller ID %q given twice", auth.ErrInvalid, id)
		}
		out = append(out, id)
	}
	return out, nil
}

// Lockouts lists the lockout keys that lock or hold failures now.
func (d *Daemon) Lockouts() ([]localapi.LockoutInfo, error) {
	out := []localapi.LockoutInfo{}
	now, window := d.now(), d.config().Door.FailureWindow.Duration
	err := d.db.View(func(tx store.Tx) error {
		ls, err := tx.Lockouts()
		for _, l := range ls {
			info := localapi.LockoutInfo{Key: l.Key, LockedUntil: l.LockedUntil, Locked: l.LockedUntil.After(now)}
			for _, f := range l.Failures {
				if now.Sub(f) < window {
					info.Failures++
				}
			}
			if !info.Locked {
				info.LockedUntil = time.Time{}
			}
			if info.Locked || info.Failures > 0 {
				out = append(out, info)
			}
		}
		return err
	})
	return out, err
}

// ClearLockouts removes lockout records: one key ("cid:5551234",
// "num:482913", "bound:alice"), every key of an account (its name: its
// bound key and its number's), or all ("" with all set). It returns the
// keys it removed.
func (d *Daemon) ClearLockouts(ctx context.Context, what string, all bool) ([]string, error) {
	rec := store.AuditRecord{Action: "lockout.clear", Actor: "cli", Subject: what}
	var cleared []string
	err := d.db.Update(func(tx store.Tx) error {
		// The shared store may run this again after a conflict: start clean.
		cleared = nil
		ls, err := tx.Lockouts()
		if err != nil {
			return err
		}
		mine := map[string]bool{}
		if a, err := tx.Account(what); err == nil {
			mine["bound:"+a.Name] = true
			if a.Number != "" {
				mine["num:"+a.Number] = true
			}
		}
		for _, l := range ls {
			if all || l.Key == what || mine[l.Key] {
				if err := tx.DeleteLockout(l.Key); err != nil {
					return err
				}
				cleared = append(cleared, l.Key)
			}
		}
		if len(cleared) == 0 {
			return fmt.Errorf("lockout %q: %w (see dialgate lockouts list)", what, store.ErrNotFound)
		}
		rec.Result, rec.Detail = "ok", strings.Join(cleared, " ")
		return tx.Audit(rec)
	})
	if err != nil {
		d.refused(rec, err)
		return nil, err
	}
	d.log.Info("lockouts cleared", "keys", cleared)
	return cleared, nil
}

// auditMatch reports whether f selects r.
func auditMatch(f localapi.AuditFilter, r store.AuditRecord) bool {
	switch {
	case f.Account != "" && r.Account != f.Account:
		return false
	case f.Result != "" && r.Result != f.Result:
		return false
	case f.Action != "" && r.Action != f.Action && !(strings.HasSuffix(f.Action, ".") && strings.HasPrefix(r.Action, f.Action)):
		return false
	}
	return true
}

// Audit returns the matching records, oldest first, the newest Limit of
// them when Limit > 0.
func (d *Daemon) Audit(f localapi.AuditFilter) ([]store.AuditRecord, error) {
	out := []store.AuditRecord{}
	err := d.db.View(func(tx store.Tx) error {
		limit := f.Limit
		if f.Account != "" || f.Action != "" || f.Result != "" {
			limit = 0 // filter first, then keep the newest
		}
		rs, err := tx.AuditLog(f.Since, limit)
		for _, r := range rs {
			if auditMatch(f, r) {
				out = append(out, r)
			}
		}
		return err
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[len(out)-f.Limit:]
	}
	return out, err
}
