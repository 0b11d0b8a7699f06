package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/entryfile"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// UpdateEntry changes an entry's perms, comment or FQDN refresh interval.
// A perms change is checked against the account's (unless Force) and by
// the SSH guard, like a deny.
func (d *Daemon) UpdateEntry(ctx context.Context, id string, req localapi.UpdateEntryRequest, g Guard) (localapi.EntryInfo, error) {
	rec := store.AuditRecord{Action: "entry.set", Actor: "cli", Subject: id}
	var info localapi.EntryInfo
	err := d.change(ctx, g, func(tx store.Tx) ([]netip.Prefix, error) {
		e, err := tx.Entry(id)
		if err != nil {
			return nil, fmt.Errorf("%w (give an entry ID such as e12; see dialgate status)", err)
		}
		rec.Account = e.Account
		acct, err := tx.Account(e.Account)
		if err != nil {
			return nil, err
		}
		var what []string
		if req.Perms != nil {
			var perms store.PermSet
			if *req.Perms != "" {
				if perms, err = auth.ParsePerms(*req.Perms); err != nil {
					return nil, err
				}
			}
			if !req.Force && !auth.PermsWithin(perms, acct.Perms) {
				return nil, fmt.Errorf("perms %s: %w: wider than account %q's perms %s; widen the account or insist with --force",
					perms, auth.ErrNeedsForce, acct.Name, permsOrNone(acct.Perms))
			}
			e.Perms = perms
			what = append(what, "perms "+orInherited(perms))
		}
		if req.Comment != nil {
			if err := auth.ValidateComment(*req.Comment); err != nil {
				return nil, err
			}
			e.Comment = *req.Comment
			what = append(what, fmt.Sprintf("comment %q", e.Comment))
		}
		if req.RefreshSeconds != nil {
			s := *req.RefreshSeconds
			if s < 0 || s > 0 && (e.Kind != store.KindFQDN || s < 1) {
				return nil, fmt.Errorf("%w: refresh %ds: only for fqdn entries, at least 1s (0 for the default)", auth.ErrInvalid, s)
			}
			e.Refresh = time.Duration(s) * time.Second
			what = append(what, fmt.Sprintf("refresh %v", e.Refresh))
		}
		if len(what) == 0 {
			return nil, fmt.Errorf("%w: nothing to change: give --perms, --comment or --refresh", auth.ErrInvalid)
		}
		e.Force = e.Force || req.Force
		if e, err = tx.UpdateEntry(e); err != nil {
			return nil, err
		}
		var fq store.FQDNRecord
		if e.Kind == store.KindFQDN {
			fq, _ = tx.FQDN(e.Value)
		}
		info = entryInfo(e, acct, fq)
		rec.Result, rec.Detail = "ok", fmt.Sprintf("%s %s: %v", e.Kind, e.Value, what)
		if err := tx.Audit(rec); err != nil {
			return nil, err
		}
		if req.Perms == nil {
			return nil, nil // the kernel holds the same members
		}
		return entryPrefixes(tx, e)
	})
	if err != nil {
		d.refused(rec, err)
		return localapi.EntryInfo{}, err
	}
	d.log.Info("entry changed", "id", info.ID, "account", info.Account, "detail", rec.Detail)
	return info, nil
}

func orInherited(p store.PermSet) string {
	if p.IsEmpty() {
		return "(the account's)"
	}
	return p.String()
}

// Export returns the whitelist as a whitelist file: every account (its
// perms and comment, never its passcode) and every entry, except those a
// provider catalogue manages, whose providers are listed instead. Grants
// are not exported: they are won on the phone and expire.
func (d *Daemon) Export() (entryfile.Document, error) {
	doc := entryfile.Document{Accounts: []entryfile.Account{}, Entries: []entryfile.Entry{}}
	err := d.db.View(func(tx store.Tx) error {
		accounts, err := tx.Accounts()
		if err != nil {
			return err
		}
		for _, a := range accounts {
			if a.Name == ProvidersAccount {
				continue
			}
			perms := ""
			if !a.Perms.IsEmpty() {
				perms = a.Perms.String()
			}
			doc.Accounts = append(doc.Accounts, entryfile.Account{Name: a.Name, Perms: perms, Comment: a.Comment})
		}
		entries, err := tx.Entries()
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Provider != "" {
				if !slices.Contains(doc.Providers, e.Provider) {
					doc.Providers = append(doc.Providers, e.Provider)
				}
				continue
			}
			x := entryfile.Entry{Account: e.Account, Kind: string(e.Kind), Value: e.Value, Comment: e.Comment,
				Force: e.Force, RefreshSeconds: int64(e.Refresh / time.Second)}
			if !e.Perms.IsEmpty() {
				x.Perms = e.Perms.String()
			}
			doc.Entries = append(doc.Entries, x)
		}
		return nil
	})
	slices.Sort(doc.Providers)
	return doc, err
}
