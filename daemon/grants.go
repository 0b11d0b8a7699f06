package daemon

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/door"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// checkGrantable refuses an address no grant may open (auth.CheckGrantable:
// loopback, link-local, multicast, 0/8, 240/4, broadcast, and IPv6 forms
// that embed them), this server's own addresses, and an address a LAN
// range already admits, which wraps door.ErrAdmitted: the caller is in
// already, and a caller must not be able to reshape what the LAN rules
// mean. An IPv6 address embedding a LAN or own IPv4 address is refused
// outright: the LAN rule does not admit that form.
func (d *Daemon) checkGrantable(ip netip.Addr) (netip.Addr, error) {
	a, err := auth.CheckGrantable(ip)
	if err != nil {
		return netip.Addr{}, err
	}
	v4, embeds := auth.EmbeddedIPv4(a)
	for _, own := range ownAddrs() {
		if own == a || embeds && own == v4 {
			return netip.Addr{}, fmt.Errorf("%w: %s is this server's own address", auth.ErrNotGrantable, a)
		}
	}
	for _, p := range d.config().FirewallRules().LAN {
		if p.Contains(a) {
			return netip.Addr{}, fmt.Errorf("%w: %s is in the LAN range %s", door.ErrAdmitted, a, p)
		}
		if embeds && p.Contains(v4) {
			return netip.Addr{}, fmt.Errorf("%w: %s embeds %s of the LAN range %s", auth.ErrNotGrantable, a, v4, p)
		}
	}
	return a, nil
}

// Grant records a grant for the account's services with the account's
// lifetime (renewing it if that address already has one) and puts the
// address into the kernel sets with the grant's remaining life as the
// timeout, so the kernel drops it on time even if dialgate is dead. When
// the account is at its limit of live grants, the oldest gives way.
func (d *Daemon) Grant(ctx context.Context, req GrantRequest) (store.Grant, error) {
	rec := store.AuditRecord{Action: "grant", Actor: req.Source, Account: req.Account, Subject: req.IP.String(),
		Detail: fmt.Sprintf("callerid=%q channel=%q", req.CallerID, req.Channel)}
	ip, err := d.checkGrantable(req.IP)
	if err != nil {
		d.refused(rec, err)
		return store.Grant{}, err
	}
	cfg := d.config().Door
	var g store.Grant
	var evicted []store.Grant
	err = d.change(ctx, Guard{}, func(tx store.Tx) ([]netip.Prefix, error) {
		acct, err := tx.Account(req.Account)
		if err != nil {
			return nil, err
		}
		if !acct.Enabled {
			return nil, fmt.Errorf("account %q is disabled", acct.Name)
		}
		now := d.now()
		life := cmp.Or(req.Lifetime, acct.GrantLifetime)
		if life <= 0 {
			life = cfg.Lifetime.Duration
		}
		perms := acct.Perms
		if !req.Perms.IsEmpty() {
			perms = req.Perms
		}
		max := acct.MaxGrants
		if max <= 0 {
			max = cfg.MaxGrants
		}
		all, err := tx.GrantsOfAccount(acct.Name)
		if err != nil {
			return nil, err
		}
		var live []store.Grant
		for _, x := range all {
			if x.Expires.After(now) {
				live = append(live, x)
			}
		}
		g = store.Grant{Account: acct.Name, IP: ip.String(), Perms: perms, Created: now, Expires: now.Add(life),
			Source: req.Source, CallerID: req.CallerID, Channel: req.Channel}
		if i := slices.IndexFunc(live, func(x store.Grant) bool { return x.IP == g.IP }); i >= 0 {
			g.ID, g.Created = live[i].ID, live[i].Created // renewal
			rec.Action = "grant.renew"
		} else {
			slices.SortFunc(live, func(a, b store.Grant) int { return a.Expires.Compare(b.Expires) })
			for len(live) >= max {
				evicted = append(evicted, live[0])
				live = live[1:]
			}
		}
		touched := []netip.Prefix{netip.PrefixFrom(ip, ip.BitLen())}
		for _, x := range evicted {
			if _, err := tx.DeleteGrant(x.ID); err != nil {
				return nil, err
			}
			if p, err := parsePrefix(x.IP); err == nil {
				touched = append(touched, p)
			}
			if err := tx.Audit(store.AuditRecord{Action: "grant.evict", Actor: req.Source, Account: x.Account, Subject: x.IP, Result: "ok",
				Detail: fmt.Sprintf("%s gave way to %s (max_grants %d)", x.ID, g.IP, max)}); err != nil {
				return nil, err
			}
		}
		if g, err = tx.PutGrant(g); err != nil {
			return nil, err
		}
		r := rec
		r.Result, r.Detail = "ok", fmt.Sprintf("%s perms %s until %s %s", g.ID, g.Perms, g.Expires.Format(time.RFC3339), rec.Detail)
		return touched, tx.Audit(r)
	})
	if err != nil {
		d.refused(rec, err)
		return store.Grant{}, err
	}
	d.metrics.grantsIssued.Inc()
	d.log.Info("granted", "id", g.ID, "account", g.Account, "ip", g.IP, "perms", g.Perms.String(),
		"expires", g.Expires.Format(time.RFC3339), "source", g.Source, "callerid", req.CallerID, "evicted", len(evicted))
	return g, nil
}

// RevokeGrants removes grants by ID ("g3") or every grant of an address.
func (d *Daemon) RevokeGrants(ctx context.Context, idOrIP string, gd Guard) ([]localapi.GrantInfo, error) {
	rec := store.AuditRecord{Action: "grant.revoke", Actor: "cli", Subject: idOrIP}
	var out []localapi.GrantInfo
	err := d.change(ctx, gd, func(tx store.Tx) ([]netip.Prefix, error) {
		// The shared store may run this again after a conflict: start clean.
		out = nil
		var victims []store.Grant
		if g, err := tx.Grant(idOrIP); err == nil {
			victims = append(victims, g)
		} else if a, perr := netip.ParseAddr(idOrIP); perr == nil {
			all, err := tx.Grants()
			if err != nil {
				return nil, err
			}
			for _, g := range all {
				if g.IP == a.Unmap().String() {
					victims = append(victims, g)
				}
			}
		}
		if len(victims) == 0 {
			return nil, fmt.Errorf("grant %q: %w (give a grant ID such as g3 or an address; see dialgate grants list)", idOrIP, store.ErrNotFound)
		}
		var touched []netip.Prefix
		now := d.now()
		for _, g := range victims {
			if _, err := tx.DeleteGrant(g.ID); err != nil {
				return nil, err
			}
			if p, err := parsePrefix(g.IP); err == nil {
				touched = append(touched, p)
			}
			out = append(out, grantInfo(g, now))
			r := rec
			r.Account, r.Subject, r.Result, r.Detail = g.Account, g.IP, "ok", g.ID
			if err := tx.Audit(r); err != nil {
				return nil, err
			}
		}
		return touched, nil
	})
	if err != nil {
		d.refused(rec, err)
	}
	return out, err
}

// Grants lists the live grants.
func (d *Daemon) Grants() ([]localapi.GrantInfo, error) {
	var out []localapi.GrantInfo
	err := d.db.View(func(tx store.Tx) error {
		all, err := tx.Grants()
		now := d.now()
		for _, g := range all {
			if g.Expires.After(now) {
				out = append(out, grantInfo(g, now))
			}
		}
		return err
	})
	return out, err
}
