package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/dialgate/dialgate/ami"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

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
func (d *Daemon) startAMI(ctx context.Context, cfg AMIConfig) {
	if !cfg.Enabled {
		d.ami.Store(nil)
		d.door.SetContacts(nil)
		return
	}
	log := d.log.With("component", "ami", "addr", cfg.Addr)
	c := ami.New(ami.Config{
		Addr: cfg.Addr, Username: cfg.Username, Secret: cfg.Secret, MD5: cfg.MD5,
		Logger: log,
		OnStateChange: func(s ami.State, err error) {
			d.amiUp.Store(s == ami.Connected)
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
	d.ami.Store(c)
	lookup := amiLookup{c: c, timeout: cfg.LookupTimeout.Duration}
	d.door.SetContacts(lookup)
	// Registration events are always followed: follow_reregister and
	// [responsive] are read per event, so a reload that turns them on
	// needs no new AMI session.
	{
		events, cancel := c.Subscribe(func(m ami.Message) bool {
			e := m.Event()
			return e == "PeerStatus" || e == "ContactStatus"
		})
		go func() {
			defer cancel()
			for ev := range events {
				if r, ok := registration(ev); ok {
					d.onRegistration(ctx, lookup, r)
				}
			}
		}()
	}
	// Failed authentications (manager read class "security") feed the
	// block guard; without that class Asterisk sends none and nothing is
	// ever blocked.
	security, cancelSecurity := c.Subscribe(func(m ami.Message) bool {
		return strings.Contains(m.Get("Privilege"), "security")
	})
	go func() {
		defer cancelSecurity()
		for m := range security {
			if ev, ok := ami.ParseSecurityEvent(m); ok {
				d.guard.onEvent(ctx, ev)
				d.onAuth(ctx, ev)
			}
		}
	}()
	go func() {
		if err := c.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("AMI client stopped", "err", err)
		}
	}()
}

// regKind says what a registration event announces.
type regKind uint8

const (
	// regRegistered: the extension is registered from addr.
	regRegistered regKind = iota + 1
	// regRemoved: the extension is no longer registered from addr, or,
	// when addr is the zero Addr (chan_sip says no more), from anywhere.
	regRemoved
)

func (k regKind) String() string {
	switch k {
	case regRegistered:
		return "registered"
	case regRemoved:
		return "removed"
	}
	return fmt.Sprintf("regKind(%d)", uint8(k))
}

// regEvent is what registration reads out of one AMI event.
type regEvent struct {
	ext  string
	addr netip.Addr // zero for a chan_sip unregister, which names no address
	kind regKind
}

func (r regEvent) String() string {
	if !r.addr.IsValid() {
		return fmt.Sprintf("%s %s", r.ext, r.kind)
	}
	return fmt.Sprintf("%s %s %s", r.ext, r.kind, r.addr)
}

// registration reads a registration change out of a chan_sip PeerStatus
// or a chan_pjsip ContactStatus event, as Asterisk 20 sends them:
//
//   - chan_sip: "PeerStatus: Registered" with "Address: 203.0.113.7:5062";
//     "PeerStatus: Unregistered" (Cause: Expired, also after an explicit
//     unregister) with no address.
//   - chan_pjsip: a new contact is "ContactStatus: NonQualified" (the only
//     event when qualify_frequency = 0, the default), then "Reachable" if
//     qualified; "Removed" when it unregisters or expires. "Created" and
//     "Updated" appear only in Asterisk's XML documentation and are taken
//     as registrations too. "Unreachable" (a failed qualify) and
//     "Unknown" say nothing about where the contact is registered.
//
// AMI values are untrusted text; anything that does not parse strictly
// is ignored.
func registration(ev ami.Message) (regEvent, bool) {
	switch ev.Event() {
	case "PeerStatus":
		_, name, _ := strings.Cut(ev.Get("Peer"), "/")
		if name == "" {
			return regEvent{}, false
		}
		switch ev.Get("PeerStatus") {
		case "Registered":
			ap, err := ami.ParseHostPort(ev.Get("Address"))
			if err != nil {
				return regEvent{}, false
			}
			return regEvent{ext: name, addr: ap.Addr().Unmap(), kind: regRegistered}, true
		case "Unregistered":
			// chan_sip sends no Address: the peer is registered from
			// nowhere now. Should one appear, it narrows the removal to
			// that address; "(null)" or garbage does not.
			var addr netip.Addr
			if ap, err := ami.ParseHostPort(ev.Get("Address")); err == nil {
				addr = ap.Addr().Unmap()
			}
			return regEvent{ext: name, addr: addr, kind: regRemoved}, true
		}
	case "ContactStatus":
		var kind regKind
		switch ev.Get("ContactStatus") {
		case "NonQualified", "Reachable", "Created", "Updated":
			kind = regRegistered
		case "Removed":
			kind = regRemoved
		default:
			return regEvent{}, false
		}
		ap, okURI := ami.SIPURIAddress(ev.Get("URI"))
		name := ev.Get("EndpointName")
		if name == "" {
			name = ev.Get("AOR")
		}
		if name == "" || !okURI {
			return regEvent{}, false
		}
		return regEvent{ext: name, addr: ap.Addr().Unmap(), kind: kind}, true
	}
	return regEvent{}, false
}

// onRegistration acts on a registration change: a grant made for the
// extension's registered contact follows it to a new address, and ends
// when the contact goes away. lookup (nil without AMI) is asked, only
// when a grant would end, where the extension is registered now.
func (d *Daemon) onRegistration(ctx context.Context, lookup ContactLookup, r regEvent) {
	switch r.kind {
	case regRegistered:
		if d.config().AMI.FollowReregister {
			d.followRegistration(ctx, r.ext, r.addr)
		}
		d.grantRegistration(ctx, r.ext, r.addr, "registered")
	case regRemoved:
		if cfg := d.config(); cfg.AMI.FollowReregister || cfg.Responsive.Enabled {
			d.endRegistration(ctx, lookup, r.ext, r.addr)
		}
	}
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
		// The shared store may run this again after a conflict: start clean.
		moved = nil
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
				if g.Account == a.Name && isContactGrant(g, now) {
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

// isContactGrant reports whether g is a live grant made for an
// extension's registered contact ("phone:contact").
func isContactGrant(g store.Grant, now time.Time) bool {
	return g.Source == "phone:contact" && g.Expires.After(now)
}

// isRegistrationBound reports whether g is a live grant that lasts only
// as long as a registration: one made for a registered contact by the
// door, or by the registration itself.
func isRegistrationBound(g store.Grant, now time.Time) bool {
	return (g.Source == "phone:contact" || g.Source == registrationSource) && g.Expires.After(now)
}

// grantAt reports whether the grant is for exactly addr.
func grantAt(g store.Grant, addr netip.Addr) bool {
	a, err := netip.ParseAddr(g.IP)
	return err == nil && a.Unmap() == addr.Unmap()
}

// unregisteredGrants returns the live contact grants of the accounts
// whose extension is ext that a removal of addr (of every address, when
// addr is the zero Addr) leaves without a registration, and how many live
// contact grants each of those accounts holds in all.
func unregisteredGrants(tx store.Tx, ext string, addr netip.Addr, now time.Time) ([]store.Grant, map[string]int, error) {
	accounts, err := tx.Accounts()
	if err != nil {
		return nil, nil, err
	}
	mine := map[string]bool{}
	for _, a := range accounts {
		if a.Extension != "" && a.Extension == ext {
			mine[a.Name] = true
		}
	}
	if len(mine) == 0 {
		return nil, nil, nil
	}
	grants, err := tx.Grants()
	if err != nil {
		return nil, nil, err
	}
	var victims []store.Grant
	count := map[string]int{}
	for _, g := range grants {
		if !mine[g.Account] || !isRegistrationBound(g, now) {
			continue
		}
		count[g.Account]++
		if !addr.IsValid() || grantAt(g, addr) {
			victims = append(victims, g)
		}
	}
	return victims, count, nil
}

// endRegistration ends the grants made for an extension's registered
// contact when that contact unregisters (chan_pjsip "ContactStatus:
// Removed", chan_sip "PeerStatus: Unregistered"): a phone that left must
// not leave its old address open for the rest of the grant's life.
//
// Only a grant for the removed address ends; the removal of another
// address (the contact the grant already followed away from) changes
// nothing. When AMI can tell where the extension is registered now, a
// grant whose address is still registered (a second contact from the same
// address, as after a NAT port change) stays, and one whose extension is
// registered again from exactly one other address follows it there
// instead, as followRegistration would. If the lookup fails, the event
// alone decides.
func (d *Daemon) endRegistration(ctx context.Context, lookup ContactLookup, ext string, addr netip.Addr) {
	log := d.log.With("extension", ext)
	if addr.IsValid() {
		log = log.With("addr", addr)
	}
	var affected int
	err := d.db.View(func(tx store.Tx) error {
		victims, _, err := unregisteredGrants(tx, ext, addr, d.now())
		affected = len(victims)
		return err
	})
	if err != nil {
		log.Error("end grant on unregister", "err", err)
		return
	}
	if affected == 0 {
		log.Debug("unregister: no grant for that contact")
		return
	}
	// The lookup is a round trip to Asterisk: made outside the change,
	// which holds the daemon's lock.
	var current []netip.Addr
	if lookup != nil {
		addrs, err := lookup.RegisteredAddrs(ctx, ext)
		if err != nil && !errors.Is(err, ami.ErrNotFound) {
			log.Warn("unregister: registered-contact lookup failed; ending the grant on the event alone", "err", err)
		}
		if err == nil {
			current = addrs
		}
	}
	registered := func(g store.Grant) bool {
		return slices.ContainsFunc(current, func(a netip.Addr) bool { return grantAt(g, a) })
	}
	var target netip.Addr
	if len(current) == 1 {
		if _, err := d.checkGrantable(current[0]); err == nil {
			target = current[0].Unmap()
		}
	}
	type outcome struct {
		g         store.Grant
		movedFrom string // set for a move
	}
	var ended, moved []outcome
	var kept []store.Grant
	err = d.change(ctx, Guard{}, func(tx store.Tx) ([]netip.Prefix, error) {
		// The shared store may run this again after a conflict: start clean.
		ended, moved, kept = nil, nil, nil
		victims, count, err := unregisteredGrants(tx, ext, addr, d.now())
		if err != nil {
			return nil, err
		}
		var touched []netip.Prefix
		for _, g := range victims {
			old := g.IP
			if registered(g) {
				kept = append(kept, g)
				continue
			}
			if p, err := parsePrefix(old); err == nil {
				touched = append(touched, p)
			}
			if target.IsValid() && count[g.Account] == 1 {
				g.IP = target.String()
				if _, err := tx.PutGrant(g); err != nil {
					return nil, err
				}
				touched = append(touched, netip.PrefixFrom(target, target.BitLen()))
				if err := tx.Audit(store.AuditRecord{Action: "grant.move", Actor: "ami", Account: g.Account, Subject: g.IP, Result: "ok",
					Detail: fmt.Sprintf("%s: extension %s unregistered from %s and is registered from %s", g.ID, ext, old, g.IP)}); err != nil {
					return nil, err
				}
				moved = append(moved, outcome{g: g, movedFrom: old})
				continue
			}
			if _, err := tx.DeleteGrant(g.ID); err != nil {
				return nil, err
			}
			if err := tx.Audit(store.AuditRecord{Action: "grant.end", Actor: "ami", Account: g.Account, Subject: old, Result: "ok",
				Detail: fmt.Sprintf("%s: extension %s unregistered from %s", g.ID, ext, old)}); err != nil {
				return nil, err
			}
			ended = append(ended, outcome{g: g})
		}
		return touched, nil
	})
	if err != nil {
		log.Error("end grant on unregister", "err", err)
		return
	}
	for _, o := range ended {
		log.Info("grant ended: the extension unregistered", "id", o.g.ID, "account", o.g.Account, "ip", o.g.IP)
	}
	for _, o := range moved {
		log.Info("grant moved: the extension unregistered and is registered elsewhere", "id", o.g.ID, "account", o.g.Account,
			"from", o.movedFrom, "to", o.g.IP)
	}
	for _, g := range kept {
		log.Info("grant kept: the extension is still registered from its address", "id", g.ID, "account", g.Account, "ip", g.IP)
	}
}

// ReloadDialplan asks Asterisk to reload extensions.conf (pbx_config)
// over AMI: the least privilege that does it (no Command action, which
// could run anything).
func (d *Daemon) ReloadDialplan(ctx context.Context) error {
	c := d.ami.Load()
	if c == nil {
		return localapi.ErrAMIDisabled
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := c.Action(ctx, "Reload", ami.Header{Key: "Module", Value: "pbx_config"})
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
