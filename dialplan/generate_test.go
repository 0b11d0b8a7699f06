package dialplan

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestGenerateGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"generate_default", Options{}},
		{"generate_custom", Options{
			AGIURL:      "agi://[fd00::5]:4600/authorize?pbx=office",
			Extension:   "555",
			Context:     "from-phones",
			PassAddress: true,
		}},
		{"generate_no_extension", Options{NoAccessExtension: true, Extension: "ignored\n", Context: "ignored;"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Generate(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.name, got)
		})
	}
}

// The zero Options and the spelled-out defaults are the same dialplan.
func TestGenerateDefaults(t *testing.T) {
	a, err := Generate(Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(Options{AGIURL: DefaultAGIURL, Extension: DefaultExtension, Context: DefaultContext})
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("zero Options and explicit defaults differ:\n%s\n---\n%s", a, b)
	}
	for _, want := range []string{
		"[dialgate-authorize]\nexten => s,1,Answer()\n same => n,AGI(agi://127.0.0.1:4573/authorize)\n",
		"[from-internal-custom]\nexten => *47,1,Goto(dialgate-authorize,s,1)\n",
		"exten => h,1,NoOp(",
	} {
		if !strings.Contains(a, want) {
			t.Errorf("default dialplan lacks %q:\n%s", want, a)
		}
	}
	if strings.Contains(a, "DIALGATE_ADDR") {
		t.Error("PassAddress is off by default, yet the dialplan passes an address")
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		ok   bool
	}{
		{"defaults", Options{}, true},
		{"digits", Options{Extension: "5550100"}, true},
		{"star hash plus letters", Options{Extension: "*47#"}, true},
		{"plus", Options{Extension: "+4930123"}, true},
		{"letters", Options{Extension: "door"}, true},
		{"20 chars", Options{Extension: strings.Repeat("1", 20)}, true},
		{"21 chars", Options{Extension: strings.Repeat("1", 21)}, false},
		{"newline injection", Options{Extension: "*47\nexten => 666,1,System(rm -rf /)"}, false},
		{"comment injection", Options{Extension: "*47;x"}, false},
		{"comma", Options{Extension: "47,1"}, false},
		{"space", Options{Extension: "4 7"}, false},
		{"pattern", Options{Extension: "_X."}, false},
		{"pattern everything", Options{Extension: "_."}, false},
		{"dash", Options{Extension: "*4-7"}, false},
		{"non-ASCII digits", Options{Extension: "٤٧"}, false},
		{"special s", Options{Extension: "s"}, false},
		{"special h", Options{Extension: "h"}, false},
		{"special T", Options{Extension: "T"}, false},
		{"special fax", Options{Extension: "FAX"}, false},
		{"context custom", Options{Context: "from-phones_2"}, true},
		{"context 79", Options{Context: strings.Repeat("c", 79)}, true},
		{"context 80", Options{Context: strings.Repeat("c", 80)}, false},
		{"context newline", Options{Context: "from-internal]\n[evil"}, false},
		{"context bracket", Options{Context: "a]"}, false},
		{"context dot", Options{Context: "a.b"}, false},
		{"context general", Options{Context: "general"}, false},
		{"context globals", Options{Context: "Globals"}, false},
		{"context own", Options{Context: AuthorizeContext}, false},
		{"url ipv6", Options{AGIURL: "agi://[::1]:4573/authorize"}, true},
		{"url name no port", Options{AGIURL: "agi://pbx.example.com/authorize"}, true},
		{"url query", Options{AGIURL: "agi://127.0.0.1/authorize?x=1&y=2"}, true},
		{"url extra argument", Options{AGIURL: "agi://127.0.0.1:4573/authorize,6.6.6.6"}, false},
		{"url closes AGI", Options{AGIURL: "agi://127.0.0.1:4573/a)\nexten => 666,1,System(id)"}, false},
		{"url variable", Options{AGIURL: "agi://127.0.0.1/${SHELL(id)}"}, false},
		{"url comment", Options{AGIURL: "agi://127.0.0.1/a;b"}, false},
		{"url quote", Options{AGIURL: `agi://127.0.0.1/"a"`}, false},
		{"url space", Options{AGIURL: "agi://127.0.0.1/a b"}, false},
		{"url http", Options{AGIURL: "http://127.0.0.1/authorize"}, false},
		{"url hagi", Options{AGIURL: "hagi://pbx.example.com/authorize"}, false},
		{"url no host", Options{AGIURL: "agi:///authorize"}, false},
		{"url user", Options{AGIURL: "agi://u@127.0.0.1/authorize"}, false},
		{"url port 0", Options{AGIURL: "agi://127.0.0.1:0/authorize"}, false},
		{"url port big", Options{AGIURL: "agi://127.0.0.1:65536/authorize"}, false},
		{"url empty port", Options{AGIURL: "agi://127.0.0.1:/authorize"}, false},
		{"url bad host", Options{AGIURL: "agi://-bad-/authorize"}, false},
		{"url too long", Options{AGIURL: "agi://127.0.0.1/" + strings.Repeat("a", 250)}, false},
		{"no extension ignores it", Options{NoAccessExtension: true, Extension: "_X.", Context: "general"}, true},
		{"no extension still checks url", Options{NoAccessExtension: true, AGIURL: "agi://x/a,b"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Generate(tc.o)
			if tc.ok {
				if err != nil {
					t.Fatalf("Generate: %v", err)
				}
				checkShape(t, out)
				return
			}
			if err == nil {
				t.Fatalf("Generate accepted %+v:\n%s", tc.o, out)
			}
			if !errors.Is(err, ErrOption) {
				t.Errorf("error %v does not wrap ErrOption", err)
			}
			if tc.o.Validate() == nil {
				t.Error("Validate accepts what Generate refuses")
			}
		})
	}
}

