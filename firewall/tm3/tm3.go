package tm3

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Entry is one whitelisted address, network or host name of an account.
type Entry struct {
	Kind    string // "ip", "cidr" or "fqdn"
	Value   string // canonical: "203.0.113.7", "198.51.100.0/24", "pbx.example.org"
	Perms   []int  // ascending permission codes; nil: none of its own (inherit the account's)
	Comment string
	Line    int    // first line it was read from (1-based)
	File    string // the file name given to the parser
}

// Account is a TM3 account (or the catch-all "tm3-import") as a dialgate
// account.
type Account struct {
	Name    string // a valid dialgate account name
	Perms   []int  // union of the entries' codes
	Comment string
	Entries []Entry

	// origin identifies what the account was made from (a TM3 account
	// name, or a marker for the catch-all account), so that Merge tells
	// two different TM3 accounts apart when their names normalize alike.
	origin string
}

// Skipped is an input line, or one source of a rule line, that was not
// imported (or only partly), with the reason.
type Skipped struct {
	File   string
	Line   int
	Text   string // the line, sanitized and shortened for display
	Reason string
}

// Result is what a parser found.
type Result struct {
	Accounts []Account
	Skipped  []Skipped
}

// Entry kinds.
const (
	KindIP   = "ip"
	KindCIDR = "cidr"
	KindFQDN = "fqdn"
)

// ReasonSelfHandled starts the reason of every rule skipped because
// dialgate's own chain already does what it did (loopback, LAN ranges,
// established connections, ICMP, RTP, the final DROP/REJECT).
const ReasonSelfHandled = "dialgate handles this itself"

// ImportAccount is the account that receives accepted rules found outside
// any TM3 account block.
const ImportAccount = "tm3-import"

const (
	// MaxLine is the longest line accepted, without its line ending.
	MaxLine = 64 << 10

	maxComment  = 128 // runes, as dialgate accepts
	maxText     = 240 // runes of an input line echoed in Skipped.Text
	maxNameLen  = 32
	defaultName = "tm3-account"
)

// originImport marks the catch-all account; it cannot be a TM3 name
// because names never contain NUL.
const originImport = "\x00import"

// readLines calls fn for every line of r with its 1-based number, without
// the line ending (LF or CRLF) and, on line 1, without a UTF-8 byte order
// mark. A line longer than MaxLine is an error naming file:line.
func readLines(r io.Reader, file string, fn func(n int, line string)) error {
	sc := bufio.NewScanner(r)
	// Room for a maximal line plus CR LF; anything longer is ErrTooLong.
	sc.Buffer(make([]byte, 0, 4096), MaxLine+2)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSuffix(sc.Text(), "\r")
		if n == 1 {
			line = strings.TrimPrefix(line, "\uFEFF")
		}
		if len(line) > MaxLine {
			return fmt.Errorf("%s:%d: line longer than %d bytes", file, n, MaxLine)
		}
		fn(n, line)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%s:%d: line longer than %d bytes", file, n+1, MaxLine)
		}
		return fmt.Errorf("%s:%d: %w", file, n+1, err)
	}
	return nil
}

// cleanComment makes untrusted text safe to store and show as a dialgate
// comment: invalid UTF-8 becomes U+FFFD, white space becomes single
// spaces, other control and format characters (escape sequences, bidi
// overrides, zero-width characters) are dropped, and the result is capped
// at 128 characters.
func cleanComment(s string) string {
	var b strings.Builder
	space := false
	n := 0
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case !unicode.IsPrint(r):
			continue
		}
		if space {
			if n+1 >= maxComment {
				break
			}
			b.WriteByte(' ')
			n++
			space = false
		}
		if n >= maxComment {
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// displayText makes an input line safe to echo in Skipped.Text: every
// rune that is not printable is shown as U+FFFD (so that an oddity stays
// visible), and long lines are cut with an ellipsis.
func displayText(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if n == maxText {
			b.WriteString("…")
			break
		}
		switch {
		case r == ' ' || unicode.IsPrint(r):
		case r == '\t':
			r = ' '
		default:
			r = utf8.RuneError
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// quote renders an input token inside a reason: quoted, escaped, short.
func quote(s string) string {
	const max = 64
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max]) + "…"
	}
	return strconv.Quote(s)
}

