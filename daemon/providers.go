package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// ProvidersAccount owns the entries of enabled providers.
const ProvidersAccount = "providers"

const settingCustomProviders = "providers.custom"

func customProviders(tx store.Tx) ([]auth.Provider, error) {
	raw, err := tx.Setting(settingCustomProviders)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ps []auth.Provider
	if err := json.Unmarshal(raw, &ps); err != nil {
		return nil, fmt.Errorf("setting %s: %w", settingCustomProviders, err)
	}
	return ps, nil
}

// allProviders is the built-in catalogue followed by the administrator's
// own providers.
func allProviders(tx store.Tx) ([]auth.Provider, error) {
	cat, err := auth.Catalogue()
	if err != nil {
		return nil, err
	}
	custom, err := customProviders(tx)
	return append(cat, custom...), err
}

// Providers lists the catalogue and custom providers with their state.
func (d *Daemon) Providers() ([]localapi.ProviderInfo, error) {
	var out []localapi.ProviderInfo
	err := d.db.View(func(tx store.Tx) error {
		ps, err := allProviders(tx)
		if err != nil {
			return err
		}
		es, err := tx.Entries()
		if err != nil {
			return err
		}
		n := map[string]int{}
		for _, e := range es {
			if e.Provider != "" {
				n[e.Provider]++
			}
		}
		for _, p := range ps {
			out = append(out, localapi.ProviderInfo{Provider: p, Enabled: n[p.Name] > 0, Entries: n[p.Name]})
		}
		return nil
	})
	return out, err
}

// EnableProviders whitelists providers (all of them with all): each
// name and network becomes an ordinary entry of the "providers" account,
// tagged with the provider and limited to its services. An unknown name
// changes nothing. Names are resolved right after, concurrently.
func (d *Daemon) EnableProviders(ctx context.Context, names []string, all bool) ([]localapi.ProviderInfo, error) {
	rec := store.AuditRecord{Action: "provider.enable", Actor: "cli", Account: ProvidersAccount, Subject: strings.Join(names, ",")}
	var fqdns []string
	err := d.change(ctx, Guard{}, func(tx store.Tx) ([]netip.Prefix, error) {
		// The shared store may run this again after a conflict: start clean.
		fqdns = nil
		ps, err := pickProviders(tx, names, all)
		if err != nil {
			return nil, err
		}
		acct, err := tx.Account(ProvidersAccount)
		if errors.Is(err, store.ErrNotFound) {
			acct = store.Account{Name: ProvidersAccount, Perms: store.NewPermSet(1, 2, 3), Enabled: true,
				Comment: "trusted SIP providers", Created: d.now()}
			if err := tx.CreateAccount(acct); err != nil {
				return nil, err
			}
		} else if err != nil {
			return nil, err
		}
		var touched []netip.Prefix
		for _, p := range ps {
			if !auth.PermsWithin(p.Perms(), acct.Perms) {
				return nil, fmt.Errorf("provider %q: services %s: %w: wider than account %q's perms %s; widen it first (dialgate account set %s --perms 1,2,3)",
					p.Name, p.Perms(), auth.ErrInvalid, ProvidersAccount, permsOrNone(acct.Perms), ProvidersAccount)
			}
			add := func(kind store.EntryKind, v string) error {
				_, err := tx.AddEntry(store.Entry{Account: ProvidersAccount, Kind: kind, Value: v, Perms: p.Perms(),
					Comment: "provider: " + p.Title, Provider: p.Name, Created: d.now()})
				if errors.Is(err, store.ErrExists) {
					return nil // enabled already
				}
				return err
			}
			for _, f := range p.FQDNs {
				if err := add(store.KindFQDN, f); err != nil {
					return nil, err
				}
				fqdns = append(fqdns, f)
			}
			for _, c := range p.CIDRs {
				kind := store.KindCIDR
				if !strings.Contains(c, "/") {
					kind = store.KindIP
				}
				if err := add(kind, c); err != nil {
					return nil, err
				}
				if pfx, err := parsePrefix(c); err == nil {
					touched = append(touched, pfx)
				}
			}
			r := rec
			r.Subject, r.Result, r.Detail = p.Name, "ok", "services "+p.Perms().String()
			if err := tx.Audit(r); err != nil {
				return nil, err
			}
		}
		return touched, nil
	})
	if err != nil {
		d.refused(rec, err)
		return nil, err
	}
	if len(fqdns) > 0 {
		if _, err := d.RefreshFQDNs(ctx, fqdns, false); err != nil {
			d.log.Warn("providers enabled; resolving their names failed", "err", err)
		}
	}
	return d.Providers()
}

func pickProviders(tx store.Tx, names []string, all bool) ([]auth.Provider, error) {
	ps, err := allProviders(tx)
	if err != nil {
		return nil, err
	}
	if all {
		return ps, nil
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: name the providers (see dialgate providers list) or use --all", auth.ErrInvalid)
	}
	var out []auth.Provider
	for _, n := range names {
		i := slices.IndexFunc(ps, func(p auth.Provider) bool { return p.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("provider %q: %w (see dialgate providers list)", n, store.ErrNotFound)
		}
		out = append(out, ps[i])
	}
	return out, nil
}

// DisableProviders removes the entries of providers (all with all).
func (d *Daemon) DisableProviders(ctx context.Context, names []string, all bool) ([]localapi.ProviderInfo, error) {
	rec := store.AuditRecord{Action: "provider.disable", Actor: "cli", Account: ProvidersAccount, Subject: strings.Join(names, ",")}
	err := d.change(ctx, Guard{}, func(tx store.Tx) ([]netip.Prefix, error) {
		ps, err := pickProviders(tx, names, all)
		if err != nil {
			return nil, err
		}
		es, err := tx.Entries()
		if err != nil {
			return nil, err
		}
		var victims []store.Entry
		for _, e := range es {
			if slices.ContainsFunc(ps, func(p auth.Provider) bool { return p.Name == e.Provider }) {
				victims = append(victims, e)
			}
		}
		return removeEntries(tx, victims, rec)
	})
	if err != nil {
		d.refused(rec, err)
		return nil, err
	}
	return d.Providers()
}

// AddProvider records an administrator's own provider; enable it like
// the built-in ones.
func (d *Daemon) AddProvider(ctx context.Context, p auth.Provider) (localapi.ProviderInfo, error) {
	rec := store.AuditRecord{Action: "provider.add", Actor: "cli", Subject: p.Name}
	p.Custom = true
	if p.Title == "" {
		p.Title = p.Name
	}
	err := func() error {
		if err := p.Validate(); err != nil {
			return err
		}
		return d.change(ctx, Guard{}, func(tx store.Tx) ([]netip.Prefix, error) {
			ps, err := allProviders(tx)
			if err != nil {
				return nil, err
			}
			if slices.ContainsFunc(ps, func(q auth.Provider) bool { return q.Name == p.Name }) {
				return nil, fmt.Errorf("provider %q: %w", p.Name, store.ErrExists)
			}
			custom, err := customProviders(tx)
			if err != nil {
				return nil, err
			}
			raw, err := json.Marshal(append(custom, p))
			if err != nil {
				return nil, err
			}
			if err := tx.PutSetting(settingCustomProviders, raw); err != nil {
				return nil, err
			}
			rec.Result = "ok"
			return nil, tx.Audit(rec)
		})
	}()
	if err != nil {
		d.refused(rec, err)
		return localapi.ProviderInfo{}, err
	}
	return localapi.ProviderInfo{Provider: p}, nil
}