// lineShape is every line Generate may write: comments, blank lines,
// context headers, and extension/priority lines with a known application.
var lineShape = regexp.MustCompile(`^(|;.*|\[[A-Za-z0-9_-]+\]|exten => [0-9A-Za-z*#+]+,1,[A-Za-z]+\(.*\)| same => n(\([a-z]+\))?,[A-Za-z]+\(.*\))$`)

// checkShape checks that out is only lines of the expected shapes, with
// the two contexts (one without an access extension) and no stray text.
func checkShape(t *testing.T, out string) {
	t.Helper()
	if !strings.HasSuffix(out, "\n") {
		t.Errorf("output does not end in a newline")
	}
	headers := 0
	for i, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !lineShape.MatchString(l) {
			t.Errorf("line %d %q has an unexpected shape", i+1, l)
		}
		if strings.HasPrefix(l, "[") {
			headers++
		}
	}
	if headers < 1 || headers > 2 {
		t.Errorf("%d context headers, want 1 or 2:\n%s", headers, out)
	}
}

// FuzzGenerate checks that no accepted option smuggles a line into the
// dialplan, whatever its bytes.
func FuzzGenerate(f *testing.F) {
	f.Add("", "", "", false)
	f.Add("*47", "from-internal-custom", DefaultAGIURL, true)
	f.Add("*47\nexten => 666,1,System(id)", "x", "agi://h/a", false)
	f.Add("1", "c]\n[d", "agi://h/a,b", true)
	f.Add("2", "c", "agi://h/a)\n[x", false)
	f.Fuzz(func(t *testing.T, ext, ctx, url string, pass bool) {
		out, err := Generate(Options{AGIURL: url, Extension: ext, Context: ctx, PassAddress: pass})
		if err != nil {
			if !errors.Is(err, ErrOption) {
				t.Fatalf("error %v does not wrap ErrOption", err)
			}
			return
		}
		checkShape(t, out)
	})
}

// A generated block spliced into a file twice is there once.
func TestGenerateSpliceIdempotent(t *testing.T) {
	block, err := Generate(Options{PassAddress: true})
	if err != nil {
		t.Fatal(err)
	}
	once, changed, err := Splice("[from-internal-custom]\n", block)
	if err != nil || !changed {
		t.Fatalf("first Splice: changed=%v err=%v", changed, err)
	}
	twice, changed, err := Splice(once, block)
	if err != nil || changed || twice != once {
		t.Fatalf("second Splice: changed=%v err=%v", changed, err)
	}
}
