package firewall

import (
	"context"
	"net/netip"
	"time"
)

// Backend makes the kernel agree with a desired State. Implementations
// must be safe for concurrent use and must never leave the host without a
// filtering chain while they work.
type Backend interface {
	// Apply brings the kernel to want with the smallest change: set
	// members are added and removed one by one and the chain is only
	// rebuilt when its rules differ. Applying the same state twice is a
	// no-op.
	Apply(ctx context.Context, want State) error
	// Rebuild replaces the chain and every set wholesale, atomically from
	// the point of view of a packet.
	Rebuild(ctx context.Context, want State) error
	// SyncMembers makes the membership of just the given prefixes match
	// want in every set, leaving the rest of the kernel alone. It is the
	// fast path for changes that cannot affect the rules: an entry or a
	// grant added or removed.
	SyncMembers(ctx context.Context, want State, prefixes []netip.Prefix) error
	// AddMember puts one member into code's set (replacing its timeout
	// if present). It is the fast path for a phone grant.
	AddMember(ctx context.Context, code int, m Member) error
	// DelMember takes p out of code's set; absent is not an error.
	DelMember(ctx context.Context, code int, p netip.Prefix) error
	// Status reads the kernel back.
	Status(ctx context.Context) (Status, error)
	// Verify compares the kernel with want without changing anything:
	// the chain's rules, the jump into it and what runs ahead of it, the
	// sets and their members (timeouts within VerifySlack), and leftovers
	// of an interrupted rebuild. It reads each family's table and the
	// sets once, so it is cheap enough to run every second. An empty
	// Drift means the kernel filters as want says; otherwise Apply
	// repairs what it lists.
	Verify(ctx context.Context, want State) (Drift, error)
	// Drops reads the drop accounting sets: who the chain's final drop
	// (or reject) hit in the last DropsTimeout, per source and service,
	// in no particular order and without Service filled in. It is empty,
	// not an error, when the sets do not exist.
	Drops(ctx context.Context) ([]Drop, error)
	// Remove takes every dialgate chain, jump and set out of the kernel.
	Remove(ctx context.Context) error
	Close() error
}

// Status is what the kernel holds, read back rather than remembered.
type Status struct {
	Families []FamilyStatus `json:"families"`
	Sets     []SetStatus    `json:"sets"`
	// Coexistence notes other firewalls found beside dialgate (the
	// FreePBX Firewall module, fail2ban, the other backend's firewall):
	// what they do to dialgate's filtering and what to do about it.
	Coexistence []string `json:"coexistence,omitempty"`
}

// Loaded reports whether every family has the chain in place and in
// force: the jump effectively first in INPUT (only rules that cannot
// admit a packet, such as fail2ban's, ahead of it). It is what `dialgate
// status` calls protected.
func (s Status) Loaded() bool {
	if len(s.Families) == 0 {
		return false
	}
	for _, f := range s.Families {
		if !f.ChainLoaded || !f.JumpFirst {
			return false
		}
	}
	return true
}

// FamilyStatus describes the chain of one address family. The nftables
// backend's chain serves both families, so both report it.
type FamilyStatus struct {
	Family      string `json:"family"`
	ChainLoaded bool   `json:"chain_loaded"`
	// JumpFirst reports the chain in force: for iptables, jumped to
	// from INPUT with nothing ahead of the jump that can accept a packet
	// (Ahead lists what is there); for nftables, hooked at input as
	// dialgate hooks it (priority filter - 10, policy accept).
	JumpFirst   bool   `json:"jump_first"`
	Rules       int    `json:"rules"`
	Fingerprint string `json:"fingerprint,omitempty"`
	// JumpPosition is the jump's rule number in INPUT (iptables), 1 when
	// it is literally first; 0 when there is no jump.
	JumpPosition int `json:"jump_position,omitempty"`
	// Ahead lists what filters before dialgate: the INPUT rules ahead of
	// the jump (iptables), or other tables' input chains at an earlier
	// priority (nftables), each judged harmless or not.
	Ahead []AheadRule `json:"ahead,omitempty"`
}

// AheadRule is one rule (or chain) that sees packets before dialgate.
type AheadRule struct {
	Rule string `json:"rule"`
	// Harmless means it cannot admit a packet dialgate would drop: it
	// only drops, rejects, returns or logs, or jumps to a chain that does
	// (fail2ban's f2b-* chains), or it admits only what dialgate admits
	// first anyway (loopback, established connections).
	Harmless bool   `json:"harmless"`
	Why      string `json:"why"`
}

// SetStatus is one kernel set and its members.
type SetStatus struct {
	Name    string     `json:"name"`
	Code    int        `json:"code"`
	Family  string     `json:"family"`
	Exists  bool       `json:"exists"`
	Entries []SetEntry `json:"entries,omitempty"`
}

// SetEntry is one member as the kernel reports it; Timeout is the time
// left, zero for permanent.
type SetEntry struct {
	Prefix  netip.Prefix  `json:"prefix"`
	Timeout time.Duration `json:"-"` // timeout_seconds (jsonwire.go)
}
