package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// Blocking: sources that failed SIP authentication again and again (the
// daemon counts Asterisk's security events) are put in a kernel block
// set with a timeout, and a rule ahead of everything but loopback drops
// them for every service, replies to their earlier packets included, so
// a scanner's UDP "connection" that Asterisk answered with a challenge
// does not keep passing as established. The rule is there when
// Config.Block is set; the set's members come and go with the daemon's
// decisions and their timeouts, never with Apply, and Verify reports a
// missing block set, never its members. Whitelisted sources are never
// put in it: the daemon checks before it blocks and unblocks a source
// as soon as an entry or a grant admits it.
//
// Names: ipset dialgate-block-v4 / -v6 (hash:ip, timeout, BlockMaxElem);
// nftables sets block-v4 / block-v6 of table inet dialgate.
const (
	BlockMaxElem = 1 << 16
	// BlockMaxTimeout bounds one block.
	BlockMaxTimeout = 7 * 24 * time.Hour
)

// BlockSetName is the ipset of blocked sources of family f.
func BlockSetName(f Family) string { return "dialgate-block-" + f.String() }

// Blocked is a blocked source and its time left.
type Blocked struct {
	Addr netip.Addr    `json:"addr"`
	Left time.Duration `json:"left"`
}

// Blocker is a Backend that can block sources. Block replaces an existing
// block's timeout (d at most BlockMaxTimeout); Unblock of a source not
// blocked is not an error; Blocked lists the sources blocked now.
type Blocker interface {
	Block(ctx context.Context, addr netip.Addr, d time.Duration) error
	Unblock(ctx context.Context, addr netip.Addr) error
	Blocked(ctx context.Context) ([]Blocked, error)
}

// blockTarget checks a source to block or unblock and returns it as a
// host prefix, IPv4-mapped addresses unmapped.
func blockTarget(addr netip.Addr) (netip.Prefix, error) {
	if !addr.IsValid() {
		return netip.Prefix{}, errors.New("firewall: block: no address")
	}
	addr = addr.Unmap()
	return netip.PrefixFrom(addr, addr.BitLen()), nil
}

// blockLife bounds a block's duration; ok is false for one that is over
// already (d <= 0), which Block turns into an Unblock.
func blockLife(d time.Duration) (life time.Duration, ok bool) {
	if d <= 0 {
		return 0, false
	}
	return min(d, BlockMaxTimeout), true
}

func sortBlocked(bs []Blocked) {
	slices.SortFunc(bs, func(x, y Blocked) int { return x.Addr.Compare(y.Addr) })
}

var (
	_ Blocker = (*IPTables)(nil)
	_ Blocker = (*NFTables)(nil)
)

// Block implements Blocker: one netlink message, an add without
// NLM_F_EXCL, which replaces a member's timeout. The set is missing
// (an error) until Apply has made it.
func (b *IPTables) Block(ctx context.Context, addr netip.Addr, d time.Duration) error {
	p, err := blockTarget(addr)
	if err != nil {
		return err
	}
	life, ok := blockLife(d)
	if !ok {
		return b.Unblock(ctx, addr)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errIPTClosed
	}
	name := BlockSetName(familyOf(p))
	if err := b.batch.add(name, []Member{{Prefix: p, Timeout: life}}); err != nil {
		if isNotExist(err) {
			return fmt.Errorf("firewall: block %s: set %s %w", p.Addr(), name, errNoTable)
		}
		return fmt.Errorf("firewall: block: %w", err)
	}
	return nil
}

// Unblock implements Blocker; a source not blocked, or no block set, is
// no error.
func (b *IPTables) Unblock(ctx context.Context, addr netip.Addr) error {
	p, err := blockTarget(addr)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errIPTClosed
	}
	if err := b.batch.del(BlockSetName(familyOf(p)), []Member{{Prefix: p}}); err != nil && !isNotExist(err) {
		return fmt.Errorf("firewall: unblock: %w", err)
	}
	return nil
}

// Blocked implements Blocker: one listing of each block set, sorted by
// address. A member with no timeout (added by hand) has Left 0.
func (b *IPTables) Blocked(ctx context.Context) ([]Blocked, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errIPTClosed
	}
	var out []Blocked
	for _, f := range families {
		err := b.batch.list(BlockSetName(f), func(m []byte) {
			parseDropEntries(m, func(e dropEntry) { out = append(out, Blocked{Addr: e.addr, Left: e.left}) })
		})
		if err != nil && !isNotExist(err) {
			return nil, fmt.Errorf("firewall: list set %s: %w", BlockSetName(f), err)
		}
	}
	sortBlocked(out)
	return out, ctx.Err()
}

// Block implements Blocker: the element is added, deleted and added
// again with its timeout in one transaction (see ensureHosts), which
// replaces an existing block's timeout on every kernel.
func (b *NFTables) Block(ctx context.Context, addr netip.Addr, d time.Duration) error {
	p, err := blockTarget(addr)
	if err != nil {
		return err
	}
	life, ok := blockLife(d)
	if !ok {
		return b.Unblock(ctx, addr)
	}
	return b.changeBlock(ctx, p, []Member{{Prefix: p, Timeout: life}})
}

// Unblock implements Blocker; a source not blocked, or no block set, is
// no error.
func (b *NFTables) Unblock(ctx context.Context, addr netip.Addr) error {
	p, err := blockTarget(addr)
	if err != nil {
		return err
	}
	err = b.changeBlock(ctx, p, nil)
	if errors.Is(err, unix.ENOENT) {
		return nil // no set, so p is not in it
	}
	return err
}

// changeBlock makes the block set of p's family hold p with want's
// timeout, or not at all.
func (b *NFTables) changeBlock(ctx context.Context, p netip.Prefix, want []Member) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	verb := "block"
	if want == nil {
		verb = "unblock"
	}
	tx := b.begin()
	if err := tx.ensureHosts(nftBlockRef(familyOf(p)), []netip.Prefix{p}, want); err != nil {
		b.abort()
		return fmt.Errorf("firewall: nftables: %s %s: %w", verb, p.Addr(), err)
	}
	if err := b.commit(tx); err != nil {
		return fmt.Errorf("firewall: nftables: %s %s: %w", verb, p.Addr(), err)
	}
	return nil
}

// Blocked implements Blocker: one read of each block set's elements,
// sorted by address. An element with no timeout (added by hand) has
// Left 0.
func (b *NFTables) Blocked(ctx context.Context) ([]Blocked, error) {
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	var out []Blocked
	for _, f := range families {
		es, err := b.conn.GetSetElements(nftBlockRef(f))
		if err != nil {
			b.reset()
			if errors.Is(err, unix.ENOENT) || !b.hasSet(nftBlockSetName(f)) {
				continue
			}
			return nil, fmt.Errorf("firewall: nftables: list set %s: %w", nftBlockSetName(f), err)
		}
		for _, e := range es {
			a, ok := netip.AddrFromSlice(e.Key)
			if !ok || (e.Timeout > 0 && e.Expires <= 0) {
				continue
			}
			out = append(out, Blocked{Addr: a.Unmap(), Left: e.Expires})
		}
	}
	sortBlocked(out)
	return out, ctx.Err()
}
