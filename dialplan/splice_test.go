package dialplan

import (
	"errors"
	"strings"
	"testing"
)

const blk = "[dialgate-authorize]\nexten => s,1,Hangup()\n"

func TestSplice(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing string
		block    string
		want     string
		changed  bool
	}{
		{
			name:    "empty file",
			block:   blk,
			want:    "; BEGIN dialgate\n" + blk + "; END dialgate\n",
			changed: true,
		},
		{
			name:     "append after content",
			existing: "[from-internal-custom]\nexten => 100,1,Dial(PJSIP/100)\n",
			block:    blk,
			want:     "[from-internal-custom]\nexten => 100,1,Dial(PJSIP/100)\n\n; BEGIN dialgate\n" + blk + "; END dialgate\n",
			changed:  true,
		},
		{
			name:     "append after content without final newline",
			existing: "; my file",
			block:    blk,
			want:     "; my file\n\n; BEGIN dialgate\n" + blk + "; END dialgate\n",
			changed:  true,
		},
		{
			name:     "append after a blank line adds none",
			existing: "; my file\n\n",
			block:    blk,
			want:     "; my file\n\n; BEGIN dialgate\n" + blk + "; END dialgate\n",
			changed:  true,
		},
		{
			name:     "replace between markers",
			existing: "; head\n; BEGIN dialgate\nold line 1\nold line 2\n; END dialgate\n; tail\n",
			block:    blk,
			want:     "; head\n; BEGIN dialgate\n" + blk + "; END dialgate\n; tail\n",
			changed:  true,
		},
		{
			name:     "empty markers filled",
			existing: "; BEGIN dialgate\n; END dialgate",
			block:    blk,
			want:     "; BEGIN dialgate\n" + blk + "; END dialgate",
			changed:  true,
		},
		{
			name:     "already there",
			existing: "x\n; BEGIN dialgate\n" + blk + "; END dialgate\ny\n",
			block:    blk,
			want:     "x\n; BEGIN dialgate\n" + blk + "; END dialgate\ny\n",
		},
		{
			name:     "markers with notes and blanks kept as they are",
			existing: "  ; BEGIN dialgate (managed, do not edit)  \nold\n\t; END dialgate\t\n",
			block:    blk,
			want:     "  ; BEGIN dialgate (managed, do not edit)  \n" + blk + "\t; END dialgate\t\n",
			changed:  true,
		},
		{
			name:     "look-alike is not a marker",
			existing: "; BEGIN dialgate-old\n",
			block:    blk,
			want:     "; BEGIN dialgate-old\n\n; BEGIN dialgate\n" + blk + "; END dialgate\n",
			changed:  true,
		},
		{
			name:     "block without final newline gets one",
			existing: "",
			block:    "exten => s,1,Hangup()",
			want:     "; BEGIN dialgate\nexten => s,1,Hangup()\n; END dialgate\n",
			changed:  true,
		},
		{
			name:     "empty block empties the markers",
			existing: "a\n; BEGIN dialgate\nold\n; END dialgate\nb\n",
			block:    "",
			want:     "a\n; BEGIN dialgate\n; END dialgate\nb\n",
			changed:  true,
		},
		{
			name:     "CRLF file: appended lines are CRLF",
			existing: "[ctx]\r\nexten => 1,1,NoOp()\r\n",
			block:    blk,
			want:     "[ctx]\r\nexten => 1,1,NoOp()\r\n\r\n; BEGIN dialgate\r\n" + strings.ReplaceAll(blk, "\n", "\r\n") + "; END dialgate\r\n",
			changed:  true,
		},
		{
			name:     "CRLF file: replaced lines are CRLF",
			existing: "a\r\n; BEGIN dialgate\r\nold\r\n; END dialgate\r\nb\r\n",
			block:    blk,
			want:     "a\r\n; BEGIN dialgate\r\n" + strings.ReplaceAll(blk, "\n", "\r\n") + "; END dialgate\r\nb\r\n",
			changed:  true,
		},
		{
			name:     "CRLF block into LF file",
			existing: "",
			block:    strings.ReplaceAll(blk, "\n", "\r\n"),
			want:     "; BEGIN dialgate\n" + blk + "; END dialgate\n",
			changed:  true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, changed, err := Splice(tc.existing, tc.block)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Splice:\n got %q\nwant %q", got, tc.want)
			}
			if changed != tc.changed {
				t.Errorf("changed = %v, want %v", changed, tc.changed)
			}
			again, changed, err := Splice(got, tc.block)
			if err != nil || changed || again != got {
				t.Errorf("Splice of its own result: changed=%v err=%v\n got %q\nwant %q", changed, err, again, got)
			}
			checkOutsideKept(t, tc.existing, got)
		})
	}
}

// checkOutsideKept checks that the text before BEGIN's line terminator
// and from END's line on is byte for byte what it was, when existing had
// markers, and that existing is a prefix of the result when it had none.
func checkOutsideKept(t *testing.T, existing, result string) {
	t.Helper()
	b := markerLine(existing, BeginMarker)
	if b < 0 {
		if !strings.HasPrefix(result, existing) {
			t.Errorf("appending changed the existing text")
		}
		return
	}
	headEnd := strings.IndexByte(existing[b:], '\n') + b + 1
	tail := existing[markerLine(existing, EndMarker):]
	if !strings.HasPrefix(result, existing[:headEnd]) {
		t.Errorf("text up to BEGIN changed: %q", existing[:headEnd])
	}
	if !strings.HasSuffix(result, tail) {
		t.Errorf("text from END on changed: %q", tail)
	}
}

// markerLine returns the offset of the line holding marker, or -1.
func markerLine(s, marker string) int {
	for _, l := range splitLines(s) {
		if isMarker(s[l.start:l.end], marker) {
			return l.start
		}
	}
	return -1
}

func TestSpliceRefusesDamagedMarkers(t *testing.T) {
	for _, tc := range []struct {
		name, existing, mention string
	}{
		{"begin only", "a\n; BEGIN dialgate\nb\n", "no \"; END dialgate\" after it"},
		{"end only", "a\n; END dialgate\n", "no \"; BEGIN dialgate\" before it"},
		{"reversed", "; END dialgate\nx\n; BEGIN dialgate\n", "comes before"},
		{"duplicated", "; BEGIN dialgate\n; END dialgate\n; BEGIN dialgate\n; END dialgate\n", "lines 1, 3"},
		{"nested", "; BEGIN dialgate\n; BEGIN dialgate\n; END dialgate\n; END dialgate\n", "lines 1, 2"},
		{"two ends", "; BEGIN dialgate\n; END dialgate\n; END dialgate\n", "lines 2, 3"},
		{"begin on last line", "x\n; BEGIN dialgate", "no"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, changed, err := Splice(tc.existing, blk)
			if err == nil {
				t.Fatalf("Splice accepted %q:\n%q", tc.existing, got)
			}
			if !errors.Is(err, ErrMarkers) {
				t.Errorf("error %v does not wrap ErrMarkers", err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
			if changed || got != "" {
				t.Errorf("error with changed=%v result %q", changed, got)
			}
		})
	}
}

func TestSpliceRefusesBadBlocks(t *testing.T) {
	for _, block := range []string{
		"; BEGIN dialgate\nx\n",
		"x\n  ; END dialgate\n",
		"a\rb\n",
		"a\x00b\n",
	} {
		if got, _, err := Splice("[ctx]\n", block); err == nil {
			t.Errorf("Splice accepted block %q:\n%q", block, got)
		}
	}
}
