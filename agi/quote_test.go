package agi

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/dialgate/dialgate/agi/agitest"
)

func TestQuoteArg(t *testing.T) {
	tests := []struct {
		in     string
		always bool
		want   string
		err    error
	}{
		{in: "beep", want: "beep"},
		{in: "${CHANNEL(peerip)}", want: "${CHANNEL(peerip)}"},
		{in: "silence/1", want: "silence/1"},
		// Recorded: STREAM FILE silence/1 "" and SET VARIABLE EMPTYV "".
		{in: "", want: `""`},
		// Recorded: SET VARIABLE QUIRK "a b (c) d".
		{in: "a b (c) d", want: `"a b (c) d"`},
		// Recorded: VERBOSE "hello" 1.
		{in: "hello", always: true, want: `"hello"`},
		{in: "tab\there", want: "\"tab\there\""},
		{in: `say "hi"`, want: `"say \"hi\""`},
		{in: `back\slash`, want: `"back\\slash"`},
		{in: `"`, want: `"\""`},
		{in: `\`, want: `"\\"`},
		{in: "a\nHANGUP", err: ErrBadArgument},
		{in: "a\r", err: ErrBadArgument},
		{in: "a\r\nANSWER", err: ErrBadArgument},
		{in: "nul\x00", err: ErrBadArgument},
	}
	for _, tt := range tests {
		got, err := quoteArg(tt.in, tt.always)
		if !errors.Is(err, tt.err) {
			t.Errorf("quoteArg(%q) err = %v, want %v", tt.in, err, tt.err)
			continue
		}
		if got != tt.want {
			t.Errorf("quoteArg(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// Whatever the arguments hold, Asterisk's parser (as reimplemented by
// agitest.SplitCommand) must see exactly one command with exactly these
// arguments, or the command must be refused before sending.
func TestBuildCommandNoInjection(t *testing.T) {
	hostile := []string{
		"",
		" ",
		"plain",
		"two words",
		`"`,
		`""`,
		`\`,
		`\\`,
		`\"`,
		`a" HANGUP "b`,
		`x\" ; HANGUP`,
		"\t",
		`trailing\`,
		`"unbalanced`,
		"ends with space ",
		`mix "of" \every\ "thing\`,
		"ÄÖÜ unicode ☎",
	}
	for _, a := range hostile {
		for _, always := range []bool{false, true} {
			line, err := buildCommand("SET VARIABLE", plain("NAME"), arg{s: a, always: always})
			if err != nil {
				t.Errorf("buildCommand(%q): %v", a, err)
				continue
			}
			if strings.ContainsAny(line, "\r\n") {
				t.Errorf("line %q holds a line break", line)
			}
			got := agitest.SplitCommand(line)
			want := []string{"SET", "VARIABLE", "NAME", a}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("arg %q: line %s splits into %q, want %q", a, line, got, want)
			}
		}
	}

	for _, a := range []string{"x\nHANGUP", "x\rHANGUP", "x\r\n", "\n", "x\x00y"} {
		if line, err := buildCommand("SET VARIABLE", plain("NAME"), plain(a)); !errors.Is(err, ErrBadArgument) {
			t.Errorf("buildCommand(%q) = %q, %v; want ErrBadArgument", a, line, err)
		}
	}
}

// Asterisk reads at most 2047 bytes as one command; the rest would be run
// as a command of its own.
func TestBuildCommandLength(t *testing.T) {
	prefix := "SET VARIABLE X "
	ok := strings.Repeat("a", maxCommandBytes-len(prefix))
	if _, err := buildCommand("SET VARIABLE", plain("X"), plain(ok)); err != nil {
		t.Errorf("%d-byte command refused: %v", maxCommandBytes, err)
	}
	long := ok + "a"
	if _, err := buildCommand("SET VARIABLE", plain("X"), plain(long)); !errors.Is(err, ErrBadArgument) {
		t.Errorf("%d-byte command: err = %v, want ErrBadArgument", maxCommandBytes+1, err)
	}
	smuggle := strings.Repeat("a", 2047-len(prefix)) + "HANGUP"
	if _, err := buildCommand("SET VARIABLE", plain("X"), plain(smuggle)); !errors.Is(err, ErrBadArgument) {
		t.Errorf("command smuggled past the 2048-byte buffer: err = %v", err)
	}
}

func TestCheckLine(t *testing.T) {
	for _, l := range []string{"", "   ", "GET VARIABLE CHANNEL\r", "ANSWER\nHANGUP", "A\x00"} {
		if err := checkLine(l); !errors.Is(err, ErrBadArgument) {
			t.Errorf("checkLine(%q) = %v, want ErrBadArgument", l, err)
		}
	}
	for _, l := range []string{"ANSWER", "GET  VARIABLE   CHANNEL", "get variable CHANNEL"} {
		if err := checkLine(l); err != nil {
			t.Errorf("checkLine(%q) = %v", l, err)
		}
	}
}

func TestVerbOf(t *testing.T) {
	tests := map[string]string{
		"ANSWER":                        "ANSWER",
		"GET DATA beep 3000 6":          "GET DATA",
		"get  full   variable ${X}":     "GET FULL VARIABLE",
		"GET VARIABLE CHANNEL":          "GET VARIABLE",
		"SET VARIABLE DIGITS 1234":      "SET VARIABLE",
		"SAY DIGITS 1234 \"\"":          "SAY DIGITS",
		"FOO BAR baz":                   "unknown command",
		"1234":                          "unknown command",
		"WAIT FOR DIGIT 500":            "WAIT FOR DIGIT",
		"SPEECH LOAD GRAMMAR g /tmp/x":  "SPEECH LOAD GRAMMAR",
		"DATABASE PUT dialgate k1 v1":   "DATABASE PUT",
		"CONTROL STREAM FILE f \"\" 10": "CONTROL STREAM FILE",
	}
	for line, want := range tests {
		if got := verbOf(line); got != want {
			t.Errorf("verbOf(%q) = %q, want %q", line, got, want)
		}
	}
}
