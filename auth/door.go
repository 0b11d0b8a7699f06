package auth

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/dialgate/dialgate/store"
)

// Account numbers are what a caller keys before the passcode when the
// door cannot tell who is calling. They identify; they are not secret.
const (
	minAccountNumberDigits = 2
	maxAccountNumberDigits = 10
	maxCallerIDDigits      = 20
)

// ValidateAccountNumber accepts 2-10 digits, not starting with 0 (a
// leading zero is easy to drop on a keypad and reads as another number).
// Empty is allowed: it clears the number.
func ValidateAccountNumber(n string) error {
	if n == "" {
		return nil
	}
	if len(n) < minAccountNumberDigits || len(n) > maxAccountNumberDigits || strings.Trim(n, "0123456789") != "" || n[0] == '0' {
		return invalid("account number %q: want %d-%d digits, not starting with 0", n, minAccountNumberDigits, maxAccountNumberDigits)
	}
	return nil
}

// CanonicalCallerID reads a caller ID as an administrator binds it or as
// Asterisk presents it in agi_callerid: digits, an optional leading '+',
// spaces, dots, dashes and parentheses, which are dropped. ok is false
// for a withheld or unusable caller ID ("", "unknown", "anonymous",
// letters), which must never identify anyone.
func CanonicalCallerID(s string) (id string, ok bool) {
	s = strings.TrimSpace(s)
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		case c == '+' && b.Len() == 0 && i == strings.IndexByte(s, '+'):
			b.WriteByte(c)
		case c == ' ' || c == '.' || c == '-' || c == '(' || c == ')':
		default:
			return "", false
		}
	}
	id = b.String()
	digits := strings.TrimPrefix(id, "+")
	if len(digits) < 2 || len(digits) > maxCallerIDDigits {
		return "", false
	}
	return id, true
}

// ParseCallerID is CanonicalCallerID for administrators: it names what is
// wrong with a caller ID that cannot be bound.
func ParseCallerID(s string) (string, error) {
	id, ok := CanonicalCallerID(s)
	if !ok {
		return "", invalid("caller ID %q: want 2-%d digits, optionally with a leading '+'", s, maxCallerIDDigits)
	}
	return id, nil
}

// ErrNotGrantable marks an address that no grant may open: one that is not
// a single host on the Internet.
var ErrNotGrantable = errors.New("address cannot be granted")

// Ranges a grant never opens, whatever the LAN setting: addresses that
// are not one remote host, or that a packet cannot honestly come from.
var reservedPrefixes = []struct {
	p   netip.Prefix
	why string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "in 0.0.0.0/8 (this network)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "in 240.0.0.0/4 (reserved, broadcast included)"},
	{netip.MustParsePrefix("::/128"), "the unspecified address"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// EmbeddedIPv4 returns the IPv4 address that a NAT64 (64:ff9b::/96,
// 64:ff9b:1::/48) or 6to4 (2002::/16) address carries, so that checks on
// IPv4 ranges also apply to it: 64:ff9b::7f00:1 is a way to write
// 127.0.0.1.
func EmbeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() || a.Is4In6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case netip.MustParsePrefix("64:ff9b::/96").Contains(a), netip.MustParsePrefix("64:ff9b:1::/48").Contains(a):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case netip.MustParsePrefix("2002::/16").Contains(a):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	}
	return netip.Addr{}, false
}

// CheckGrantable refuses an address that is not one host a caller could
// be reached from: unspecified, loopback, link-local, multicast, 0/8,
// 240/4 and broadcast, in either family and in the IPv6 forms that embed
// an IPv4 address. It returns the address in canonical form (IPv4-mapped
// unmapped). Whether the address is the server's own or already admitted
// by a LAN range is for the caller, who knows the machine, to check.
func CheckGrantable(a netip.Addr) (netip.Addr, error) {
	if !a.IsValid() {
		return netip.Addr{}, fmt.Errorf("%w: no address", ErrNotGrantable)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%w: %s has a zone", ErrNotGrantable, a)
	}
	a = a.Unmap()
	check := func(x netip.Addr, via string) error {
		for _, r := range reservedPrefixes {
			if r.p.Contains(x) {
				return fmt.Errorf("%w: %s is %s%s", ErrNotGrantable, a, r.why, via)
			}
		}
		return nil
	}
	if err := check(a, ""); err != nil {
		return netip.Addr{}, err
	}
	if v4, ok := EmbeddedIPv4(a); ok {
		if err := check(v4, fmt.Sprintf(" (it embeds %s)", v4)); err != nil {
			return netip.Addr{}, err
		}
	}
	return a, nil
}

// Remaining reports how many failures key may still have before it locks,
// and the end of its lock when it is locked now (left is then 0).
func (p LockoutPolicy) Remaining(tx LockoutStore, key string, now time.Time) (left int, lockedUntil time.Time, err error) {
	l, err := tx.Lockout(key)
	if errors.Is(err, store.ErrNotFound) {
		return p.MaxFailures, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("check lockout: %w", err)
	}
	if l.LockedUntil.After(now) {
		return 0, l.LockedUntil, nil
	}
	live := 0
	for _, f := range l.Failures {
		if now.Sub(f) < p.Window {
			live++
		}
	}
	return max(p.MaxFailures-live, 0), time.Time{}, nil
}
