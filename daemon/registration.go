package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/dialgate/dialgate/ami"
	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/store"
)

// ResponsiveConfig is the [responsive] table: zero-touch travelers. A
// phone whose extension is bound to an account and that registers with
// valid credentials gets its address granted, SIP only by default, for
// GrantFor, renewed on every authenticated re-registration and ended
// when it unregisters.
type ResponsiveConfig struct {
	// Enabled lets sources that are not whitelisted send SIP REGISTER
	// over UDP to the SIP ports at PerMinute (Burst at once) per source,
	// limited in the kernel, and grants registered phones.
	Enabled   bool `toml:"enabled"`
	PerMinute int  `toml:"per_minute"`
	Burst     int  `toml:"burst"`
	// TCP admits strangers' TCP connections to the SIP ports too, limited
	// to REGISTER segments as far as a firewall can tell (see README).
	TCP bool `toml:"tcp"`
	// Grant is what a registration admits: "sip" (codes 1 and 2) or
	// "account" (the account's own perms).
	Grant    string   `toml:"grant"`
	GrantFor Duration `toml:"grant_for"`
}

// firewall is the kernel part of the table.
func (r ResponsiveConfig) firewall() firewall.ResponsiveConfig {
	return firewall.ResponsiveConfig{Enabled: r.Enabled, PerMinute: r.PerMinute, Burst: r.Burst, TCP: r.TCP}
}

func (r ResponsiveConfig) validate() error {
	if err := r.firewall().Validate(); err != nil {
		return fmt.Errorf("responsive: %w", err)
	}
	switch {
	case r.Grant != "sip" && r.Grant != "account":
		return fmt.Errorf("responsive.grant = %q: want \"sip\" or \"account\"", r.Grant)
	case r.GrantFor.Duration < time.Minute || r.GrantFor.Duration > 7*24*time.Hour:
		return fmt.Errorf("responsive.grant_for = %v: want 1m to 168h", r.GrantFor.Duration)
	}
	return nil
}

// registrationSource marks the grants a registration made.
const registrationSource = "phone:register"

// registrationPerms is what a registration grant admits.
func (r ResponsiveConfig) perms() store.PermSet {
	if r.Grant == "account" {
		return 0 // the account's
	}
	return store.NewPermSet(firewall.CodeSIPUDP, firewall.CodeSIPTCP)
}

// grantRegistration grants addr to every enabled account bound to
// extension ext (responsive mode), or renews the grant a registration
// made. A live grant of the account at addr made otherwise (the phone
// door, usually wider) is left as it is. An extension bound to no
// account gets nothing.
func (d *Daemon) grantRegistration(ctx context.Context, ext string, addr netip.Addr, why string) {
	cfg := d.config().Responsive
	if !cfg.Enabled || ext == "" {
		return
	}
	if _, err := d.checkGrantable(addr); err != nil {
		return
	}
	var names []string
	err := d.db.View(func(tx store.Tx) error {
		accounts, err := tx.AccountsByExtension(ext)
		if err != nil {
			return err
		}
		grants, err := tx.GrantsByIP(addr.String())
		if err != nil {
			return err
		}
		now := d.now()
	next:
		for _, a := range accounts {
			if !a.Enabled {
				continue
			}
			for _, g := range grants {
				if g.Account == a.Name && g.Source != registrationSource && g.Expires.After(now) && grantAt(g, addr) {
					continue next
				}
			}
			names = append(names, a.Name)
		}
		return nil
	})
	if err != nil {
		d.log.Error("registration grant", "extension", ext, "err", err)
		return
	}
	for _, name := range names {
		_, err := d.Grant(ctx, GrantRequest{Account: name, IP: addr, Source: registrationSource,
			Channel: why, Perms: cfg.perms(), Lifetime: cfg.GrantFor.Duration})
		if err != nil {
			d.log.Warn("registration grant refused", "account", name, "extension", ext, "addr", addr, "err", err)
		}
	}
}

// onAuth renews a registration grant when the extension authenticates
// again from the same address (every REGISTER refresh raises a
// SuccessfulAuth). It never creates one: on chan_pjsip an authenticated
// INVITE raises SuccessfulAuth too, and only a registration grants.
func (d *Daemon) onAuth(ctx context.Context, ev ami.SecurityEvent) {
	if ev.Kind != "SuccessfulAuth" || (ev.Service != "SIP" && ev.Service != "PJSIP") || !d.config().Responsive.Enabled {
		return
	}
	addr := ev.Remote.Addr().Unmap()
	has := false
	err := d.db.View(func(tx store.Tx) error {
		accounts, err := tx.AccountsByExtension(ev.AccountID)
		if err != nil || len(accounts) == 0 {
			return err
		}
		grants, err := tx.GrantsByIP(addr.String())
		if err != nil {
			return err
		}
		now := d.now()
		for _, g := range grants {
			if g.Source == registrationSource && g.Expires.After(now) && grantAt(g, addr) {
				for _, a := range accounts {
					has = has || a.Name == g.Account
				}
			}
		}
		return nil
	})
	if err == nil && has {
		d.grantRegistration(ctx, ev.AccountID, addr, "renewed: "+ev.Service+" SuccessfulAuth")
	}
}
