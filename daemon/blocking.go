package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dialgate/dialgate/ami"
	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// BlockingConfig is the [blocking] table: failed-authentication blocking.
type BlockingConfig struct {
	After    int      `toml:"after"`     // failures within Window that block; 0 is off
	Window   Duration `toml:"window"`    // how far back failures count
	BlockFor Duration `toml:"block_for"` // how long a block lasts (kernel timeout)
}

// On reports whether blocking is on: it needs the AMI to hear failures.
func (b BlockingConfig) On(a AMIConfig) bool { return b.After > 0 && a.Enabled }

func (b BlockingConfig) validate() error {
	switch {
	case b.After < 0 || b.After > 1000:
		return fmt.Errorf("blocking.after = %d: want 0 (off) to 1000", b.After)
	case b.After > 0 && (b.Window.Duration < time.Second || b.Window.Duration > 24*time.Hour):
		return fmt.Errorf("blocking.window = %v: want 1s to 24h", b.Window.Duration)
	case b.After > 0 && (b.BlockFor.Duration < time.Second || b.BlockFor.Duration > firewall.BlockMaxTimeout):
		return fmt.Errorf("blocking.block_for = %v: want 1s to %v", b.BlockFor.Duration, firewall.BlockMaxTimeout)
	}
	return nil
}

// maxTracked bounds the sources whose failures the guard remembers: a
// scan from invented addresses must not grow the daemon without limit.
// Past it the oldest are forgotten first.
const maxTracked = 100_000

// blockGuard turns Asterisk's failed-authentication events into kernel
// blocks. It counts failures per source in memory (bounded), never
// blocks a source that an entry, grant or LAN range admits, and
// releases a blocked source as soon as one does.
type blockGuard struct {
	d *Daemon

	mu      sync.Mutex
	fails   map[netip.Addr][]time.Time // failure times within the window, oldest first
	order   []netip.Addr               // insertion order, for eviction
	blocked map[netip.Addr]time.Time   // what the daemon blocked, until
	pending map[netip.Addr]bool        // being blocked now: parallel events block once

	failures *prometheus.CounterVec
	blocks   prometheus.Counter
	spared   prometheus.Counter
}

func (d *Daemon) newBlockGuard() *blockGuard {
	g := &blockGuard{d: d, fails: map[netip.Addr][]time.Time{}, blocked: map[netip.Addr]time.Time{}, pending: map[netip.Addr]bool{}}
	g.failures = register(d, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dialgate_auth_failures_total", Help: "Failed authentications Asterisk reported, by service (SIP, PJSIP, IAX2, AMI).",
	}, []string{"service"}))
	g.blocks = register(d, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dialgate_blocks_total", Help: "Sources blocked for repeated failed authentication.",
	}))
	g.spared = register(d, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dialgate_auth_failures_whitelisted_total", Help: "Failed authentications from whitelisted sources, which are never blocked.",
	}))
	register(d, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "dialgate_blocked_sources", Help: "Sources blocked now.",
	}, func() float64 { return float64(len(g.list(time.Now()))) }))
	return g
}

// load takes the blocks the kernel still holds (from before a restart).
func (g *blockGuard) load(ctx context.Context) {
	b, ok := g.d.fw.(firewall.Blocker)
	if !ok {
		return
	}
	bs, err := b.Blocked(ctx)
	if err != nil {
		return
	}
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, x := range bs {
		g.blocked[x.Addr] = now.Add(x.Left)
	}
}

