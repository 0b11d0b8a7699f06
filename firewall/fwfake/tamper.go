package fwfake

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/dialgate/dialgate/firewall"
)

// This file simulates what someone else does to the kernel behind
// dialgate's back, and Verify, which finds it.

// tamperState is what was done by hand since the last Apply.
type tamperState struct {
	flushed bool        // the chain was emptied
	ahead   []aheadRule // rules put ahead of dialgate's jump, first first
	temp    bool        // a temporary set left by an interrupted rebuild
	quiet   bool        // tampering sends no notification
}

type aheadRule struct {
	rule     string
	harmless bool
}

// inForce reports whether nothing that can accept runs ahead of the
// chain.
func (t *tamperState) inForce() bool {
	return !slices.ContainsFunc(t.ahead, func(a aheadRule) bool { return !a.harmless })
}

// filtering reports whether the chain still filters at all.
func (t *tamperState) filtering() bool { return !t.flushed && t.inForce() }

func (t *tamperState) aheadRules() []firewall.AheadRule {
	var out []firewall.AheadRule
	for _, a := range t.ahead {
		why := "can accept before dialgate"
		if a.harmless {
			why = "can only drop, reject or return"
		}
		out = append(out, firewall.AheadRule{Rule: a.rule, Harmless: a.harmless, Why: why})
	}
	return out
}

// repair is what an Apply does about it: the chain is rebuilt, the jump
// moved in front of whatever can accept (harmless rules stay ahead),
// leftovers removed.
func (t *tamperState) repair() {
	t.flushed, t.temp = false, false
	t.ahead = slices.DeleteFunc(t.ahead, func(a aheadRule) bool { return !a.harmless })
}

// FlushChain empties the chain, as `iptables -F DIALGATE` does: nothing
// is filtered (Admits is true for everyone) until the next Apply.
func (b *Backend) FlushChain() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tamper.flushed = true
	b.notify("iptables[1]")
}

// InsertAhead puts a rule ahead of dialgate's jump, as `iptables -I INPUT
// 1` does. A harmless one (a fail2ban chain that only rejects and
// returns) changes nothing; one that can accept lets everyone in until an
// Apply moves the jump back in front of it.
func (b *Backend) InsertAhead(rule string, harmless bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tamper.ahead = append([]aheadRule{{rule, harmless}}, b.tamper.ahead...)
	b.notify("iptables[1]")
}

// FlushSet empties code's set in both families, as `ipset flush` does.
func (b *Backend) FlushSet(code int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if code >= 0 && code < firewall.NumCodes {
		b.sets[code] = map[netip.Prefix]time.Time{}
	}
	b.notify("ipset[1]")
}

// PutMember writes m into code's set by hand, as `ipset add` does.
func (b *Backend) PutMember(code int, m firewall.Member) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if code < 0 || code >= firewall.NumCodes {
		return
	}
	now := b.now()
	b.expire(now)
	b.sets[code][normalize(m.Prefix)] = expiry(now, m.Timeout)
	b.notify("ipset[1]")
}

// LeaveTemp leaves a temporary set behind, as a rebuild killed half-way
// does; the next Apply removes it.
func (b *Backend) LeaveTemp() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tamper.temp = true
}

// Leftover reports whether a temporary set is left.
func (b *Backend) Leftover() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tamper.temp
}

// QuietTamper makes tampering send no notification to watchers (as
// ipset and iptables-legacy send none), or, with false, send one again.
func (b *Backend) QuietTamper(quiet bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tamper.quiet = quiet
}

// notify tells the watchers that someone changed the kernel.
func (b *Backend) notify(by string) {
	if b.tamper.quiet {
		return
	}
	for _, w := range b.watchers {
		select {
		case w <- firewall.KernelChange{By: by}:
		default:
		}
	}
}

// Watch implements firewall.Watcher: the channel hears of every
// tampering method's change (unless QuietTamper), never of the Backend
// methods' own.
func (b *Backend) Watch(ctx context.Context) (<-chan firewall.KernelChange, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	ch := make(chan firewall.KernelChange, 1)
	b.watchers = append(b.watchers, ch)
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		defer b.mu.Unlock()
		b.watchers = slices.DeleteFunc(b.watchers, func(c chan firewall.KernelChange) bool { return c == ch })
		close(ch)
	}()
	return ch, nil
}

var _ firewall.Watcher = (*Backend)(nil)

// Verify implements firewall.Backend: the loaded Config against want's,
// the tampering since the last Apply, and every set's members against
// want's (time left within firewall.VerifySlack).
func (b *Backend) Verify(ctx context.Context, want firewall.State) (firewall.Drift, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var d firewall.Drift
	if err := b.begin(ctx, MethodVerify); err != nil {
		return d, err
	}
	if err := want.Config.Validate(); err != nil {
		return d, fmt.Errorf("firewall: %w", err)
	}
	add := func(kind firewall.DriftKind, format string, args ...any) {
		d.Findings = append(d.Findings, firewall.Finding{Kind: kind, What: fmt.Sprintf(format, args...)})
	}
	if !b.loaded {
		add(firewall.DriftChain, "chain %s is missing", firewall.Chain)
		return d, nil
	}
	switch {
	case b.tamper.flushed:
		add(firewall.DriftChain, "chain %s has 0 rules", firewall.Chain)
	case configPrint(b.cfg) != configPrint(want.Config):
		add(firewall.DriftChain, "chain %s holds other rules than the configuration's", firewall.Chain)
	}
	for i, a := range b.tamper.ahead {
		if !a.harmless {
			add(firewall.DriftJump, "INPUT rule %d, ahead of dialgate's jump, can accept before dialgate: %s", i+1, a.rule)
		}
	}
	if b.tamper.temp {
		add(firewall.DriftLeftover, "temporary set left by an interrupted rebuild")
	}
	now := b.now()
	b.expire(now)
	for code := range firewall.NumCodes {
		for _, f := range families {
			wantM := map[netip.Prefix]time.Duration{}
			for p, t := range mergeSet(want.Sets[code]) {
				if familyOf(p) == f {
					wantM[p] = t
				}
			}
			have := map[netip.Prefix]time.Duration{}
			for _, m := range b.members(code, now) {
				if familyOf(m.Prefix) == f {
					have[m.Prefix] = m.Timeout
				}
			}
			if diff := firewall.MemberDiff(wantM, nil, have); diff != "" {
				add(firewall.DriftMembers, "set %s: %s", firewall.SetName(code, f), diff)
			}
		}
	}
	return d, nil
}
