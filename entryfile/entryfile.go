package entryfile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ErrSyntax is wrapped by every error about the shape of a line.
var ErrSyntax = errors.New("whitelist file")

// MaxLine bounds one line: a value, a comment and the keys fit in far
// less; a longer line is refused rather than read without limit.
const MaxLine = 4096

// Document is a whitelist file's content.
type Document struct {
	Accounts []Account `json:"accounts"`
	Entries  []Entry   `json:"entries"`
	// Providers names the trusted providers whose entries the exporting
	// server holds; they come from its catalogue, not from this file, and
	// reading a file ignores them (`dialgate providers enable` does that).
	Providers []string `json:"providers,omitempty"`
}

// Account is an account line.
type Account struct {
	Name    string `json:"name"`
	Perms   string `json:"perms"` // as the CLI takes them: "0", "1,2,8"; "" for none
	Comment string `json:"comment,omitempty"`
	Line    int    `json:"-"`
}

// Entry is an entry line.
type Entry struct {
	Account        string `json:"account"`
	Kind           string `json:"kind"` // ip, cidr or fqdn
	Value          string `json:"value"`
	Perms          string `json:"perms,omitempty"` // "" inherits the account's
	Comment        string `json:"comment,omitempty"`
	Force          bool   `json:"force,omitempty"`
	RefreshSeconds int64  `json:"refresh_seconds,omitempty"`
	Line           int    `json:"-"`
}

// Read parses a whitelist file, text or JSON (a document starting with
// "{"). Every line's error is reported, each naming its line, joined.
func Read(r io.Reader, name string) (Document, error) {
	br := bufio.NewReader(r)
	if first, err := peekNonSpace(br); err == nil && first == '{' {
		var doc Document
		dec := json.NewDecoder(io.LimitReader(br, 256<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&doc); err != nil {
			return Document{}, fmt.Errorf("%w %s: JSON: %v", ErrSyntax, name, err)
		}
		for i := range doc.Entries {
			doc.Entries[i].Line = i + 1
		}
		return doc, nil
	}
	var doc Document
	var errs []error
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 1024), MaxLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := parseLine(&doc, line, n); err != nil {
			errs = append(errs, fmt.Errorf("%w %s:%d: %v", ErrSyntax, name, n, err))
			if len(errs) == 20 {
				errs = append(errs, fmt.Errorf("%s: stopped after 20 errors", name))
				break
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("%w %s:%d: line longer than %d bytes", ErrSyntax, name, n+1, MaxLine)
		}
		errs = append(errs, err)
	}
	return doc, errors.Join(errs...)
}

func peekNonSpace(br *bufio.Reader) (byte, error) {
	for i := 1; ; i++ {
		b, err := br.Peek(i)
		if err != nil {
			return 0, err
		}
		if c := b[i-1]; c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return c, nil
		}
		if i >= 4096 {
			return 0, io.EOF
		}
	}
}

// parseLine reads "account NAME [key=value...]" or
// "ACCOUNT KIND VALUE [key=value...] [force]".
func parseLine(doc *Document, line string, n int) error {
	words, err := split(line)
	if err != nil {
		return err
	}
	if words[0] == "account" {
		if len(words) < 2 {
			return errors.New("account line without a name: want `account NAME [perms=CODES] [comment=\"...\"]`")
		}
		a := Account{Name: words[1], Line: n}
		for _, w := range words[2:] {
			k, v, ok := strings.Cut(w, "=")
			switch {
			case ok && k == "perms":
				a.Perms = v
			case ok && k == "comment":
				a.Comment = v
			default:
				return fmt.Errorf("account %s: unknown field %q (perms=CODES, comment=\"...\")", a.Name, w)
			}
		}
		doc.Accounts = append(doc.Accounts, a)
		return nil
	}
	if len(words) < 3 {
		return fmt.Errorf("want `ACCOUNT ip|cidr|fqdn VALUE [perms=CODES] [refresh=DURATION] [force] [comment=\"...\"]`, got %q", line)
	}
	e := Entry{Account: words[0], Kind: words[1], Value: words[2], Line: n}
	switch e.Kind {
	case "ip", "cidr", "fqdn":
	default:
		return fmt.Errorf("unknown kind %q (want ip, cidr or fqdn)", e.Kind)
	}
	for _, w := range words[3:] {
		k, v, ok := strings.Cut(w, "=")
		switch {
		case !ok && w == "force":
			e.Force = true
		case ok && k == "perms":
			e.Perms = v
		case ok && k == "comment":
			e.Comment = v
		case ok && k == "refresh":
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second {
				return fmt.Errorf("%s: refresh %q: want a duration of at least 1s, such as 1m", e.Value, v)
			}
			e.RefreshSeconds = int64(d / time.Second)
		default:
			return fmt.Errorf("%s: unknown field %q (perms=CODES, refresh=DURATION, force, comment=\"...\")", e.Value, w)
		}
	}
	doc.Entries = append(doc.Entries, e)
	return nil
}

