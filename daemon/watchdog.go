package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dialgate/dialgate/etcdstore"
	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/store"
)

// The watchdog keeps the kernel what the store says it should be while
// the daemon runs. Someone flushing the chain (iptables -F, a firewall
// service restarting), a rule put ahead of the jump that accepts, an
// ipset flush or a hand-added member: each leaves the server open, or a
// whitelisted caller shut out, for as long as nobody looks. The watchdog
// looks every second (WatchdogInterval), and at once when the kernel
// announces a change (nftables notifications, which carry iptables-nft's
// rule changes too; ipset and iptables-legacy announce nothing, so only
// the poll finds those). On drift it repairs at once (Apply, and Rebuild
// if that is not enough), logs at WARN what it found, writes a
// "firewall.repair" audit record and counts
// dialgate_firewall_repairs_total{kind}.
//
// Each check runs under d.mu, like every change, so it never sees a
// change half-made, and computes the desired state from the store as an
// Apply would.

// WatchdogInterval is how often the watchdog checks the kernel when it
// hears of no change.
const WatchdogInterval = time.Second

// Repairs of the same kinds within repairQuiet of the last one reported
// are repaired and counted but not logged or audited one by one: another
// firewall fighting dialgate (the FreePBX Firewall module re-inserting its
// rules) must not fill the log and the audit trail. The next report says
// how many were left out.
const repairQuiet = time.Minute

// eventGap is the least time between two checks that notifications
// trigger: a burst of changes (a firewall reloading) costs one check.
const eventGap = 50 * time.Millisecond

// desiredRefresh bounds how long the watchdog compares the kernel with a
// desired state it computed earlier rather than reading the store again
// (see wantState).
const desiredRefresh = time.Minute

type watchdog struct {
	d        *Daemon
	interval time.Duration

	repairs      *prometheus.CounterVec
	checks       prometheus.Counter
	inSync       prometheus.Gauge
	checkSeconds prometheus.Histogram

	// cache is the desired state last computed from the store; only the
	// checks use it, under d.mu.
	cache *desiredCache

	mu       sync.Mutex
	reported map[string]time.Time // kinds -> last report
	unsaid   map[string]int       // kinds -> repairs since, not reported
	// onRepair, when set (tests, benchmarks), is called after each
	// repair, with what was found.
	onRepair func(firewall.Drift)
}

func (d *Daemon) newWatchdog(interval time.Duration) *watchdog {
	w := &watchdog{d: d, interval: interval, reported: map[string]time.Time{}, unsaid: map[string]int{}}
	w.repairs = register(d, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dialgate_firewall_repairs_total",
		Help: "Kernel drift the watchdog found and repaired, by kind (chain, jump, set, members, leftover).",
	}, []string{"kind"}))
	w.checks = register(d, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dialgate_firewall_checks_total", Help: "Watchdog comparisons of the kernel with the store.",
	}))
	w.inSync = register(d, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "dialgate_firewall_in_sync",
		Help: "1 when the last watchdog check found the kernel as the store says or repaired it; 0 when the check or the repair failed (alert on it).",
	}))
	w.checkSeconds = register(d, prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "dialgate_firewall_check_duration_seconds", Help: "Time a watchdog check takes (store read and kernel read), repairs excluded.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}))
	return w
}

// register adds c to the daemon's registry, or returns the collector
// registered under its name already (a second watchdog of one daemon).
func register[C prometheus.Collector](d *Daemon, c C) C {
	if err := d.metrics.reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(C); ok {
				return old
			}
		}
		d.log.Error("watchdog metrics", "err", err)
	}
	return c
}

// run checks the kernel every interval, and when the backend announces
// a change, until ctx ends.
func (w *watchdog) run(ctx context.Context) {
	d := w.d
	var events <-chan firewall.KernelChange
	if wt, ok := d.fw.(firewall.Watcher); ok {
		ch, err := wt.Watch(ctx)
		if err != nil {
			d.log.Warn("watchdog: no kernel change notifications; checking every interval only", "interval", w.interval, "err", err)
		} else {
			events = ch
		}
	}
	w.noteCoexistence(ctx)
	d.log.Info("firewall watchdog running", "interval", w.interval, "notifications", events != nil)
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	var last, lastErrAt time.Time
	var lastErr string
	for {
		by := ""
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case ev, ok := <-events:
			if !ok {
				events = nil
				d.log.Warn("watchdog: kernel change notifications ended; checking every interval only", "interval", w.interval)
				continue
			}
			by = ev.By
			if wait := eventGap - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		last = time.Now()
		if _, err := w.check(ctx, by); err != nil && ctx.Err() == nil {
			// Once a minute for the same failure, not every second.
			if msg := err.Error(); msg != lastErr || time.Since(lastErrAt) >= repairQuiet {
				d.log.Error("watchdog: firewall check", "err", err)
				lastErr, lastErrAt = msg, time.Now()
			}
		}
	}
}

