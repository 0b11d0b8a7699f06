package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/dialgate/dialgate/ami"
	"github.com/dialgate/dialgate/store"
)

// ErrAMIDisabled is returned by actions that need the Asterisk Manager
// Interface when [ami] is not enabled.
var ErrAMIDisabled = errors.New("the Asterisk Manager Interface is not enabled ([ami] enabled = true in the config)")

// amiLookup is the door's ContactLookup over AMI.
type amiLookup struct {
	c       *ami.Client
	timeout time.Duration
}

// RegisteredAddrs implements ContactLookup. AMI values are untrusted
// text; the ami package parses them strictly and skips what is not an
// address.
func (l amiLookup) RegisteredAddrs(ctx context.Context, extension string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	aps, err := l.c.RegisteredAddresses(ctx, extension)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(aps))
	for _, ap := range aps {
		out = append(out, ap.Addr().Unmap())
	}
	return out, nil
}

// startAMI connects to Asterisk in the background: a wrong secret or a
// stopped Asterisk is logged and retried with backoff, and the daemon
// keeps serving the firewall and the door (which then uses the channel
// address) meanwhile.
func (d *Daemon) startAMI(ctx context.Context) {
	cfg := d.config().AMI
	if !cfg.Enabled {
		return
	}
	log := d.log.With("component", "ami", "addr", cfg.Addr)
	c := ami.New(ami.Config{
		Addr: cfg.Addr, Username: cfg.Username, Secret: cfg.Secret, MD5: cfg.MD5,
		Logger: log,
		OnStateChange: func(s ami.State, err error) {
			if s == ami.Connected {
				d.metrics.amiConnected.Set(1)
			} else {
				d.metrics.amiConnected.Set(0)
			}
			switch {
			case errors.Is(err, ami.ErrAuth):
				log.Error("AMI login refused: check [ami] username and secret against manager.conf; retrying", "err", err)
			case err != nil:
				log.Warn("AMI "+s.String(), "err", err)
			default:
				log.Info("AMI " + s.String())
			}
		},
	})
	d.ami = c
	d.door.lookup = amiLookup{c: c, timeout: cfg.LookupTimeout.Duration}
	if cfg.FollowReregister {
		events, cancel := c.Subscribe(func(m ami.Message) bool {
			e := m.Event()
			return e == "PeerStatus" || e == "ContactStatus"
		})
		go func() {
			defer cancel()
			for ev := range events {
				if ext, addr, ok := registration(ev); ok {
					d.followRegistration(ctx, ext, addr)
				}
			}
		}()
	}
	go func() {
		if err := c.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("AMI client stopped", "err", err)
		}
	}()
}

// registration reads "extension registered from address" out of a
// chan_sip PeerStatus or a chan_pjsip ContactStatus event.
func registration(ev ami.Message) (ext string, addr netip.Addr, ok bool) {
	switch ev.Event() {
	case "PeerStatus":
		if ev.Get("PeerStatus") != "Registered" {
			return "", netip.Addr{}, false
		}
		_, name, _ := strings.Cut(ev.Get("Peer"), "/")
		ap, err := ami.ParseHostPort(ev.Get("Address"))
		if name == "" || err != nil {
			return "", netip.Addr{}, false
		}
		return name, ap.Addr().Unmap(), true
	case "ContactStatus":
		if st := ev.Get("ContactStatus"); st != "Created" && st != "Reachable" && st != "Updated" {
			return "", netip.Addr{}, false
		}
		ap, okURI := ami.SIPURIAddress(ev.Get("URI"))
		name := ev.Get("EndpointName")
		if name == "" {
			name = ev.Get("AOR")
		}
		if name == "" || !okURI {
			return "", netip.Addr{}, false
		}
		return name, ap.Addr().Unmap(), true
	}
	return "", netip.Addr{}, false
}

// followRegistration moves a grant made for an extension's registered
// contact when that extension registers again from a new address: the
// traveler's phone changed networks. Only an account with exactly one
// such grant is moved (several would mean several devices); the grant
// keeps its expiry.
func (d *Daemon) followRegistration(ctx context.Context, ext string, addr netip.Addr) {
	if _, err := d.checkGrantable(addr); err != nil {
		return
	}
	var moved []string
	err := d.change(ctx, Guard{}, func(tx store.Tx) ([]netip.Prefix, error) {
		accounts, err := tx.Accounts()
		if err != nil {
			return nil, err
		}
		grants, err := tx.Grants()
		if err != nil {
			return nil, err
		}
		now := d.now()
		var touched []netip.Prefix
		for _, a := range accounts {
			if !a.Enabled || a.Extension != ext {
				continue
			}
			var mine []store.Grant
			for _, g := range grants {
				if g.Account == a.Name && g.Source == "phone:contact" && g.Expires.After(now) {
					mine = append(mine, g)
				}
			}
			if len(mine) != 1 || mine[0].IP == addr.String() {
				continue
			}
			g := mine[0]
			old := g.IP
			g.IP = addr.String()
			if _, err := tx.PutGrant(g); err != nil {
				return nil, err
			}
			for _, ip := range []string{old, g.IP} {
				if p, err := parsePrefix(ip); err == nil {
					touched = append(touched, p)
				}
			}
			if err := tx.Audit(store.AuditRecord{Action: "grant.move", Actor: "ami", Account: a.Name, Subject: g.IP, Result: "ok",
				Detail: fmt.Sprintf("%s: extension %s registered from %s (was %s)", g.ID, ext, g.IP, old)}); err != nil {
				return nil, err
			}
			moved = append(moved, a.Name)
		}
		return touched, nil
	})
	if err != nil {
		d.log.Error("follow re-registration", "extension", ext, "err", err)
		return
	}
	if len(moved) > 0 {
		d.log.Info("grant moved to the new registration", "extension", ext, "addr", addr, "accounts", moved)
	}
}

// ReloadDialplan asks Asterisk to reload extensions.conf (pbx_config)
// over AMI: the least privilege that does it (no Command action, which
// could run anything).
func (d *Daemon) ReloadDialplan(ctx context.Context) error {
	if d.ami == nil {
		return ErrAMIDisabled
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := d.ami.Action(ctx, "Reload", ami.Header{Key: "Module", Value: "pbx_config"})
	rec := store.AuditRecord{Action: "dialplan.reload", Actor: "cli", Result: "ok"}
	if err != nil {
		rec.Result, rec.Detail = "error", err.Error()
	}
	d.audit(rec)
	if err != nil {
		return fmt.Errorf("dialplan reload over AMI: %w", err)
	}
	return nil
}
