package dialplan

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestHowTo(t *testing.T) {
	for name, tc := range map[string]struct {
		text    string
		mention []string
	}{
		"FreePBX": {FreePBXHowTo(), []string{
			"extensions_custom.conf", "from-internal-custom", AuthorizeContext + ",s,1",
			"Custom Destination", "Misc Application", "dialplan reload", "manager_custom.conf",
		}},
		"Asterisk": {AsteriskHowTo(), []string{
			"#include", "dialplan reload", BeginMarker, EndMarker, "bindaddr = 127.0.0.1",
		}},
	} {
		for _, m := range tc.mention {
			if !strings.Contains(tc.text, m) {
				t.Errorf("%s how-to does not mention %q", name, m)
			}
		}
		for i, l := range strings.Split(tc.text, "\n") {
			if n := utf8.RuneCountInString(l); n > 72 {
				t.Errorf("%s how-to line %d is %d columns wide: %q", name, i+1, n, l)
			}
		}
	}
}