// noteCoexistence logs, once, what the kernel shows of other firewalls
// beside dialgate.
func (w *watchdog) noteCoexistence(ctx context.Context) {
	st, err := w.d.fw.Status(ctx)
	if err != nil {
		return
	}
	for _, n := range st.Coexistence {
		w.d.log.Warn("firewall coexistence: " + n)
	}
}

// desiredCache is a desired state as computed from the store at a given
// time, with the backend's change count then.
type desiredCache struct {
	st       firewall.State
	at, last time.Time // d.now() when computed, and at the last use
	computed time.Time // the real time it was computed
	changes  uint64
	cfg      *Config       // the configuration it was computed with
	timed    []timedMember // the members with a timeout, as computed
}

type timedMember struct {
	code int
	p    netip.Prefix
	left time.Duration
}

// wantState returns the desired state. Computing it reads every account,
// entry and grant (some 60 ms at 10 000 entries), so a check reuses the
// last one while the backend has made no change since (every change to
// what the kernel should hold is made through the backend, under d.mu,
// as the check is), with the grants' timeouts aged by the time passed.
// A stale state cannot cause a wrong repair: drift found against a
// reused state is checked again against a fresh one (fresh says so).
// The store is read again at least every desiredRefresh anyway.
func (w *watchdog) wantState() (st firewall.State, fresh bool, err error) {
	d := w.d
	now := d.now()
	cc, counts := d.fw.(firewall.ChangeCounter)
	if c := w.cache; c != nil && counts && cc.Changes() == c.changes && d.cfg.Load() == c.cfg &&
		!now.Before(c.last) && time.Since(c.computed) < desiredRefresh {
		elapsed := now.Sub(c.at)
		for _, m := range c.timed {
			if left := m.left - elapsed; left > 0 {
				c.st.Sets[m.code][m.p] = left
			} else {
				delete(c.st.Sets[m.code], m.p)
			}
		}
		c.last = now
		return c.st, false, nil
	}
	w.cache = nil
	cfg := d.cfg.Load()
	err = d.db.View(func(tx store.Tx) (err error) {
		st, err = desiredState(tx, cfg.FirewallRules(), now)
		return err
	})
	if err != nil || !counts {
		return st, true, err
	}
	// A copy to age in place: st itself goes to the caller.
	c := &desiredCache{st: firewall.State{Config: st.Config, Sets: map[int]map[netip.Prefix]time.Duration{}},
		at: now, last: now, computed: time.Now(), changes: cc.Changes(), cfg: cfg}
	for code, set := range st.Sets {
		cp := make(map[netip.Prefix]time.Duration, len(set))
		for p, t := range set {
			cp[p] = t
			if t > 0 {
				c.timed = append(c.timed, timedMember{code, p, t})
			}
		}
		c.st.Sets[code] = cp
	}
	w.cache = c
	return st, true, nil
}

// check compares the kernel with the store and repairs any drift. by
// names who changed the kernel, when a notification said. It returns
// what it found.
func (w *watchdog) check(ctx context.Context, by string) (firewall.Drift, error) {
	d := w.d
	d.mu.Lock()
	defer d.mu.Unlock()
	start := time.Now()
	want, fresh, err := w.wantState()
	if err != nil {
		return firewall.Drift{}, err
	}
	drift, err := d.fw.Verify(ctx, want)
	if err == nil && !drift.OK() && !fresh {
		w.cache = nil
		if want, _, err = w.wantState(); err == nil {
			drift, err = d.fw.Verify(ctx, want)
		}
	}
	w.checks.Inc()
	w.checkSeconds.Observe(time.Since(start).Seconds())
	if err != nil || drift.OK() {
		w.inSync.Set(boolGauge(err == nil))
		return drift, err
	}
	repairStart := time.Now()
	rerr := w.repair(ctx, want)
	w.inSync.Set(boolGauge(rerr == nil))
	w.cache = nil // the repair changed the kernel; read the store again next time
	for _, k := range drift.Kinds() {
		w.repairs.WithLabelValues(string(k)).Inc()
	}
	w.report(drift, by, rerr, time.Since(repairStart))
	if w.onRepair != nil {
		w.onRepair(drift)
	}
	return drift, nil
}

