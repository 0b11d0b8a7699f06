package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// SetPasscode hashes and stores an account's passcode. Neither the
// passcode nor its hash is ever logged or returned.
// An account without an account number gets one, returned, so the
// caller can be told what to key.
func (d *Daemon) SetPasscode(ctx context.Context, name, passcode string) (localapi.SetPasscodeResult, error) {
	var res localapi.SetPasscodeResult
	rec := store.AuditRecord{Action: "passcode.set", Actor: "cli", Account: name}
	err := func() error {
		if err := auth.ValidatePasscode(passcode); err != nil {
			return err
		}
		door := d.config().Door
		hash, err := auth.HashPasscode(passcode, door.hashParams())
		if err != nil {
			return err
		}
		// Two accounts may share a passcode: the door identifies the
		// account first and checks one hash, so nothing is ambiguous.
		return d.change(ctx, Guard{}, func(tx store.Tx) ([]netip.Prefix, error) {
			a, err := tx.Account(name)
			if err != nil {
				return nil, err
			}
			a.PasscodeHash = hash
			if err := assignNumber(tx, &a); err != nil {
				return nil, err
			}
			res.Number = a.Number
			if err := tx.PutAccount(a); err != nil {
				return nil, err
			}
			rec.Result = "ok"
			return nil, tx.Audit(rec)
		})
	}()
	if err != nil {
		d.refused(rec, err)
		return res, err
	}
	d.log.Info("passcode set", "account", name, "number", res.Number)
	return res, nil
}

// UpdateAccount changes account settings. Permission or enabled changes
// move the account's addresses between sets, so they go through the
// lockout guard.
func (d *Daemon) UpdateAccount(ctx context.Context, name string, req localapi.UpdateAccountRequest, g Guard) (localapi.AccountInfo, error) {
	rec := store.AuditRecord{Action: "account.set", Actor: "cli", Account: name}
	var out store.Account
	err := d.change(ctx, g, func(tx store.Tx) ([]netip.Prefix, error) {
		a, err := tx.Account(name)
		if err != nil {
			return nil, err
		}
		var changes []string
		if req.Perms != nil {
			if a.Perms, err = auth.ParsePerms(*req.Perms); err != nil {
				return nil, err
			}
			if !g.Force {
				if err := entriesWithin(tx, a); err != nil {
					return nil, err
				}
			}
			changes = append(changes, "perms "+a.Perms.String())
		}
		if req.Comment != nil {
			if err := auth.ValidateComment(*req.Comment); err != nil {
				return nil, err
			}
			a.Comment = *req.Comment
			changes = append(changes, "comment")
		}
		if req.Enabled != nil {
			a.Enabled = *req.Enabled
			changes = append(changes, fmt.Sprintf("enabled %v", a.Enabled))
		}
		if req.Lifetime != nil {
			if l := *req.Lifetime; l != 0 && (l < time.Second || l > 30*24*time.Hour) {
				return nil, fmt.Errorf("%w: lifetime %v: between 1s and 720h (0 for the default)", auth.ErrInvalid, l)
			}
			a.GrantLifetime = *req.Lifetime
			changes = append(changes, "lifetime "+a.GrantLifetime.String())
		}
		if req.MaxGrants != nil {
			if m := *req.MaxGrants; m < 0 || m > 100 {
				return nil, fmt.Errorf("%w: max grants %d: between 0 (the default) and 100", auth.ErrInvalid, m)
			}
			a.MaxGrants = *req.MaxGrants
			changes = append(changes, fmt.Sprintf("max_grants %d", a.MaxGrants))
		}
		if req.Extension != nil {
			if err := auth.ValidateExtension(*req.Extension); err != nil {
				return nil, err
			}
			a.Extension = *req.Extension
			changes = append(changes, "extension "+a.Extension)
		}
		if req.Number != nil {
			if err := auth.ValidateAccountNumber(*req.Number); err != nil {
				return nil, err
			}
			a.Number = *req.Number
			changes = append(changes, "number "+a.Number)
		}
		if req.CallerIDs != nil {
			if a.CallerIDs, err = parseCallerIDs(*req.CallerIDs); err != nil {
				return nil, err
			}
			changes = append(changes, "callerids "+strings.Join(a.CallerIDs, " "))
		}
		if req.MayKeyIP != nil {
			a.MayKeyIP = *req.MayKeyIP
			changes = append(changes, fmt.Sprintf("may_key_ip %v", a.MayKeyIP))
		}
		if err := tx.PutAccount(a); err != nil {
			return nil, err
		}
		out = a
		rec.Result, rec.Detail = "ok", strings.Join(changes, ", ")
		if err := tx.Audit(rec); err != nil {
			return nil, err
		}
		if req.Perms == nil && req.Enabled == nil {
			return nil, nil
		}
		return d.accountPrefixes(tx, name)
	})
	if err != nil {
		d.refused(rec, err)
		return localapi.AccountInfo{}, err
	}
	d.log.Info("account updated", "account", name, "changes", rec.Detail)
	return accountInfo(out), nil
}

// entriesWithin refuses account perms narrower than one of the
// account's entries' own perms: such an entry would keep opening what
// the administrator means to close. It names every such entry; --force
// narrows the account and leaves the entries as they are.
func entriesWithin(tx store.Tx, a store.Account) error {
	es, err := tx.Entries()
	if err != nil {
		return err
	}
	var wide []string
	for _, e := range es {
		if e.Account == a.Name && !auth.PermsWithin(e.Perms, a.Perms) {
			wide = append(wide, fmt.Sprintf("%s %s (perms %s)", e.ID, e.Value, e.Perms))
		}
	}
	if len(wide) == 0 {
		return nil
	}
	return fmt.Errorf("perms %s: %w: account %q has entries with wider perms of their own, which would keep them open: %s; remove them (dialgate deny ID) or re-add them narrower first, or insist with --force",
		permsOrNone(a.Perms), auth.ErrNeedsForce, a.Name, strings.Join(wide, ", "))
}

// permsOrNone prints a permission set for an error message.
func permsOrNone(p store.PermSet) string {
	if p.IsEmpty() {
		return "none"
	}
	return p.String()
}

// accountPrefixes lists every address an account's entries and grants
// stand for.
func (d *Daemon) accountPrefixes(tx store.Tx, name string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	es, err := tx.Entries()
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		if e.Account != name {
			continue
		}
		ps, err := entryPrefixes(tx, e)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	gs, err := tx.Grants()
	if err != nil {
		return nil, err
	}
	for _, g := range gs {
		if p, err := parsePrefix(g.IP); err == nil && g.Account == name {
			out = append(out, p)
		}
	}
	return out, nil
}

// accountInfo is a as the LocalAPI shows it.
func accountInfo(a store.Account) localapi.AccountInfo {
	return localapi.AccountInfo{Name: a.Name, Perms: a.Perms, Comment: a.Comment, Enabled: a.Enabled, Created: a.Created,
		Passcode: a.PasscodeHash != "", Lifetime: a.GrantLifetime, MaxGrants: a.MaxGrants, Extension: a.Extension, MayKeyIP: a.MayKeyIP,
		Number: a.Number, CallerIDs: append([]string{}, a.CallerIDs...)}
}
