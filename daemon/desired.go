package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/store"
)

// desiredState computes what the kernel should hold from what the store
// says: static entries (with the account's permissions unless the entry
// has its own), last-known FQDN addresses, and unexpired grants with
// their remaining life as the kernel timeout.
func desiredState(tx store.Tx, cfg firewall.Config, now time.Time) (firewall.State, error) {
	domains, err := sipDomains(tx)
	if err != nil {
		return firewall.State{}, err
	}
	cfg.SIPDomains = domains
	st := firewall.State{Config: cfg}
	accounts, err := tx.Accounts()
	if err != nil {
		return st, err
	}
	byName := make(map[string]store.Account, len(accounts))
	for _, a := range accounts {
		byName[a.Name] = a
	}
	entries, err := tx.Entries()
	if err != nil {
		return st, err
	}
	for _, e := range entries {
		acct, ok := byName[e.Account]
		if !ok || !acct.Enabled {
			continue
		}
		prefixes, err := entryPrefixes(tx, e)
		if err != nil {
			return st, err
		}
		for _, p := range prefixes {
			for _, code := range effectivePerms(e, acct).Codes() {
				st.Add(code, p, 0)
			}
		}
	}
	grants, err := tx.Grants()
	if err != nil {
		return st, err
	}
	for _, g := range grants {
		acct, ok := byName[g.Account]
		if !ok || !acct.Enabled || !g.Expires.After(now) {
			continue
		}
		p, err := parsePrefix(g.IP)
		if err != nil {
			return st, fmt.Errorf("grant %s: %w", g.ID, err)
		}
		for _, code := range g.Perms.Codes() {
			st.Add(code, p, g.Expires.Sub(now))
		}
	}
	return st, nil
}

func effectivePerms(e store.Entry, a store.Account) store.PermSet {
	if e.Perms.IsEmpty() {
		return a.Perms
	}
	return e.Perms
}

// entryPrefixes returns the networks an entry stands for; an FQDN stands
// for its last-known addresses, none if it never resolved.
func entryPrefixes(tx store.Tx, e store.Entry) ([]netip.Prefix, error) {
	switch e.Kind {
	case store.KindIP, store.KindCIDR:
		p, err := parsePrefix(e.Value)
		if err != nil {
			return nil, fmt.Errorf("entry %s: %w", e.ID, err)
		}
		return []netip.Prefix{p}, nil
	case store.KindFQDN:
		rec, err := tx.FQDN(e.Value)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil // never resolved yet: admits nobody
		}
		if err != nil {
			return nil, err
		}
		var out []netip.Prefix
		for _, a := range rec.Addrs {
			if p, err := parsePrefix(a); err == nil {
				out = append(out, p)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("entry %s: unknown kind %q", e.ID, e.Kind)
}

// parsePrefix reads a stored address or network.
func parsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.ParsePrefix(s)
}
