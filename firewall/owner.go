package firewall

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

// OwnerMarker is implemented by backends that can leave a mark in the
// kernel saying which dialgate install (database) owns the firewall, so
// that a second daemon, or one started on another database, refuses to
// replace it instead of silently emptying it. The mark is a kernel object
// that filters nothing: an empty ipset (iptables backend) or an empty
// nftables table (nftables backend), named after the install.
type OwnerMarker interface {
	// Owner returns the install that owns the kernel state, "" if none.
	Owner(ctx context.Context) (string, error)
	// SetOwner marks id as the owner, removing any other mark.
	SetOwner(ctx context.Context, id string) error
	// ClearOwner removes every mark (dialgate remove).
	ClearOwner(ctx context.Context) error
}

var (
	_ OwnerMarker = (*IPTables)(nil)
	_ OwnerMarker = (*NFTables)(nil)
)

// Mark names: short enough for ipset's 31 characters, and without the
// "dialgate-" prefix of the sets the backends manage, so nothing that
// sweeps those ever mistakes the mark for one of them.
const (
	ownerSetPrefix   = "dgowner-"
	ownerTablePrefix = "dgowner_"
)

var ownerIDRe = regexp.MustCompile(`^[0-9a-f]{8,20}$`)

// ValidOwnerID reports whether id can name a mark: 8-20 lower-case hex
// digits.
func ValidOwnerID(id string) bool { return ownerIDRe.MatchString(id) }

func (b *IPTables) ownerSets() ([]string, error) {
	all, err := b.nl.IpsetListAll()
	if err != nil {
		return nil, fmt.Errorf("firewall: list sets: %w", err)
	}
	var out []string
	for _, s := range all {
		if strings.HasPrefix(s.SetName, ownerSetPrefix) {
			out = append(out, s.SetName)
		}
	}
	return out, nil
}

// Owner implements OwnerMarker.
func (b *IPTables) Owner(ctx context.Context) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	names, err := b.ownerSets()
	if err != nil || len(names) == 0 {
		return "", err
	}
	if len(names) > 1 {
		return "", fmt.Errorf("firewall: %d owner marks in the kernel (%s): two installs claimed this firewall", len(names), strings.Join(names, ", "))
	}
	return strings.TrimPrefix(names[0], ownerSetPrefix), nil
}

// SetOwner implements OwnerMarker.
func (b *IPTables) SetOwner(ctx context.Context, id string) error {
	if !ValidOwnerID(id) {
		return fmt.Errorf("firewall: owner id %q: want 8-20 hex digits", id)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	names, err := b.ownerSets()
	if err != nil {
		return err
	}
	mine, found := ownerSetPrefix+id, false
	for _, n := range names {
		if n == mine {
			found = true
			continue
		}
		if err := b.nl.IpsetDestroy(n); err != nil && !isNotExist(err) {
			return fmt.Errorf("firewall: remove owner mark %s: %w", n, err)
		}
	}
	if found {
		return nil
	}
	if err := b.nl.IpsetCreate(mine, "hash:ip", netlink.IpsetCreateOptions{}); err != nil {
		return fmt.Errorf("firewall: owner mark %s: %w", mine, err)
	}
	return nil
}

// ClearOwner implements OwnerMarker.
func (b *IPTables) ClearOwner(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	names, err := b.ownerSets()
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := b.nl.IpsetDestroy(n); err != nil && !isNotExist(err) {
			return fmt.Errorf("firewall: remove owner mark %s: %w", n, err)
		}
	}
	return nil
}

func (b *NFTables) ownerTables() ([]*nftables.Table, error) {
	ts, err := b.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("firewall: nftables: list tables: %w", err)
	}
	var out []*nftables.Table
	for _, t := range ts {
		if strings.HasPrefix(t.Name, ownerTablePrefix) {
			out = append(out, t)
		}
	}
	return out, nil
}

// Owner implements OwnerMarker.
func (b *NFTables) Owner(ctx context.Context) (string, error) {
	if err := b.lock(ctx); err != nil {
		return "", err
	}
	defer b.mu.Unlock()
	ts, err := b.ownerTables()
	if err != nil || len(ts) == 0 {
		return "", err
	}
	if len(ts) > 1 {
		return "", fmt.Errorf("firewall: nftables: %d owner marks in the kernel: two installs claimed this firewall", len(ts))
	}
	return strings.TrimPrefix(ts[0].Name, ownerTablePrefix), nil
}

// SetOwner implements OwnerMarker.
func (b *NFTables) SetOwner(ctx context.Context, id string) error {
	if !ValidOwnerID(id) {
		return fmt.Errorf("firewall: owner id %q: want 8-20 hex digits", id)
	}
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	ts, err := b.ownerTables()
	if err != nil {
		return err
	}
	mine := &nftables.Table{Name: ownerTablePrefix + id, Family: nftables.TableFamilyINet}
	tx := b.begin()
	tx.queue(func(c *nftables.Conn) {
		for _, t := range ts {
			if t.Name != mine.Name {
				c.DelTable(t)
			}
		}
		c.AddTable(mine)
	})
	if err := b.commit(tx); err != nil {
		return fmt.Errorf("firewall: nftables: owner mark: %w", err)
	}
	return nil
}

// ClearOwner implements OwnerMarker.
func (b *NFTables) ClearOwner(ctx context.Context) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	ts, err := b.ownerTables()
	if err != nil || len(ts) == 0 {
		return err
	}
	tx := b.begin()
	tx.queue(func(c *nftables.Conn) {
		for _, t := range ts {
			c.DelTable(t)
		}
	})
	if err := b.commit(tx); err != nil {
		return fmt.Errorf("firewall: nftables: remove owner mark: %w", err)
	}
	return nil
}