// repair applies want; if the kernel still differs (something Apply
// leaves alone), everything is rebuilt.
func (w *watchdog) repair(ctx context.Context, want firewall.State) error {
	d := w.d
	if err := d.fw.Apply(ctx, want); err != nil {
		return err
	}
	after, err := d.fw.Verify(ctx, want)
	if err != nil || after.OK() {
		return err
	}
	if err := d.fw.Rebuild(ctx, want); err != nil {
		return err
	}
	if after, err = d.fw.Verify(ctx, want); err == nil && !after.OK() {
		err = fmt.Errorf("still not as the store says after a rebuild: %s", after)
	}
	return err
}

// maxDetail bounds an audit record's detail: a flushed set of 10 000
// members is described by counts and samples, but many findings add up.
const maxDetail = 2000

// report logs and audits a repair, unless one of the same kinds was
// reported less than repairQuiet ago.
func (w *watchdog) report(drift firewall.Drift, by string, rerr error, took time.Duration) {
	d := w.d
	var ks []string
	for _, k := range drift.Kinds() {
		ks = append(ks, string(k))
	}
	key := strings.Join(ks, ",")
	mkey := key
	if rerr != nil {
		mkey = "failed " + key
	}
	w.mu.Lock()
	now := time.Now()
	if last, ok := w.reported[mkey]; ok && now.Sub(last) < repairQuiet {
		w.unsaid[mkey]++
		w.mu.Unlock()
		return
	}
	unsaid := w.unsaid[mkey]
	w.reported[mkey], w.unsaid[mkey] = now, 0
	w.mu.Unlock()

	detail := drift.String()
	if len(detail) > maxDetail {
		detail = detail[:maxDetail] + "..."
	}
	if by != "" {
		detail += " (changed by " + by + ")"
	}
	if unsaid > 0 {
		detail += fmt.Sprintf(" (and %d such repairs in the last %v not recorded one by one: something keeps changing the firewall)", unsaid, repairQuiet)
	}
	rec := store.AuditRecord{Action: "firewall.repair", Actor: "watchdog", Subject: key, Result: "ok", Detail: detail}
	if rerr != nil {
		rec.Result, rec.Detail = "error", detail+": repair failed: "+rerr.Error()
		d.log.Error("firewall tampered with, and the repair failed: the kernel does not filter as dialgate says",
			"found", drift.String(), "kinds", key, "by", by, "err", rerr)
	} else {
		d.log.Warn("firewall tampered with: repaired", "found", drift.String(), "kinds", key, "by", by,
			"repair", took.Round(time.Microsecond), "unreported_repairs", unsaid)
	}
	d.audit(rec)
}

// purgeGrants deletes the expired grants from the store (purgeExpired)
// and takes their addresses out of the kernel. The kernel drops a grant
// by its own timeout, normally at the same moment; but after the wall
// clock jumps forward the store expires a grant the kernel still holds,
// and once the record is gone `grants revoke` cannot find it. An address
// that another entry or grant still admits keeps its membership: the
// sync computes it from the store as it is after the purge.
func (d *Daemon) purgeGrants(ctx context.Context) error {
	var expired []netip.Prefix
	err := d.db.View(func(tx store.Tx) error {
		gs, err := tx.Grants()
		now := d.now()
		for _, g := range gs {
			if g.Expires.After(now) {
				continue
			}
			if p, err := parsePrefix(g.IP); err == nil {
				expired = append(expired, p)
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	if err := d.purgeExpired(); err != nil {
		if errors.Is(err, etcdstore.ErrUnreachable) {
			// The kernel's timeouts end the grants meanwhile; status and
			// the metrics already say the store is away.
			return nil
		}
		return err
	}
	if len(expired) == 0 {
		return nil
	}
	return d.change(ctx, Guard{}, func(store.Tx) ([]netip.Prefix, error) { return expired, nil })
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
