package dialplan

import (
	"errors"
	"fmt"
	"strings"
)

// The marker comments around dialgate's block in a config file. A line is
// a marker when, without surrounding blanks, it is the marker text, alone
// or followed by a blank and anything (room for a note such as
// "; BEGIN dialgate (managed)").
const (
	BeginMarker = "; BEGIN dialgate"
	EndMarker   = "; END dialgate"
)

// ErrMarkers is wrapped by Splice's errors about the markers of the file
// being edited: Splice will not guess which lines are dialgate's when the
// markers were damaged by hand.
var ErrMarkers = errors.New("dialgate markers are damaged")

// span is one line of a text: [start, end) is its content without the
// line terminator, next the offset of the following line.
type span struct{ start, end, next int }

// splitLines cuts s into lines; a last line without terminator counts.
// A "\r" before "\n" belongs to the terminator.
func splitLines(s string) []span {
	var out []span
	for start := 0; start < len(s); {
		i := strings.IndexByte(s[start:], '\n')
		if i < 0 {
			out = append(out, span{start, len(s), len(s)})
			break
		}
		end := start + i
		next := end + 1
		if end > start && s[end-1] == '\r' {
			end--
		}
		out = append(out, span{start, end, next})
		start = next
	}
	return out
}

func isMarker(line, marker string) bool {
	t := strings.Trim(line, " \t\r")
	if !strings.HasPrefix(t, marker) {
		return false
	}
	rest := t[len(marker):]
	return rest == "" || rest[0] == ' ' || rest[0] == '\t'
}

// lineEnding returns the terminator of s's first line, so lines added to
// a CRLF file stay CRLF; LF for a file without any.
func lineEnding(s string) string {
	if i := strings.IndexByte(s, '\n'); i > 0 && s[i-1] == '\r' {
		return "\r\n"
	}
	return "\n"
}

// normalizeBlock checks block and returns it with eol line endings and a
// final line terminator.
func normalizeBlock(block, eol string) (string, error) {
	block = strings.ReplaceAll(block, "\r\n", "\n")
	if i := strings.IndexAny(block, "\r\x00"); i >= 0 {
		return "", fmt.Errorf("block: byte %q at offset %d: only text lines may be spliced", block[i], i)
	}
	for n, l := range splitLines(block) {
		text := block[l.start:l.end]
		if isMarker(text, BeginMarker) || isMarker(text, EndMarker) {
			return "", fmt.Errorf("block line %d is a dialgate marker (%q): it would nest blocks", n+1, text)
		}
	}
	if block != "" && !strings.HasSuffix(block, "\n") {
		block += "\n"
	}
	if eol != "\n" {
		block = strings.ReplaceAll(block, "\n", eol)
	}
	return block, nil
}

// Splice puts block between the dialgate markers of existing, replacing
// what was there, or appends the markers and block when existing has
// none. Everything outside the markers, and the marker lines themselves,
// are kept byte for byte; added lines take the line ending of existing's
// first line. changed reports whether the result differs from existing,
// and Splice of its own result with the same block is unchanged.
//
// Splice refuses (an error wrapping ErrMarkers) a BEGIN without END or
// the reverse, a marker given twice, and END before BEGIN: those are hand
// edits, and replacing the wrong lines would break someone's dialplan.
// A block containing a marker line is refused too.
func Splice(existing, block string) (result string, changed bool, err error) {
	eol := lineEnding(existing)
	block, err = normalizeBlock(block, eol)
	if err != nil {
		return "", false, err
	}

	var begins, ends []int // indexes into lines
	lines := splitLines(existing)
	for i, l := range lines {
		text := existing[l.start:l.end]
		switch {
		case isMarker(text, BeginMarker):
			begins = append(begins, i)
		case isMarker(text, EndMarker):
			ends = append(ends, i)
		}
	}
	lineNos := func(idx []int) string {
		s := make([]string, len(idx))
		for i, n := range idx {
			s[i] = fmt.Sprint(n + 1)
		}
		return strings.Join(s, ", ")
	}

	switch {
	case len(begins) == 0 && len(ends) == 0:
		var b strings.Builder
		b.WriteString(existing)
		if existing != "" {
			if !strings.HasSuffix(existing, "\n") {
				b.WriteString(eol)
			}
			// A blank line sets the block apart, unless there is one.
			if !strings.HasSuffix(strings.TrimRight(existing, " \t"), eol+eol) && strings.TrimSpace(existing) != "" {
				b.WriteString(eol)
			}
		}
		b.WriteString(BeginMarker + eol)
		b.WriteString(block)
		b.WriteString(EndMarker + eol)
		return b.String(), true, nil
	case len(begins) > 1:
		return "", false, fmt.Errorf("%w: %q appears on lines %s (duplicated or nested blocks)", ErrMarkers, BeginMarker, lineNos(begins))
	case len(ends) > 1:
		return "", false, fmt.Errorf("%w: %q appears on lines %s (duplicated or nested blocks)", ErrMarkers, EndMarker, lineNos(ends))
	case len(ends) == 0:
		return "", false, fmt.Errorf("%w: %q on line %s has no %q after it", ErrMarkers, BeginMarker, lineNos(begins), EndMarker)
	case len(begins) == 0:
		return "", false, fmt.Errorf("%w: %q on line %s has no %q before it", ErrMarkers, EndMarker, lineNos(ends), BeginMarker)
	case ends[0] < begins[0]:
		return "", false, fmt.Errorf("%w: %q on line %s comes before %q on line %s", ErrMarkers, EndMarker, lineNos(ends), BeginMarker, lineNos(begins))
	}

	begin, end := lines[begins[0]], lines[ends[0]]
	// BEGIN has a terminator: END is on a later line.
	result = existing[:begin.next] + block + existing[end.start:]
	return result, result != existing, nil
}
