package tm3

import (
	"io"
	"net/netip"
	"path/filepath"
	"strings"
)

// ParseAccountFile reads a TM3 account file, /root/NAME.iptables, written
// by add-ip or add-fqdn: one line "ADDRESS LAST-RESOLVED-ADDRESS". The
// account is named after the file (NAME, normalized); its address becomes
// an entry with no codes of its own, because TM3 keeps the services in the
// iptables file: Merge the result with ParseIPTables's to join them. The
// placeholders the scripts write before they finish ("1.1.1.1 1.1.1.1",
// "no.fqdn 1.1.1.1") are skipped, and a file holding no address at all
// (what add-ip 1.4U leaves after a successful run) still yields the
// account, with a note in Skipped. "#" lines become the comment of the
// entry after them.
//
// The error is non-nil only for a read error or a line longer than
// MaxLine.
func ParseAccountFile(r io.Reader, file string) (Result, error) {
	tm3Name := ""
	if file != "" {
		tm3Name = filepath.Base(file)
		if len(tm3Name) > len(".iptables") && strings.EqualFold(tm3Name[len(tm3Name)-len(".iptables"):], ".iptables") {
			tm3Name = tm3Name[:len(tm3Name)-len(".iptables")]
		}
	}
	name := NormalizeName(tm3Name)
	m := newMerger()
	acct := m.account(name, tm3Name, accountComment(tm3Name, name))
	var skips []Skipped
	skip := func(n int, text, reason string) {
		skips = append(skips, Skipped{File: file, Line: n, Text: displayText(text), Reason: reason})
	}
	pending := ""
	blankLine, lines := 0, 0
	err := readLines(r, file, func(n int, text string) {
		lines = n
		s := strings.TrimSpace(text)
		switch {
		case s == "":
			if blankLine == 0 {
				blankLine = n
			}
			return
		case s[0] == '#':
			pending = cleanComment(strings.TrimLeft(s, "#"))
			return
		}
		f := strings.Fields(s)
		if len(f) > 2 {
			skip(n, text, "unexpected account line: TM3 writes \"ADDRESS LAST-RESOLVED-ADDRESS\"")
			return
		}
		if f[0] == "no.fqdn" || (f[0] == "1.1.1.1" && (len(f) == 1 || f[1] == "1.1.1.1")) {
			skip(n, text, "TM3 placeholder: add-ip or add-fqdn did not finish for this account; not imported")
			return
		}
		c := classify(f[0])
		if c.skip != "" {
			skip(n, text, c.skip)
			return
		}
		comment := pending
		pending = ""
		if len(f) == 2 && f[1] != f[0] {
			last, err := netip.ParseAddr(f[1])
			switch {
			case err != nil:
				skip(n, text, "second field "+quote(f[1])+" is not an address; ignored")
			case c.kind == KindFQDN:
				if comment == "" {
					comment = cleanComment("TM3 last resolved it to " + last.Unmap().String())
				}
			case last.Unmap().String() != c.value:
				skip(n, text, "second field "+quote(f[1])+" differs from the account's address; TM3 uses the first, the second is ignored")
			}
		}
		m.addEntry(acct, Entry{Kind: c.kind, Value: c.value, Comment: comment, Line: n, File: file})
	})
	if err != nil {
		return Result{}, err
	}
	if len(acct.Entries) == 0 && len(skips) == 0 {
		n := blankLine
		if n == 0 {
			n = lines
		}
		skip(n, "", "no address in the account file (add-ip 1.4U leaves it blank after a successful run); "+
			"the account's address and services come from its block in the iptables file")
	}
	return Result{Accounts: m.result(), Skipped: skips}, nil
}
