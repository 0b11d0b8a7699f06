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

// desiredFor is desiredState restricted to the members whose prefix is one
// of prefixes: what SyncMembers needs to bring just those in line. It
// reads the entries with those values, the FQDN records that resolve to
// them and the grants, not every account, so its cost does not grow with
// the number of accounts. Its Config carries no SIP domains: the rules
// are not being changed.
func desiredFor(tx store.Tx, cfg firewall.Config, now time.Time, prefixes []netip.Prefix) (firewall.State, error) {
	st := firewall.State{Config: cfg}
	want := make(map[netip.Prefix]bool, len(prefixes))
	for _, p := range prefixes {
		want[firewall.NormalizePrefix(p)] = true
	}
	accounts := map[string]*store.Account{}
	account := func(name string) (*store.Account, error) {
		if a, ok := accounts[name]; ok {
			return a, nil
		}
		a, err := tx.Account(name)
		if errors.Is(err, store.ErrNotFound) {
			accounts[name] = nil
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		accounts[name] = &a
		return &a, nil
	}
	addEntries := func(es []store.Entry, only func(netip.Prefix) bool) error {
		for _, e := range es {
			acct, err := account(e.Account)
			if err != nil {
				return err
			}
			if acct == nil || !acct.Enabled {
				continue
			}
			ps, err := entryPrefixes(tx, e)
			if err != nil {
				return err
			}
			for _, p := range ps {
				if !only(firewall.NormalizePrefix(p)) {
					continue
				}
				for _, code := range effectivePerms(e, *acct).Codes() {
					st.Add(code, p, 0)
				}
			}
		}
		return nil
	}
	inWant := func(p netip.Prefix) bool { return want[p] }
	for p := range want {
		values := []string{p.String()}
		if p.IsSingleIP() {
			values = append(values, p.Addr().String())
		}
		for _, v := range values {
			es, err := tx.EntriesByValue(v)
			if err != nil {
				return st, err
			}
			if err := addEntries(es, inWant); err != nil {
				return st, err
			}
		}
	}
	recs, err := tx.FQDNs()
	if err != nil {
		return st, err
	}
	for _, r := range recs {
		hit := false
		for _, a := range r.Addrs {
			if p, err := parsePrefix(a); err == nil && want[firewall.NormalizePrefix(p)] {
				hit = true
			}
		}
		if !hit {
			continue
		}
		es, err := tx.EntriesByValue(r.Name)
		if err != nil {
			return st, err
		}
		if err := addEntries(es, inWant); err != nil {
			return st, err
		}
	}
	// A grant is for one address: only the host prefixes asked about can
	// hold one, and the index finds them without reading every grant.
	var grants []store.Grant
	for p := range want {
		if !p.IsSingleIP() {
			continue
		}
		gs, err := tx.GrantsByIP(p.Addr().String())
		if err != nil {
			return st, err
		}
		grants = append(grants, gs...)
	}
	for _, g := range grants {
		if !g.Expires.After(now) {
			continue
		}
		p, err := parsePrefix(g.IP)
		if err != nil {
			return st, fmt.Errorf("grant %s: %w", g.ID, err)
		}
		if !want[firewall.NormalizePrefix(p)] {
			continue
		}
		acct, err := account(g.Account)
		if err != nil {
			return st, err
		}
		if acct == nil || !acct.Enabled {
			continue
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
