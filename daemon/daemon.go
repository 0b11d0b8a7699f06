package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dialgate/dialgate/ami"
	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/door"
	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// Daemon owns the store and the firewall while `dialgate serve` runs.
type Daemon struct {
	configPath string
	log        *slog.Logger
	db         database
	fw         firewall.Backend
	resolver   Resolver
	now        func() time.Time

	// mu serialises changes: a store transaction and the kernel apply
	// that follows are one step, so two changes never interleave.
	mu sync.Mutex
	// cfg is swapped whole on reload; readers take a snapshot.
	cfg atomic.Pointer[Config]

	door *door.Door
	// pending is a reload waiting for Confirm; guarded by mu.
	pending *pendingReload
	// ami is the Asterisk Manager client, nil unless [ami] is enabled;
	// a reload may replace it.
	ami     atomic.Pointer[ami.Client]
	svc     services
	metrics *metrics
	// takeOver is Options.TakeOver.
	takeOver bool
	// amiUp is whether AMI is logged in now.
	amiUp atomic.Bool
	// guard blocks sources that fail authentication again and again.
	guard *blockGuard
}

func (d *Daemon) config() Config { return *d.cfg.Load() }

// Options configure New. Only Config and Backend are required.
type Options struct {
	Config     Config
	ConfigPath string // re-read on Reload; empty means keep Config
	Backend    firewall.Backend
	Logger     *slog.Logger
	Resolver   Resolver // nil: the system resolver
	// Contacts finds registered SIP contacts (the AMI client); nil: the
	// door uses the calling channel's address.
	Contacts ContactLookup
	// TakeOver lets Run replace a kernel firewall that another dialgate
	// install (another database) owns.
	TakeOver bool
}

// New opens the store. It fails fast if another process holds it.
func New(opts Options) (*Daemon, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	db, err := openStore(context.Background(), opts.Config, log)
	if err != nil {
		return nil, err
	}
	res := opts.Resolver
	if res == nil {
		res = systemResolver{}
	}
	d := &Daemon{
		configPath: opts.ConfigPath, log: log, db: db,
		fw: opts.Backend, resolver: res, now: time.Now, takeOver: opts.TakeOver,
	}
	cfg := opts.Config
	d.cfg.Store(&cfg)
	d.logWarnings(cfg)
	d.metrics = newMetrics(d)
	d.guard = d.newBlockGuard()
	if d.door, err = d.newDoor(opts.Contacts); err != nil {
		_ = db.Close()
		return nil, err
	}
	return d, nil
}

// logWarnings logs the risky settings of a config just loaded.
func (d *Daemon) logWarnings(c Config) {
	for _, w := range c.Warnings {
		d.log.Warn("config: " + w)
	}
}

// Close closes the store. The firewall stays in the kernel on purpose: a
// server must remain protected while the daemon is stopped.
func (d *Daemon) Close() error { return d.db.Close() }

// Guard describes who must not be cut off by a change: the SSH session
// the request came from. The zero Guard protects nobody.
type Guard struct {
	SSH   netip.AddrPort // client address and the server's SSH port
	Force bool
}

func (g Guard) check(before, after firewall.State) error {
	if g.Force || !g.SSH.IsValid() {
		return nil
	}
	a, port := g.SSH.Addr(), g.SSH.Port()
	if before.Admits(a, "tcp", port) {
		return after.CheckKeeps(a, "tcp", port)
	}
	return nil
}

// change runs fn in one store transaction and makes the kernel agree
// before committing. fn returns the prefixes whose membership it may have
// changed; only those are synced (the rules do not change), and, unless a
// guard must compare whole states, only their members are computed, so a
// grant costs the same at 10 000 accounts as at one.
func (d *Daemon) change(ctx context.Context, g Guard, fn func(tx store.Tx) ([]netip.Prefix, error)) error {
	return d.update(ctx, g, func(tx store.Tx) (func(firewall.State) error, []netip.Prefix, error) {
		prefixes, err := fn(tx)
		if err != nil || len(prefixes) == 0 {
			return nil, nil, err
		}
		return func(after firewall.State) error {
			defer d.metrics.timeApply("sync", time.Now())
			return d.fw.SyncMembers(ctx, after, prefixes)
		}, prefixes, nil
	})
}