// onEvent counts a failed authentication and blocks its source at the
// threshold.
func (g *blockGuard) onEvent(ctx context.Context, ev ami.SecurityEvent) {
	if !ev.Failed() {
		return
	}
	cfg := g.d.config()
	if !cfg.Blocking.On(cfg.AMI) {
		return
	}
	g.failures.WithLabelValues(ev.Service).Inc()
	a := ev.Remote.Addr().Unmap()
	if a.IsLoopback() || a.IsUnspecified() {
		return // Asterisk itself, or a local client: never blocked
	}
	now := time.Now()
	g.mu.Lock()
	if until, ok := g.blocked[a]; ok && now.Before(until) {
		g.mu.Unlock()
		return
	}
	ts := g.fails[a]
	if ts == nil {
		if len(g.order) >= maxTracked {
			g.evict(len(g.order) / 10)
		}
		g.order = append(g.order, a)
	}
	cut := now.Add(-cfg.Blocking.Window.Duration)
	ts = slices.DeleteFunc(append(ts, now), func(t time.Time) bool { return t.Before(cut) })
	g.fails[a] = ts
	n := len(ts)
	if n < cfg.Blocking.After || g.pending[a] {
		g.mu.Unlock()
		return
	}
	g.pending[a] = true
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.pending, a)
		g.mu.Unlock()
	}()
	if why, ok := g.d.whitelisted(a); ok {
		g.spared.Inc()
		g.d.log.Debug("failed authentications from a whitelisted source: not blocked", "addr", a, "by", why, "service", ev.Service)
		return
	}
	detail := fmt.Sprintf("%d failed authentications within %v (last: %s %s account %q from %s)",
		n, cfg.Blocking.Window.Duration, ev.Service, ev.Kind, truncate(ev.AccountID, 64), ev.Remote)
	if err := g.block(ctx, a, cfg.Blocking.BlockFor.Duration, "sipguard", detail); err != nil {
		g.d.log.Error("block", "addr", a, "err", err)
	}
}

// evict forgets the n sources tracked longest; the caller holds g.mu.
func (g *blockGuard) evict(n int) {
	for _, a := range g.order[:n] {
		delete(g.fails, a)
	}
	g.order = slices.Delete(g.order, 0, n)
}

// block puts a in the kernel block set for d, audited.
func (g *blockGuard) block(ctx context.Context, a netip.Addr, d time.Duration, actor, detail string) error {
	b, ok := g.d.fw.(firewall.Blocker)
	rec := store.AuditRecord{Action: "block", Actor: actor, Subject: a.String(), Detail: detail}
	if !ok {
		rec.Result = "error"
		g.d.audit(rec)
		return fmt.Errorf("the %T firewall backend cannot block", g.d.fw)
	}
	if err := b.Block(ctx, a, d); err != nil {
		rec.Result, rec.Detail = "error", detail+": "+err.Error()
		g.d.audit(rec)
		return err
	}
	g.mu.Lock()
	g.blocked[a] = time.Now().Add(d)
	delete(g.fails, a)
	g.mu.Unlock()
	g.blocks.Inc()
	rec.Result = "ok"
	g.d.audit(rec)
	g.d.log.Warn("source blocked", "addr", a, "for", d, "why", detail)
	return nil
}

// unblock takes a out of the block set, audited with why.
func (g *blockGuard) unblock(ctx context.Context, a netip.Addr, actor, why string) error {
	b, ok := g.d.fw.(firewall.Blocker)
	if !ok {
		return fmt.Errorf("the %T firewall backend cannot block", g.d.fw)
	}
	if err := b.Unblock(ctx, a); err != nil {
		return err
	}
	g.mu.Lock()
	delete(g.blocked, a)
	delete(g.fails, a)
	g.mu.Unlock()
	g.d.audit(store.AuditRecord{Action: "unblock", Actor: actor, Subject: a.String(), Result: "ok", Detail: why})
	g.d.log.Info("source unblocked", "addr", a, "why", why)
	return nil
}