// NormalizeName turns a TM3 account name (a file or block name, without
// ".iptables") into a dialgate account name: lower case, characters other
// than a-z 0-9 . _ - replaced by '-', runs of '-' collapsed, leading and
// trailing punctuation trimmed, at most 32 characters. An empty result
// becomes "tm3-account".
func NormalizeName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_':
			b.WriteRune(r)
		default:
			if !strings.HasSuffix(b.String(), "-") {
				b.WriteByte('-')
			}
		}
	}
	s := strings.TrimLeft(b.String(), "._-")
	if len(s) > maxNameLen {
		s = s[:maxNameLen]
	}
	s = strings.TrimRight(s, "._-")
	if s == "" {
		return defaultName
	}
	return s
}

// withSuffix returns name-N, shortening name so the result stays within
// the length limit.
func withSuffix(name string, n int) string {
	suf := "-" + strconv.Itoa(n)
	if len(name)+len(suf) > maxNameLen {
		name = strings.TrimRight(name[:maxNameLen-len(suf)], "._-")
	}
	return name + suf
}

// accountComment says which TM3 account an account came from, quoting the
// original name when normalization changed it.
func accountComment(tm3Name, name string) string {
	if tm3Name == name {
		return cleanComment("Travelin' Man 3 account " + name + ".iptables")
	}
	return cleanComment("Travelin' Man 3 account " + strconv.Quote(tm3Name+".iptables") + " (renamed)")
}

// normPerms sorts and de-duplicates codes; a set holding code 0 (all
// services) is just [0]. nil stays nil.
func normPerms(p []int) []int {
	if len(p) == 0 {
		return nil
	}
	q := slices.Clone(p)
	slices.Sort(q)
	q = slices.Compact(q)
	if q[0] == 0 {
		return []int{0}
	}
	return q
}

func unionPerms(a, b []int) []int {
	return normPerms(append(slices.Clone(a), b...))
}

// merger accumulates accounts in first-seen order, folding entries of the
// same account, kind and value together.
type merger struct {
	accounts []*Account
	byName   map[string]*Account
	byOrigin map[string]string // origin -> assigned name
	index    map[*Account]map[string]int
}

func newMerger() *merger {
	return &merger{byName: map[string]*Account{}, byOrigin: map[string]string{}, index: map[*Account]map[string]int{}}
}

// account returns the account for name/origin, creating it if needed. Two
// different origins never share an account: the later one gets a "-2"
// (or "-3", ...) suffix. An empty origin joins whatever holds the name.
func (m *merger) account(name, origin, comment string) *Account {
	if origin != "" {
		if assigned, ok := m.byOrigin[origin]; ok {
			name = assigned
		}
	}
	try := name
	for i := 2; ; i++ {
		a, ok := m.byName[try]
		if !ok {
			a = &Account{Name: try, Comment: comment, origin: origin}
			m.accounts = append(m.accounts, a)
			m.byName[try] = a
			m.index[a] = map[string]int{}
			if origin != "" {
				m.byOrigin[origin] = try
			}
			return a
		}
		if origin == "" || a.origin == "" || a.origin == origin {
			if a.origin == "" && origin != "" {
				a.origin = origin
				m.byOrigin[origin] = try
			}
			if a.Comment == "" {
				a.Comment = comment
			}
			return a
		}
		try = withSuffix(name, i)
	}
}

func (m *merger) addEntry(a *Account, e Entry) {
	e.Perms = normPerms(e.Perms)
	key := e.Kind + " " + e.Value
	if i, ok := m.index[a][key]; ok {
		old := &a.Entries[i]
		old.Perms = unionPerms(old.Perms, e.Perms)
		if old.Comment == "" {
			old.Comment = e.Comment
		}
		return
	}
	m.index[a][key] = len(a.Entries)
	a.Entries = append(a.Entries, e)
}

func (m *merger) result() []Account {
	out := make([]Account, 0, len(m.accounts))
	for _, a := range m.accounts {
		out = append(out, *a)
	}
	return out
}

// Merge combines results: accounts with the same name (and the same TM3
// origin) become one, entries of one account with the same kind and value
// become one with the union of their codes and the first line, file and
// non-empty comment, and account codes are united too. Two different TM3
// accounts whose names normalize alike stay apart, the later one renamed
// with a numeric suffix. Skipped lines are kept in order.
func Merge(results ...Result) Result {
	m := newMerger()
	var out Result
	for _, r := range results {
		for _, a := range r.Accounts {
			acct := m.account(a.Name, a.origin, a.Comment)
			acct.Perms = unionPerms(acct.Perms, a.Perms)
			for _, e := range a.Entries {
				m.addEntry(acct, e)
			}
		}
		out.Skipped = append(out.Skipped, r.Skipped...)
	}
	out.Accounts = m.result()
	return out
}
