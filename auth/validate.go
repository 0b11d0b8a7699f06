package auth

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dialgate/dialgate/store"
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid input")

// ErrNeedsForce marks a value that is well-formed but dangerous (it would
// open the server to everyone, or is not a unicast address); the
// administrator can insist with --force.
var ErrNeedsForce = errors.New("refused without --force")

// inputError reads as a plain sentence naming the bad value while still
// matching ErrInvalid.
type inputError struct{ msg string }

func (e *inputError) Error() string        { return e.msg }
func (e *inputError) Is(target error) bool { return target == ErrInvalid }

func invalid(format string, args ...any) error {
	return &inputError{msg: fmt.Sprintf(format, args...)}
}

const (
	maxNameLen    = 32
	maxCommentLen = 128
)

// ValidateAccountName accepts 1-32 characters of lower-case letters,
// digits, '.', '_' and '-', starting with a letter or digit: names that
// are safe in a file name, a log line and a dialplan alike.
func ValidateAccountName(name string) error {
	ok := len(name) > 0 && len(name) <= maxNameLen
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case i > 0 && (r == '.' || r == '_' || r == '-'):
		default:
			ok = false
		}
	}
	if !ok {
		return invalid("account name %q: use 1-%d lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", name, maxNameLen)
	}
	return nil
}

// permsForm is the form every permission error shows.
const permsForm = "codes 0-9 separated by commas, each once, such as 1,2,8 (0 alone means all services)"

// ParsePerms reads a permission list: codes 0-9 separated by commas, such
// as "1,2,8"; spaces around the commas are allowed. Each code may appear
// once, and 0 (every service) only on its own. Anything else is refused,
// naming the bad token: "10" is not codes 1 and 0, "12" is not codes 1 and
// 2, and a mistyped list must never widen an account. (The compact
// Travelin' Man 3 form "128" is read by the tm3 importer only, which hands
// the daemon codes, not text.)
func ParsePerms(s string) (store.PermSet, error) {
	if strings.TrimSpace(s) == "" {
		return 0, invalid("permission list %q: empty; give %s", s, permsForm)
	}
	var p store.PermSet
	for _, tok := range strings.Split(s, ",") {
		f := strings.TrimSpace(tok)
		if len(f) != 1 || f[0] < '0' || f[0] > '9' {
			what := fmt.Sprintf("%q is not a code 0-9", f)
			if f == "" {
				what = "an empty code (two commas in a row, or a comma at an end)"
			}
			return 0, invalid("permission list %q: %s; give %s", s, what, permsForm)
		}
		c := int(f[0] - '0')
		if p.Has(c) {
			return 0, invalid("permission list %q: code %d given twice; give %s", s, c, permsForm)
		}
		p |= store.NewPermSet(c)
	}
	if p.Has(store.PermAll) && p != store.NewPermSet(store.PermAll) {
		return 0, invalid("permission list %q: 0 already means all services; give 0 alone, or the codes you mean such as 1,2,8", s)
	}
	return p, nil
}

// PermsWithin reports whether an entry's permissions stay within its
// account's: an account holding 0 (all services) covers anything, an
// empty entry set inherits the account's and so is always within.
func PermsWithin(entry, account store.PermSet) bool {
	if entry.IsEmpty() || account.Has(store.PermAll) {
		return true
	}
	return entry&^account == 0
}

// ValidateComment accepts up to 128 printable characters. A comment is
// only ever stored and displayed (it never reaches a shell or an iptables
// argument), so the danger is terminal and log injection: control
// characters, including newlines and escape sequences, are refused.
func ValidateComment(c string) error {
	if !utf8.ValidString(c) {
		return invalid("comment %q: not valid UTF-8", c)
	}
	if n := utf8.RuneCountInString(c); n > maxCommentLen {
		return invalid("comment %.20q...: %d characters, at most %d", c, n, maxCommentLen)
	}
	for _, r := range c {
		if !unicode.IsPrint(r) && r != ' ' {
			return invalid("comment %q: control character %U not allowed", c, r)
		}
	}
	return nil
}

// Widest networks accepted without --force. Anything wider opens a large
// part of the Internet; the admin must say so explicitly.
const (
	minBitsV4 = 8
	minBitsV6 = 16
)

