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
	// Remove takes every dialgate chain, jump and set out of the kernel.
	Remove(ctx context.Context) error
	Close() error
}

// Status is what the kernel holds, read back rather than remembered.
type Status struct {
	Families []FamilyStatus `json:"families"`
	Sets     []SetStatus    `json:"sets"`
}

// Loaded reports whether every family has the chain in place with the
// jump first in INPUT.
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
	// first from INPUT; for nftables, hooked at input as dialgate hooks
	// it (priority filter - 10, policy accept).
	JumpFirst   bool   `json:"jump_first"`
	Rules       int    `json:"rules"`
	Fingerprint string `json:"fingerprint,omitempty"`
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
	Timeout time.Duration `json:"timeout"`
}
