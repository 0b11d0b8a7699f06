package firewall

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// This file holds what both backends' Verify share: the Drift they
// return and the comparison of a set's members with what they should be.

// DriftKind sorts a finding by what it takes to repair, and labels the
// repairs metric.
type DriftKind string

const (
	// DriftChain: the chain is missing, or its rules are not the ones
	// the configuration makes (flushed, edited in place, added to).
	DriftChain DriftKind = "chain"
	// DriftJump: the chain is not in force: no jump to it, a jump
	// behind a rule that can accept first, duplicate jumps (iptables),
	// or the base chain hooked other than dialgate hooks it (nftables).
	DriftJump DriftKind = "jump"
	// DriftSet: a set is missing or of the wrong kind, or a foreign one
	// sits in dialgate's table.
	DriftSet DriftKind = "set"
	// DriftMembers: members missing, extra, or with the wrong timeout.
	DriftMembers DriftKind = "members"
	// DriftLeftover: a temporary set or chain an interrupted rebuild
	// left behind.
	DriftLeftover DriftKind = "leftover"
)

// Finding is one difference between the kernel and the desired state,
// in words.
type Finding struct {
	Kind DriftKind `json:"kind"`
	// Family is "v4" or "v6" when the finding concerns one family only.
	Family string `json:"family,omitempty"`
	What   string `json:"what"`
}

func (f Finding) String() string {
	if f.Family != "" {
		return f.Family + ": " + f.What
	}
	return f.What
}

// Drift is what Verify found. The zero Drift means none.
type Drift struct {
	Findings []Finding `json:"findings,omitempty"`
}

// OK reports that the kernel matches the desired state.
func (d Drift) OK() bool { return len(d.Findings) == 0 }

// Kinds returns the kinds of the findings, each once, in a fixed order.
func (d Drift) Kinds() []DriftKind {
	var out []DriftKind
	for _, k := range []DriftKind{DriftChain, DriftJump, DriftSet, DriftMembers, DriftLeftover} {
		if slices.ContainsFunc(d.Findings, func(f Finding) bool { return f.Kind == k }) {
			out = append(out, k)
		}
	}
	return out
}

// String lists the findings, separated by semicolons.
func (d Drift) String() string {
	parts := make([]string, len(d.Findings))
	for i, f := range d.Findings {
		parts[i] = f.String()
	}
	return strings.Join(parts, "; ")
}

func (d *Drift) add(kind DriftKind, fam Family, format string, args ...any) {
	f := Finding{Kind: kind, What: fmt.Sprintf(format, args...)}
	if fam != 0 {
		f.Family = fam.String()
	}
	d.Findings = append(d.Findings, f)
}

// VerifySlack is how far Verify lets a member's time left differ from
// the desired timeout, and how close to expiry a member may be missing
// (or linger) without counting as drift: the kernel keeps whole seconds,
// rounds a grant's timeout up, and expires it on its own clock.
const VerifySlack = 3 * time.Second

// Watcher is implemented by backends that hear of kernel changes as they
// happen (nftables' netlink notifications, which also carry the rule
// changes of iptables-nft), so a watchdog can check at once rather than
// at its next tick. Changes to ipsets and to iptables-legacy rules send
// no notification: only polling finds those.
type Watcher interface {
	// Watch returns a channel that receives a KernelChange, coalesced,
	// after each kernel transaction that touched what the backend
	// manages and that the backend did not make itself (a backend may
	// still report some of its own). The channel is closed when ctx ends
	// or the notifications fail for good.
	Watch(ctx context.Context) (<-chan KernelChange, error)
}

// ChangeCounter is implemented by backends that count their own changes
// to the kernel. A caller that remembers what it last wanted (a watchdog
// caching the desired state) knows from an unchanged count that nothing
// it did since can have changed what the kernel should hold.
type ChangeCounter interface {
	// Changes counts the calls that may have changed the kernel (Apply,
	// Rebuild, SyncMembers, AddMember, DelMember, Remove), failed ones
	// included, since the backend was made.
	Changes() uint64
}

var (
	_ ChangeCounter = (*IPTables)(nil)
	_ ChangeCounter = (*NFTables)(nil)
)

// KernelChange is one notification: who made the change, as the kernel
// names the process ("nft[4242]"), when it says.
type KernelChange struct {
	By string
}

// MemberDiff compares the members of one set with the ones it should
// hold: those of want for which keep is true (nil: all), both as prefix
// -> time left (zero: permanent). It describes the differences: members
// missing, members extra, timeouts off by more than VerifySlack. Members
// about to expire may be missing, and the kernel may hold a member a
// little past its expiry: neither counts. Nothing is sorted or copied
// unless something differs: at 10 000 members this runs every second.
func MemberDiff(want map[netip.Prefix]time.Duration, keep func(netip.Prefix) bool, have map[netip.Prefix]time.Duration) string {
	var missing, extra, timeout []string
	for p, t := range want {
		if keep != nil && !keep(p) {
			continue
		}
		h, ok := have[p]
		switch {
		case !ok:
			if t > 0 && t <= VerifySlack {
				continue
			}
			missing = append(missing, p.String())
		case (h == 0) != (t == 0):
			timeout = append(timeout, fmt.Sprintf("%s (%s left, want %s)", p, lifeString(h), lifeString(t)))
		case t != 0 && (h-capTimeout(t) > VerifySlack || capTimeout(t)-h > VerifySlack):
			timeout = append(timeout, fmt.Sprintf("%s (%s left, want %s)", p, lifeString(h), lifeString(t)))
		}
	}
	for p, h := range have {
		if _, ok := want[p]; (ok && (keep == nil || keep(p))) || (h > 0 && h <= VerifySlack) {
			continue
		}
		extra = append(extra, p.String())
	}
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, fmt.Sprintf("%d missing (%s)", len(missing), sample(missing)))
	}
	if len(extra) > 0 {
		parts = append(parts, fmt.Sprintf("%d not in the database (%s)", len(extra), sample(extra)))
	}
	if len(timeout) > 0 {
		parts = append(parts, fmt.Sprintf("%d with the wrong timeout (%s)", len(timeout), sample(timeout)))
	}
	return strings.Join(parts, ", ")
}

// capTimeout is the timeout the kernel is given for d: whole seconds,
// at most ipset's limit (both backends cap alike).
func capTimeout(d time.Duration) time.Duration { return elementTimeout(d) }

func lifeString(d time.Duration) string {
	if d == 0 {
		return "permanent"
	}
	return d.Round(time.Second).String()
}

// sample lists a few items, sorted, and how many more there are.
func sample(items []string) string {
	slices.Sort(items)
	const n = 5
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(" and %d more", len(items)-n)
}

// memberMap turns members into prefix -> timeout.
func memberMap(ms []Member) map[netip.Prefix]time.Duration {
	out := make(map[netip.Prefix]time.Duration, len(ms))
	for _, m := range ms {
		out[m.Prefix] = m.Timeout
	}
	return out
}