// ParseEntry checks value as an entry of the given kind and returns its
// canonical form (what is stored and compared): a bare address, a masked
// prefix, or a lower-case host name without a trailing dot.
func ParseEntry(kind store.EntryKind, value string, force bool) (string, error) {
	v := strings.TrimSpace(value)
	switch kind {
	case store.KindIP:
		a, err := netip.ParseAddr(v)
		if err != nil {
			if _, perr := netip.ParsePrefix(v); perr == nil {
				return "", invalid("ip %q: this is a network, use the cidr kind", value)
			}
			return "", invalid("ip %q: not an IPv4 or IPv6 address", value)
		}
		if a.Zone() != "" {
			return "", invalid("ip %q: zoned addresses are not allowed", value)
		}
		a = a.Unmap()
		if err := checkUnicast(a, force); err != nil {
			return "", fmt.Errorf("ip %q: %w", value, err)
		}
		return a.String(), nil
	case store.KindCIDR:
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return "", invalid("cidr %q: not a network such as 198.51.100.0/24 or 2001:db8::/48", value)
		}
		if p.Addr().Is4In6() {
			return "", invalid("cidr %q: write IPv4 networks in IPv4 form", value)
		}
		if p != p.Masked() {
			return "", invalid("cidr %q: host bits set; did you mean %s?", value, p.Masked())
		}
		if err := checkNetwork(p, force); err != nil {
			return "", fmt.Errorf("cidr %q: %w", value, err)
		}
		return p.String(), nil
	case store.KindFQDN:
		name, err := CanonicalHost(v)
		if err != nil {
			return "", err
		}
		return name, nil
	}
	return "", invalid("entry kind %q: want ip, cidr or fqdn", kind)
}

// CheckNetwork applies the width rules of a cidr entry to a masked
// prefix: no wider than /8 (IPv4) or /16 (IPv6), and a unicast network.
// The error wraps ErrNeedsForce and says why, for callers (the config's
// [firewall] lan) that have their own way of insisting.
func CheckNetwork(p netip.Prefix) error { return checkNetwork(p, false) }

func checkNetwork(p netip.Prefix, force bool) error {
	min := minBitsV4
	if p.Addr().Is6() {
		min = minBitsV6
	}
	if p.Bits() < min {
		if force {
			return nil
		}
		return fmt.Errorf("%w: it opens /%d, more than the /%d limit (everyone, if /0)", ErrNeedsForce, p.Bits(), min)
	}
	return checkUnicast(p.Addr(), force)
}

func checkUnicast(a netip.Addr, force bool) error {
	var why string
	switch {
	case a.IsUnspecified():
		why = "the unspecified address"
	case a.IsMulticast():
		why = "a multicast address"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		why = "the broadcast address"
	default:
		return nil
	}
	if force {
		return nil
	}
	return fmt.Errorf("%w: it is %s", ErrNeedsForce, why)
}

// CanonicalHost checks a DNS host name (RFC 1123: labels of letters,
// digits and hyphens, 1-63 long, 253 in all, at least two labels, a
// non-numeric top label) and returns it lower-cased without a final dot.
func CanonicalHost(s string) (string, error) {
	name := strings.ToLower(strings.TrimSuffix(s, "."))
	bad := func(why string) error { return invalid("fqdn %q: %s", s, why) }
	if name == "" || len(name) > 253 {
		return "", bad("must be 1-253 characters")
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return "", bad("needs at least two labels, such as pbx.example.org")
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return "", bad("each label must be 1-63 characters")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", bad("a label cannot start or end with '-'")
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return "", bad(fmt.Sprintf("character %q not allowed in a host name", r))
			}
		}
	}
	top := labels[len(labels)-1]
	if strings.Trim(top, "0123456789") == "" {
		return "", bad("looks like an address, not a name; use the ip kind")
	}
	return name, nil
}

// ValidateExtension accepts a SIP extension or endpoint name as Asterisk
// allows them in AMI actions: 1-40 letters, digits, '.', '_', '-', '+'.
// Empty clears it.
func ValidateExtension(ext string) error {
	if ext == "" {
		return nil
	}
	ok := len(ext) <= 40
	for _, r := range ext {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-+", r)) {
			ok = false
		}
	}
	if !ok {
		return invalid("extension %q: use 1-40 letters, digits, '.', '_', '-' or '+'", ext)
	}
	return nil
}