// release unblocks every blocked source inside one of prefixes that the
// whitelist now admits: an entry or a grant wins over a block.
func (g *blockGuard) release(ctx context.Context, prefixes []netip.Prefix) {
	if len(prefixes) == 0 {
		return
	}
	touched := make(map[netip.Prefix]bool, len(prefixes))
	for _, p := range prefixes {
		touched[p.Masked()] = true
	}
	now := time.Now()
	var hit []netip.Addr
	g.mu.Lock()
	for a, until := range g.blocked {
		if !now.Before(until) {
			delete(g.blocked, a)
			continue
		}
		for _, p := range containing(a) {
			if touched[p] {
				hit = append(hit, a)
				break
			}
		}
	}
	g.mu.Unlock()
	for _, a := range hit {
		if why, ok := g.d.whitelisted(a); ok {
			if err := g.unblock(ctx, a, "whitelist", "now admitted by "+why); err != nil {
				g.d.log.Error("unblock a newly whitelisted source", "addr", a, "err", err)
			}
		}
	}
}

// list returns the blocked sources, soonest released last.
func (g *blockGuard) list(now time.Time) []firewall.Blocked {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []firewall.Blocked
	for a, until := range g.blocked {
		if now.Before(until) {
			out = append(out, firewall.Blocked{Addr: a, Left: until.Sub(now).Round(time.Second)})
		}
	}
	slices.SortFunc(out, func(x, y firewall.Blocked) int { return x.Addr.Compare(y.Addr) })
	return out
}

// whitelisted reports whether anything admits a: an entry, a grant (any
// service), a LAN range, loopback. Its reason names what.
func (d *Daemon) whitelisted(a netip.Addr) (string, bool) {
	cfg := d.config().FirewallRules()
	if a.IsLoopback() {
		return "loopback", true
	}
	for _, p := range cfg.LAN {
		if p.Contains(a) {
			return "LAN range " + p.String(), true
		}
	}
	var st firewall.State
	err := d.db.View(func(tx store.Tx) (err error) {
		st, err = desiredFor(tx, cfg, d.now(), containing(a))
		return err
	})
	if err != nil {
		return "an unreadable database (not blocking, to be safe)", true
	}
	for code, set := range st.Sets {
		for p := range set {
			if p.Contains(a) {
				return fmt.Sprintf("%s in the %s set", p, firewall.CodeName(code)), true
			}
		}
	}
	return "", false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

// Blocks lists the blocked sources as the kernel holds them (a restart
// or a clock jump cannot make the daemon's own record disagree).
func (d *Daemon) Blocks(ctx context.Context) ([]localapi.BlockInfo, error) {
	out := []localapi.BlockInfo{}
	b, ok := d.fw.(firewall.Blocker)
	if !ok {
		return out, nil
	}
	bs, err := b.Blocked(ctx)
	if err != nil {
		return nil, err
	}
	for _, x := range bs {
		out = append(out, localapi.BlockInfo{Addr: x.Addr.String(), LeftSeconds: int64((x.Left + time.Second - 1) / time.Second)})
	}
	return out, nil
}

// ClearBlocks unblocks addr, or every blocked source with all, and
// returns what it unblocked. An address that is not blocked is
// ErrNotFound: the admin typed something that did nothing.
func (d *Daemon) ClearBlocks(ctx context.Context, addr string, all bool) ([]localapi.BlockInfo, error) {
	bs, err := d.Blocks(ctx)
	if err != nil {
		return nil, err
	}
	var want netip.Addr
	if !all {
		if want, err = netip.ParseAddr(addr); err != nil {
			return nil, fmt.Errorf("%w: %q is not an IP address", auth.ErrInvalid, addr)
		}
		want = want.Unmap()
	}
	out := []localapi.BlockInfo{}
	for _, x := range bs {
		a := netip.MustParseAddr(x.Addr)
		if !all && a != want {
			continue
		}
		if err := d.guard.unblock(ctx, a, "cli", "dialgate blocks clear"); err != nil {
			return out, err
		}
		out = append(out, x)
	}
	if !all && len(out) == 0 {
		return nil, fmt.Errorf("%s is not blocked: %w", want, store.ErrNotFound)
	}
	return out, nil
}
