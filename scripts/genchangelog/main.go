// Command genchangelog writes the Debian changelog of the dialgate
// packages from CHANGELOG.md (see the head of that file for its format).
//
//	go run ./scripts/genchangelog -version 0.2.0 -git-version 0.2.0 \
//	  -date "$SOURCE_DATE_EPOCH" < CHANGELOG.md > build/changelog
//
// Each section becomes an entry. The section whose version is -version
// is the top entry; when there is none (a build between tags), the top
// entry is -version itself, holding the unreleased sections' items and a
// line naming the git version. Released sections are dated by their
// heading, the top entry by -date (SOURCE_DATE_EPOCH: the commit's).
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const maintainer = "dialgate maintainers <maintainers@dialgate.invalid>"

type section struct {
	version    string
	date       time.Time
	unreleased bool
	items      []string
}

var heading = regexp.MustCompile(`^## ([0-9][0-9A-Za-z.+~-]*)(?: \(unreleased\)| - ([0-9]{4}-[0-9]{2}-[0-9]{2}))$`)

func main() {
	version := flag.String("version", "", "the package version being built (required)")
	gitVersion := flag.String("git-version", "", "the git describe version (for a build between tags)")
	epoch := flag.String("date", "", "SOURCE_DATE_EPOCH: the date of the top entry (required)")
	flag.Parse()
	if err := run(os.Stdin, os.Stdout, *version, *gitVersion, *epoch); err != nil {
		fmt.Fprintln(os.Stderr, "genchangelog:", err)
		os.Exit(1)
	}
}

func parse(r io.Reader) ([]section, error) {
	var secs []section
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), " \t")
		switch {
		case strings.HasPrefix(line, "## "):
			m := heading.FindStringSubmatch(line)
			if m == nil {
				return nil, fmt.Errorf("CHANGELOG.md:%d: %q is not '## VERSION (unreleased)' or '## VERSION - YYYY-MM-DD'", n, line)
			}
			s := section{version: m[1], unreleased: m[2] == ""}
			if !s.unreleased {
				d, err := time.Parse("2006-01-02", m[2])
				if err != nil {
					return nil, fmt.Errorf("CHANGELOG.md:%d: %w", n, err)
				}
				s.date = d
			}
			secs = append(secs, s)
		case len(secs) == 0:
			// the preamble
		case strings.HasPrefix(line, "- "):
			secs[len(secs)-1].items = append(secs[len(secs)-1].items, strings.TrimPrefix(line, "- "))
		case strings.HasPrefix(line, "  ") && strings.TrimSpace(line) != "":
			it := &secs[len(secs)-1].items
			if len(*it) == 0 {
				return nil, fmt.Errorf("CHANGELOG.md:%d: continuation line without an item", n)
			}
			(*it)[len(*it)-1] += " " + strings.TrimSpace(line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(secs) == 0 {
		return nil, errors.New("CHANGELOG.md has no '## VERSION' section")
	}
	return secs, nil
}

func run(r io.Reader, w io.Writer, version, gitVersion, epoch string) error {
	if version == "" || epoch == "" {
		return errors.New("-version and -date are required")
	}
	sec, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return fmt.Errorf("-date %q: not a Unix time: %w", epoch, err)
	}
	built := time.Unix(sec, 0).UTC()
	secs, err := parse(r)
	if err != nil {
		return err
	}
	var entries []section
	matched := false
	for _, s := range secs {
		if s.version == version {
			matched = true
		}
	}
	if !matched {
		top := section{version: version, date: built}
		for _, s := range secs {
			if s.unreleased {
				top.items = append(top.items, s.items...)
			}
		}
		what := "Built from git " + gitVersion
		if gitVersion == "" {
			what = "Built between releases"
		}
		top.items = append(top.items, what+"; see CHANGELOG.md.")
		entries = append(entries, top)
	}
	for _, s := range secs {
		switch {
		case s.version == version:
			if s.unreleased {
				s.date = built
			}
		case s.unreleased:
			continue // in the top entry, or newer than this build
		}
		entries = append(entries, s)
	}
	bw := bufio.NewWriter(w)
	for i, e := range entries {
		if i > 0 {
			bw.WriteString("\n")
		}
		fmt.Fprintf(bw, "dialgate (%s) unstable; urgency=medium\n\n", e.version)
		for _, it := range e.items {
			bw.WriteString(wrap(it))
		}
		fmt.Fprintf(bw, "\n -- %s  %s\n", maintainer, e.date.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	}
	return bw.Flush()
}

// wrap is one changelog item: "  * " then words, lines under 80 columns.
func wrap(text string) string {
	var b strings.Builder
	line := "  *"
	for _, word := range strings.Fields(text) {
		if len(line)+1+len(word) > 78 && len(line) > 4 {
			b.WriteString(line + "\n")
			line = "   "
		}
		line += " " + word
	}
	b.WriteString(line + "\n")
	return b.String()
}