// split cuts a line into words at spaces and tabs; a value may be
// written as a Go double-quoted string (comment="a \"quoted\" word"),
// and only after "key=".
func split(line string) ([]string, error) {
	var out []string
	for line != "" {
		line = strings.TrimLeft(line, " \t")
		if line == "" {
			break
		}
		end := strings.IndexAny(line, " \t")
		if end < 0 {
			end = len(line)
		}
		word := line[:end]
		if k, rest, ok := strings.Cut(line, "="); ok && !strings.ContainsAny(k, " \t") && strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, fmt.Errorf("%s=: unterminated or malformed quoted value", k)
			}
			v, _ := strconv.Unquote(q)
			word = k + "=" + v
			end = len(k) + 1 + len(q)
			if end < len(line) && line[end] != ' ' && line[end] != '\t' {
				return nil, fmt.Errorf("%s=: text right after the closing quote", k)
			}
		} else if strings.Contains(word, `"`) {
			return nil, fmt.Errorf("%q: a quote is allowed only right after key=", word)
		}
		out = append(out, word)
		line = line[end:]
	}
	if len(out) == 0 {
		return nil, errors.New("empty line")
	}
	return out, nil
}

// Write writes doc as text, accounts first, each account's entries after
// it, with a header saying what the file is.
func Write(w io.Writer, doc Document, header string) error {
	var b bytes.Buffer
	for _, l := range strings.Split(strings.TrimRight(header, "\n"), "\n") {
		if header != "" {
			fmt.Fprintf(&b, "# %s\n", l)
		}
	}
	byAccount := map[string][]Entry{}
	for _, e := range doc.Entries {
		byAccount[e.Account] = append(byAccount[e.Account], e)
	}
	if len(doc.Providers) > 0 {
		fmt.Fprintf(&b, "# providers enabled there, not part of this file: dialgate providers enable %s\n", strings.Join(doc.Providers, " "))
	}
	written := map[string]bool{}
	for _, a := range doc.Accounts {
		fmt.Fprintf(&b, "\naccount %s perms=%s", a.Name, a.Perms)
		if a.Comment != "" {
			fmt.Fprintf(&b, " comment=%s", strconv.Quote(a.Comment))
		}
		b.WriteByte('\n')
		for _, e := range byAccount[a.Name] {
			writeEntry(&b, e)
		}
		written[a.Name] = true
	}
	for _, e := range doc.Entries {
		if !written[e.Account] {
			writeEntry(&b, e)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

func writeEntry(b *bytes.Buffer, e Entry) {
	fmt.Fprintf(b, "%s %s %s", e.Account, e.Kind, e.Value)
	if e.Perms != "" {
		fmt.Fprintf(b, " perms=%s", e.Perms)
	}
	if e.RefreshSeconds > 0 {
		fmt.Fprintf(b, " refresh=%s", time.Duration(e.RefreshSeconds)*time.Second)
	}
	if e.Force {
		b.WriteString(" force")
	}
	if e.Comment != "" {
		fmt.Fprintf(b, " comment=%s", strconv.Quote(e.Comment))
	}
	b.WriteByte('\n')
}