// changeRules is change for edits that alter the rules themselves (SIP
// secret domains): the whole state is applied, chain included.
func (d *Daemon) changeRules(ctx context.Context, g Guard, fn func(tx store.Tx) error) error {
	return d.update(ctx, g, func(tx store.Tx) (func(firewall.State) error, []netip.Prefix, error) {
		if err := fn(tx); err != nil {
			return nil, nil, err
		}
		return func(after firewall.State) error {
			defer d.metrics.timeApply("apply", time.Now())
			return d.fw.Apply(ctx, after)
		}, nil, nil
	})
}

// update is the one path every change takes: fn edits the store and says
// how to bring the kernel along (and, if only some members can have
// changed, which); the guard checks the result; the kernel is changed
// before the transaction commits. If fn, the guard or the kernel refuses,
// the transaction rolls back; if the kernel was touched, the committed
// state is applied again so the kernel and the store agree.
func (d *Daemon) update(ctx context.Context, g Guard, fn func(tx store.Tx) (func(firewall.State) error, []netip.Prefix, error)) error {
	// Known to fail: refused before the kernel is touched (and put back).
	if err := d.storeAvailable(); err != nil {
		return fmt.Errorf("change not made: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	cfg := d.config().FirewallRules()
	touched := false
	var changed []netip.Prefix // the members the change may have moved
	guarded := g.SSH.IsValid() && !g.Force
	note := guardOff(ctx)
	err := d.db.Update(func(tx store.Tx) error {
		if note != "" {
			tx = notingTx{tx, note}
		}
		now := d.now()
		// The guard asks one question, whether the SSH client still
		// reaches its port, and only the members that contain its
		// address can answer it: the state around that address is
		// enough, before and after, whatever the size of the whitelist.
		var around []netip.Prefix
		var before firewall.State
		if guarded {
			around = containing(g.SSH.Addr())
			var err error
			if before, err = desiredFor(tx, cfg, now, around); err != nil {
				return err
			}
		}
		apply, only, err := fn(tx)
		if err != nil {
			return err
		}
		if apply == nil && !guarded {
			return nil // a store-only change: the kernel has nothing to follow
		}
		var after firewall.State
		switch {
		case only != nil:
			after, err = desiredFor(tx, cfg, now, slices.Concat(only, around))
		case apply != nil:
			after, err = desiredState(tx, cfg, now)
		default:
			after, err = desiredFor(tx, cfg, now, around)
		}
		if err != nil {
			return err
		}
		if guarded {
			if err := g.check(before, after); err != nil {
				return err
			}
		}
		if apply == nil {
			return nil
		}
		touched, changed = true, only
		return apply(after)
	})
	if err != nil && touched {
		if rerr := d.applyStored(ctx, false); rerr != nil {
			d.log.Error("firewall restore after failed change", "err", rerr)
		}
	}
	if err == nil && touched {
		d.guard.release(ctx, changed)
	}
	return err
}

// containing returns every network that contains a, from a itself to
// 0.0.0.0/0 (or ::/0): the values of all the entries that can admit a.
func containing(a netip.Addr) []netip.Prefix {
	a = a.Unmap()
	out := make([]netip.Prefix, 0, a.BitLen()+1)
	for bits := a.BitLen(); bits >= 0; bits-- {
		p, _ := a.Prefix(bits)
		out = append(out, p)
	}
	return out
}

// applyStored makes the kernel match the store; rebuild replaces chain
// and sets wholesale.
func (d *Daemon) applyStored(ctx context.Context, rebuild bool) error {
	var st firewall.State
	err := d.db.View(func(tx store.Tx) (err error) {
		st, err = desiredState(tx, d.config().FirewallRules(), d.now())
		return err
	})
	if err != nil {
		return err
	}
	if rebuild {
		defer d.metrics.timeApply("rebuild", time.Now())
		return d.fw.Rebuild(ctx, st)
	}
	defer d.metrics.timeApply("apply", time.Now())
	return d.fw.Apply(ctx, st)
}

// audit records an outcome in its own transaction; used for refusals,
// whose own transaction rolled back.
func (d *Daemon) audit(r store.AuditRecord) {
	if err := d.db.Update(func(tx store.Tx) error { return tx.Audit(r) }); err != nil {
		d.log.Error("audit", "err", err)
	}
}

// AddAccount creates an account.
func (d *Daemon) AddAccount(ctx context.Context, req localapi.AddAccountRequest) (localapi.AccountInfo, error) {
	rec := store.AuditRecord{Action: "account.add", Actor: "cli", Account: req.Name}
	a, err := func() (store.Account, error) {
		if err := auth.ValidateAccountName(req.Name); err != nil {
			return store.Account{}, err
		}
		perms, err := auth.ParsePerms(req.Perms)
		if err != nil {
			return store.Account{}, err
		}
		if err := auth.ValidateComment(req.Comment); err != nil {
			return store.Account{}, err
		}
		a := store.Account{Name: req.Name, Perms: perms, Comment: req.Comment, Enabled: true, Created: d.now()}
		return a, d.change(ctx, Guard{}, func(tx store.Tx) ([]netip.Prefix, error) {
			if err := tx.CreateAccount(a); err != nil {
				return nil, err
			}
			rec.Result, rec.Detail = "ok", "perms "+perms.String()
			return nil, tx.Audit(rec)
		})
	}()
	if err != nil {
		d.refused(rec, err)
		return localapi.AccountInfo{}, err
	}
	d.log.Info("account added", "account", a.Name, "perms", a.Perms.String())
	return accountInfo(a), nil
}

func (d *Daemon) refused(rec store.AuditRecord, err error) {
	rec.Result, rec.Detail = "refused", err.Error()
	d.audit(rec)
	d.log.Warn("refused", "action", rec.Action, "account", rec.Account, "subject", rec.Subject, "err", err)
}

// DeleteAccount removes an account with its entries and grants.
func (d *Daemon) DeleteAccount(ctx context.Context, name string, g Guard) (localapi.DeleteResult, error) {
	rec := store.AuditRecord{Action: "account.del", Actor: "cli", Account: name}
	var res localapi.DeleteResult
	err := d.change(ctx, g, func(tx store.Tx) ([]netip.Prefix, error) {
		// The shared store may run this again after a conflict: start clean.
		res = localapi.DeleteResult{}
		entries, grants, err := tx.DeleteAccount(name)
		if err != nil {
			return nil, err
		}
		var touched []netip.Prefix
		for _, e := range entries {
			ps, err := entryPrefixes(tx, e)
			if err != nil {
				return nil, err
			}
			touched = append(touched, ps...)
			res.Entries = append(res.Entries, entryInfo(e, store.Account{}, store.FQDNRecord{}))
		}
		for _, gr := range grants {
			if p, err := parsePrefix(gr.IP); err == nil {
				touched = append(touched, p)
			}
			res.Grants = append(res.Grants, grantInfo(gr, d.now()))
		}
		rec.Result = "ok"
		rec.Detail = fmt.Sprintf("%d entries, %d grants removed", len(entries), len(grants))
		return touched, tx.Audit(rec)
	})
	if err != nil {
		d.refused(rec, err)
		return res, err
	}
	d.log.Info("account deleted", "account", name, "entries", len(res.Entries), "grants", len(res.Grants))
	return res, nil
}

// AddEntry whitelists an address, network or FQDN for an account. An
// FQDN is resolved first, outside the transaction, so a slow name server
// never holds the store.
func (d *Daemon) AddEntry(ctx context.Context, req localapi.AddEntryRequest) (localapi.EntryInfo, error) {
	rec := store.AuditRecord{Action: "entry.add", Actor: "cli", Account: req.Account, Subject: req.Value}
	info, err := func() (localapi.EntryInfo, error) {
		value, err := auth.ParseEntry(req.Kind, req.Value, req.Force)
		if err != nil {
			return localapi.EntryInfo{}, err
		}
		rec.Subject = value
		var perms store.PermSet
		if req.Perms != "" {
			if perms, err = auth.ParsePerms(req.Perms); err != nil {
				return localapi.EntryInfo{}, err
			}
		}
		if err := auth.ValidateComment(req.Comment); err != nil {
			return localapi.EntryInfo{}, err
		}
		if req.Refresh != 0 && (req.Kind != store.KindFQDN || req.Refresh < time.Second) {
			return localapi.EntryInfo{}, fmt.Errorf("%w: refresh %v: only for fqdn entries, at least 1s", auth.ErrInvalid, req.Refresh)
		}
		var fq store.FQDNRecord
		if req.Kind == store.KindFQDN {
			fq = d.resolve(ctx, value, store.FQDNRecord{Name: value}, req.Force)
		}
		var info localapi.EntryInfo
		err = d.change(ctx, Guard{}, func(tx store.Tx) ([]netip.Prefix, error) {
			acct, err := tx.Account(req.Account)
			if err != nil {
				return nil, err
			}
			if !req.Force && !auth.PermsWithin(perms, acct.Perms) {
				return nil, fmt.Errorf("perms %s: %w: wider than account %q's perms %s; widen the account (dialgate account set %s --perms ...) or insist with --force",
					perms, auth.ErrNeedsForce, acct.Name, permsOrNone(acct.Perms), acct.Name)
			}
			e, err := tx.AddEntry(store.Entry{Account: req.Account, Kind: req.Kind, Value: value,
				Perms: perms, Comment: req.Comment, Force: req.Force, Created: d.now(), Refresh: req.Refresh})
			if err != nil {
				return nil, err
			}
			if req.Kind == store.KindFQDN {
				if old, err := tx.FQDN(value); err == nil {
					fq = mergeFQDN(old, fq)
				}
				if err := tx.PutFQDN(fq); err != nil {
					return nil, err
				}
			}
			info = entryInfo(e, acct, fq)
			rec.Result, rec.Detail = "ok", fmt.Sprintf("%s %s perms %s", e.ID, e.Kind, info.Perms)
			touched, err := entryPrefixes(tx, e)
			if err != nil {
				return nil, err
			}
			return touched, tx.Audit(rec)
		})
		return info, err
	}()
	if err != nil {
		d.refused(rec, err)
		return localapi.EntryInfo{}, err
	}
	d.log.Info("entry added", "id", info.ID, "account", info.Account, "kind", info.Kind, "value", info.Value, "perms", info.Perms.String())
	return info, nil
}

// DeleteEntry removes an entry by ID ("e12") or every entry with the
// given value.
func (d *Daemon) DeleteEntry(ctx context.Context, idOrValue string, g Guard) (localapi.DeleteResult, error) {
	rec := store.AuditRecord{Action: "entry.del", Actor: "cli", Subject: idOrValue}
	var res localapi.DeleteResult
	err := d.change(ctx, g, func(tx store.Tx) ([]netip.Prefix, error) {
		// The shared store may run this again after a conflict: start clean.
		res = localapi.DeleteResult{}
		var victims []store.Entry
		if e, err := tx.Entry(idOrValue); err == nil {
			victims = append(victims, e)
		} else if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrInvalid) {
			return nil, err
		}
		if len(victims) == 0 {
			value := idOrValue
			for _, k := range []store.EntryKind{store.KindIP, store.KindCIDR, store.KindFQDN} {
				if v, err := auth.ParseEntry(k, idOrValue, true); err == nil {
					value = v
					break
				}
			}
			es, err := tx.EntriesByValue(value)
			if err != nil {
				return nil, err
			}
			victims = es
		}
		if len(victims) == 0 {
			return nil, fmt.Errorf("entry %q: %w (give an entry ID such as e12 or a whitelisted value; see dialgate status)", idOrValue, store.ErrNotFound)
		}
		for _, e := range victims {
			res.Entries = append(res.Entries, entryInfo(e, store.Account{}, store.FQDNRecord{}))
		}
		return removeEntries(tx, victims, rec)
	})
	if err != nil {
		d.refused(rec, err)
		return res, err
	}
	for _, e := range res.Entries {
		d.log.Info("entry deleted", "id", e.ID, "account", e.Account, "value", e.Value)
	}
	return res, nil
}

// removeEntries deletes entries, drops the FQDN cache records no entry
// uses any more, audits each removal, and returns the prefixes whose set
// membership may change.
func removeEntries(tx store.Tx, victims []store.Entry, rec store.AuditRecord) ([]netip.Prefix, error) {
	var touched []netip.Prefix
	for _, e := range victims {
		ps, err := entryPrefixes(tx, e)
		if err != nil {
			return nil, err
		}
		touched = append(touched, ps...)
		if _, err := tx.DeleteEntry(e.ID); err != nil {
			return nil, err
		}
		if e.Kind == store.KindFQDN {
			still, err := tx.EntriesByValue(e.Value)
			if err != nil {
				return nil, err
			}
			if len(still) == 0 {
				if err := tx.DeleteFQDN(e.Value); err != nil && !errors.Is(err, store.ErrNotFound) {
					return nil, err
				}
			}
		}
		r := rec
		r.Account, r.Subject, r.Result, r.Detail = e.Account, e.Value, "ok", e.ID
		if err := tx.Audit(r); err != nil {
			return nil, err
		}
	}
	return touched, nil
}

// Reload re-reads the configuration file (when there is one),
// re-resolves FQDNs and rebuilds the firewall from the store. A bad
// config file, or one that would cut off the SSH session, changes
// nothing.
func (d *Daemon) Reload(ctx context.Context, g Guard) error {
	return d.ReloadConfirm(ctx, g, 0)
}

// ReloadConfirm is Reload with a safety net, like iptables-apply: with
// confirm > 0 the new rules are applied and rolled back to the running
// configuration unless Confirm is called within confirm. It is for
// changes whose effect on the administrator's own access the lockout
// guard cannot foresee (NAT, a non-standard SSH path).
func (d *Daemon) ReloadConfirm(ctx context.Context, g Guard, confirm time.Duration) error {
	rec := store.AuditRecord{Action: "reload", Actor: "cli"}
	if confirm > 0 {
		rec.Detail = "confirm within " + confirm.String()
		d.mu.Lock()
		busy := d.pending != nil
		d.mu.Unlock()
		if busy {
			err := fmt.Errorf("%w: a reload is already waiting for `dialgate confirm`", store.ErrExists)
			d.refused(rec, err)
			return err
		}
	}
	old := d.config()
	err := d.reload(ctx, g)
	var partial partialError
	if err != nil && !errors.As(err, &partial) {
		d.refused(rec, err)
		return err
	}
	if confirm > 0 {
		d.mu.Lock()
		d.pending = &pendingReload{old: old, deadline: d.now().Add(confirm)}
		d.pending.timer = time.AfterFunc(confirm, d.rollback)
		d.mu.Unlock()
	}
	rec.Result = "ok"
	if err != nil {
		rec.Result, rec.Detail = "partial", strings.TrimSpace(rec.Detail+" "+err.Error())
	}
	rec.Detail = withNote(rec.Detail, guardOff(ctx))
	d.audit(rec)
	return err
}

// pendingReload is a reload applied but not yet confirmed.
type pendingReload struct {
	old      Config
	deadline time.Time
	timer    *time.Timer
}

// Confirm keeps a reload made with a confirmation deadline.
func (d *Daemon) Confirm() error {
	d.mu.Lock()
	p := d.pending
	if p != nil {
		p.timer.Stop()
		d.pending = nil
	}
	d.mu.Unlock()
	if p == nil {
		return localapi.ErrNothingToConfirm
	}
	d.audit(store.AuditRecord{Action: "reload.confirm", Actor: "cli", Result: "ok"})
	d.log.Info("reload confirmed")
	return nil
}

// rollback puts the configuration that ran before an unconfirmed reload
// back, rules and all.
func (d *Daemon) rollback() {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.pending
	if p == nil {
		return // confirmed meanwhile
	}
	d.pending = nil
	old := p.old
	d.cfg.Store(&old)
	err := errors.Join(d.applyStored(context.Background(), true), d.applyServices(old, false))
	rec := store.AuditRecord{Action: "reload.rollback", Actor: "daemon", Result: "ok",
		Detail: "not confirmed in time; the previous configuration is back (the config file still holds the new one)"}
	if err != nil {
		rec.Result, rec.Detail = "error", err.Error()
		d.log.Error("rollback of unconfirmed reload failed", "err", err)
	} else {
		d.log.Warn("reload not confirmed in time: rolled back; the config file still holds the rejected change")
	}
	d.audit(rec)
}

func (d *Daemon) reload(ctx context.Context, g Guard) error {
	var cfg *Config
	var restart []string
	if d.configPath != "" {
		c, err := LoadConfig(d.configPath, true)
		if err != nil {
			return fmt.Errorf("reload: %w (nothing changed)", err)
		}
		cfg = &c
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if cfg != nil {
		old := d.config()
		for _, c := range []struct{ key, was, now string }{
			{"db", old.DB, cfg.DB}, {"socket", old.Socket, cfg.Socket}, {"firewall.backend", old.Firewall.Backend, cfg.Firewall.Backend},
			{"store", old.Store.describe(), cfg.Store.describe()},
		} {
			if c.was != c.now {
				restart = append(restart, fmt.Sprintf("%s (%q, running %q)", c.key, c.now, c.was))
			}
		}
		cfg.DB, cfg.Socket, cfg.Firewall.Backend, cfg.Store = old.DB, old.Socket, old.Firewall.Backend, old.Store
		if err := d.guardConfig(old, *cfg, g); err != nil {
			return err
		}
		d.cfg.Store(cfg)
		d.logWarnings(*cfg)
	}
	if err := d.purgeExpired(); err != nil {
		return err
	}
	start := time.Now()
	if err := d.applyStored(ctx, true); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	d.log.Info("reloaded", "duration", time.Since(start))
	var errs []error
	if cfg != nil {
		// [ami], [agi], [metrics]; the door reads [door] on every call.
		if err := d.applyServices(*cfg, false); err != nil {
			errs = append(errs, fmt.Errorf("reload: the firewall was rebuilt, but: %w", err))
		}
	}
	if len(restart) > 0 {
		d.log.Warn("reload: these settings take a restart (systemctl restart dialgate)", "settings", restart)
		errs = append(errs, fmt.Errorf("%w: %s; restart the daemon (systemctl restart dialgate)", localapi.ErrNeedsRestart, strings.Join(restart, ", ")))
	}
	// Names are re-resolved afterwards, in the background: a dead name
	// server must not hold up a reload.
	go func() {
		if _, err := d.RefreshFQDNs(context.WithoutCancel(ctx), nil, false); err != nil {
			d.log.Error("fqdn refresh after reload", "err", err)
		}
	}()
	if len(errs) > 0 {
		return partialError{errors.Join(errs...)}
	}
	return nil
}

// partialError is a reload that applied the firewall and the new config
// but not all of it: it is reported, not refused.
type partialError struct{ error }

func (e partialError) Unwrap() error { return e.error }

// guardConfig refuses a new configuration that would cut off the SSH
// session (a LAN range or the SSH port removed, say).
func (d *Daemon) guardConfig(old, cfg Config, g Guard) error {
	return d.db.View(func(tx store.Tx) error {
		now := d.now()
		before, err := desiredState(tx, old.FirewallRules(), now)
		if err != nil {
			return err
		}
		after, err := desiredState(tx, cfg.FirewallRules(), now)
		if err != nil {
			return err
		}
		return g.check(before, after)
	})
}

func (d *Daemon) purgeExpired() error {
	// Put off while the shared store is known to be away, rather than
	// wait out a request timeout every 30 s (and at start).
	if err := d.storeAvailable(); err != nil {
		return err
	}
	window := d.config().Door.FailureWindow.Duration
	return d.db.Update(func(tx store.Tx) error {
		now := d.now()
		gone, err := tx.PurgeExpiredGrants(now)
		if err != nil {
			return err
		}
		for _, g := range gone {
			if err := tx.Audit(store.AuditRecord{Action: "grant.expire", Actor: "daemon", Account: g.Account, Subject: g.IP, Result: "ok", Detail: g.ID}); err != nil {
				return err
			}
		}
		// Lockout records that no longer lock and whose failures left the
		// window count for nothing; invented caller IDs must not pile up.
		if _, err = tx.PurgeLockouts(now, now.Add(-window)); err != nil {
			return err
		}
		return d.purgeAudit(tx, now)
	})
}

// Accounts lists the accounts with their entry and grant counts from the
// database alone: a listing never waits for the kernel.
func (d *Daemon) Accounts() ([]localapi.AccountInfo, error) {
	st := localapi.StatusInfo{Time: d.now()}
	err := d.fillListing(&st)
	return st.Accounts, err
}

// fillListing adds the accounts, entries and live grants to st.
func (d *Daemon) fillListing(st *localapi.StatusInfo) error {
	return d.db.View(func(tx store.Tx) error {
		accounts, err := tx.Accounts()
		if err != nil {
			return err
		}
		entries, err := tx.Entries()
		if err != nil {
			return err
		}
		grants, err := tx.Grants()
		if err != nil {
			return err
		}
		// Accounts by name, with the index of their AccountInfo for the
		// entry and grant counts.
		acct := make(map[string]store.Account, len(accounts))
		byName := make(map[string]*localapi.AccountInfo, len(accounts))
		st.Accounts = make([]localapi.AccountInfo, len(accounts))
		for i, a := range accounts {
			st.Accounts[i] = accountInfo(a)
			acct[a.Name], byName[a.Name] = a, &st.Accounts[i]
		}
		for _, e := range entries {
			var fq store.FQDNRecord
			if e.Kind == store.KindFQDN {
				fq, _ = tx.FQDN(e.Value)
			}
			st.Entries = append(st.Entries, entryInfo(e, acct[e.Account], fq))
			if a := byName[e.Account]; a != nil {
				a.Entries++
			}
		}
		for _, g := range grants {
			if !g.Expires.After(st.Time) {
				continue
			}
			st.Grants = append(st.Grants, grantInfo(g, st.Time))
			if a := byName[g.Account]; a != nil {
				a.Grants++
			}
		}
		return nil
	})
}

func entryInfo(e store.Entry, a store.Account, fq store.FQDNRecord) localapi.EntryInfo {
	return localapi.EntryInfo{
		ID: e.ID, Account: e.Account, Kind: e.Kind, Value: e.Value,
		Perms: effectivePerms(e, a), Inherited: e.Perms.IsEmpty(), Comment: e.Comment,
		Force: e.Force, Created: e.Created, Addrs: fq.Addrs, Error: fq.LastError,
	}
}

func grantInfo(g store.Grant, now time.Time) localapi.GrantInfo {
	left := g.Expires.Sub(now)
	if left < 0 {
		left = 0
	}
	return localapi.GrantInfo{ID: g.ID, Account: g.Account, IP: g.IP, Perms: g.Perms, Expires: g.Expires, Left: left.Round(time.Second), Source: g.Source}
}
