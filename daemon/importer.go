package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// permsOf reads the codes of an import as the CLI reads typed ones (each
// 0-9, once, 0 alone), by writing them in the typed form first; no codes
// is the empty set (an account without services, an entry inheriting its
// account's).
func permsOf(codes []int) (store.PermSet, error) {
	if len(codes) == 0 {
		return 0, nil
	}
	s := make([]string, len(codes))
	for i, c := range codes {
		s[i] = strconv.Itoa(c)
	}
	return auth.ParsePerms(strings.Join(s, ","))
}

// Import adds accounts and entries all at once: any invalid value refuses
// the whole import, naming it, and nothing changes.
func (d *Daemon) Import(ctx context.Context, req localapi.ImportRequest) (localapi.ImportResult, error) {
	rec := store.AuditRecord{Action: "import", Actor: "cli", Subject: req.Source}
	var res localapi.ImportResult
	var fqdns []string
	err := d.change(ctx, Guard{}, func(tx store.Tx) ([]netip.Prefix, error) {
		// The shared store may run this again after a conflict: start clean.
		res, fqdns = localapi.ImportResult{}, nil
		var touched []netip.Prefix
		for _, ia := range req.Accounts {
			if err := auth.ValidateAccountName(ia.Name); err != nil {
				return nil, err
			}
			if err := auth.ValidateComment(ia.Comment); err != nil {
				return nil, fmt.Errorf("account %q: %w", ia.Name, err)
			}
			perms, err := permsOf(ia.Perms)
			if err != nil {
				return nil, fmt.Errorf("account %q: %w", ia.Name, err)
			}
			acct, err := tx.Account(ia.Name)
			switch {
			case errors.Is(err, store.ErrNotFound) && ia.MustExist:
				return nil, fmt.Errorf("account %q: %w: create it first (dialgate account add %s) or define it in the file (account %s perms=...)",
					ia.Name, store.ErrNotFound, ia.Name, ia.Name)
			case errors.Is(err, store.ErrNotFound):
				acct = store.Account{Name: ia.Name, Perms: perms, Comment: ia.Comment, Enabled: true, Created: d.now()}
				if err := tx.CreateAccount(acct); err != nil {
					return nil, err
				}
				res.Created = append(res.Created, ia.Name)
			case err != nil:
				return nil, err
			default:
				res.Kept = append(res.Kept, ia.Name)
			}
			for _, ie := range ia.Entries {
				value, err := auth.ParseEntry(ie.Kind, ie.Value, ie.Force)
				if err != nil {
					return nil, fmt.Errorf("account %q: %w", ia.Name, err)
				}
				refresh := time.Duration(ie.RefreshSeconds) * time.Second
				if ie.RefreshSeconds != 0 && (ie.Kind != store.KindFQDN || ie.RefreshSeconds < 1) {
					return nil, fmt.Errorf("account %q: %s: %w: refresh only for fqdn entries, at least 1s", ia.Name, value, auth.ErrInvalid)
				}
				if err := auth.ValidateComment(ie.Comment); err != nil {
					return nil, fmt.Errorf("account %q: %s: %w", ia.Name, value, err)
				}
				ep, err := permsOf(ie.Perms)
				if err != nil {
					return nil, fmt.Errorf("account %q: %s: %w", ia.Name, value, err)
				}
				e, err := tx.AddEntry(store.Entry{Account: ia.Name, Kind: ie.Kind, Value: value, Perms: ep,
					Comment: ie.Comment, Force: ie.Force, Refresh: refresh, Created: d.now()})
				if errors.Is(err, store.ErrExists) {
					res.Already = append(res.Already, ia.Name+" "+value)
					continue
				}
				if err != nil {
					return nil, err
				}
				if !ie.Force && !auth.PermsWithin(ep, acct.Perms) {
					return nil, fmt.Errorf("account %q: %s perms %s: %w: wider than the account's perms %s; widen the account first (dialgate account set %s --perms ...)",
						ia.Name, value, ep, auth.ErrInvalid, permsOrNone(acct.Perms), ia.Name)
				}
				res.Added = append(res.Added, entryInfo(e, acct, store.FQDNRecord{}))
				if e.Kind == store.KindFQDN {
					fqdns = append(fqdns, value)
					continue
				}
				if p, err := parsePrefix(value); err == nil {
					touched = append(touched, p)
				}
			}
		}
		rec.Result = "ok"
		rec.Detail = fmt.Sprintf("%d accounts created, %d entries added, %d already present", len(res.Created), len(res.Added), len(res.Already))
		return touched, tx.Audit(rec)
	})
	if err != nil {
		d.refused(rec, err)
		return localapi.ImportResult{}, err
	}
	d.log.Info("imported", "source", req.Source, "detail", rec.Detail)
	if len(fqdns) > 0 {
		if _, err := d.RefreshFQDNs(ctx, fqdns, false); err != nil {
			d.log.Warn("imported names did not all resolve", "err", err)
		}
	}
	return res, nil
}
