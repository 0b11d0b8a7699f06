package entryfile

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestReadText(t *testing.T) {
	in := `# exported
account alice perms=0 comment="road warrior"
alice ip 203.0.113.7
  alice cidr 198.51.100.0/24 perms=1,2 comment="branch \"east\" office"

alice fqdn home.example.org refresh=1m
bob ip 2001:db8::7 force comment=plain
account carol perms=
`
	doc, err := Read(strings.NewReader(in), "wl.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := Document{
		Accounts: []Account{
			{Name: "alice", Perms: "0", Comment: "road warrior", Line: 2},
			{Name: "carol", Line: 8},
		},
		Entries: []Entry{
			{Account: "alice", Kind: "ip", Value: "203.0.113.7", Line: 3},
			{Account: "alice", Kind: "cidr", Value: "198.51.100.0/24", Perms: "1,2", Comment: `branch "east" office`, Line: 4},
			{Account: "alice", Kind: "fqdn", Value: "home.example.org", RefreshSeconds: 60, Line: 6},
			{Account: "bob", Kind: "ip", Value: "2001:db8::7", Force: true, Comment: "plain", Line: 7},
		},
	}
	if !reflect.DeepEqual(doc, want) {
		t.Errorf("got  %+v\nwant %+v", doc, want)
	}
}

func TestReadErrorsNameTheLine(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"unknown kind", "alice host 203.0.113.7", "wl:1: unknown kind \"host\""},
		{"too few words", "alice ip", "wl:1: want `ACCOUNT"},
		{"unknown field", "\nalice ip 203.0.113.7 prems=1", "wl:2: 203.0.113.7: unknown field \"prems=1\""},
		{"bad refresh", "alice fqdn a.example refresh=1", "refresh \"1\""},
		{"short refresh", "alice fqdn a.example refresh=10ms", "at least 1s"},
		{"unterminated quote", `alice ip 203.0.113.7 comment="open`, "malformed quoted value"},
		{"quote mid-word", `alice ip 203.0.113.7 com"ment`, "a quote is allowed only"},
		{"text after quote", `alice ip 203.0.113.7 comment="a"b`, "right after the closing quote"},
		{"account without name", "account", "account line without a name"},
		{"account field", "account bob color=red", "unknown field \"color=red\""},
		{"huge line", "alice ip " + strings.Repeat("1", MaxLine+10), "longer than 4096 bytes"},
		{"json unknown field", `{"entries":[{"acount":"x"}]}`, "JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(strings.NewReader(tt.in), "wl")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("%v does not wrap ErrSyntax", err)
			}
		})
	}
	// Every bad line is named, not just the first.
	_, err := Read(strings.NewReader("a ip\nb ip\nc ip 1.2.3.4\nd ip"), "wl")
	for _, l := range []string{"wl:1:", "wl:2:", "wl:4:"} {
		if err == nil || !strings.Contains(err.Error(), l) {
			t.Errorf("error %v does not name %s", err, l)
		}
	}
}

// What Write writes, Read reads back the same, text and JSON alike,
// whatever the comments hold.
func TestRoundTrip(t *testing.T) {
	doc := Document{
		Accounts: []Account{{Name: "alice", Perms: "1,8", Comment: "line\nbreak \"and\" quotes # not a comment"}, {Name: "empty", Perms: ""}},
		Entries: []Entry{
			{Account: "alice", Kind: "ip", Value: "203.0.113.7", Comment: "tab\there"},
			{Account: "alice", Kind: "fqdn", Value: "h.example.org", RefreshSeconds: 90, Force: true},
			{Account: "bob", Kind: "cidr", Value: "2001:db8::/64", Perms: "2"},
		},
	}
	var b bytes.Buffer
	if err := Write(&b, doc, "dialgate export\nsecond line"); err != nil {
		t.Fatal(err)
	}
	got, err := Read(&b, "rt")
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	for i := range got.Accounts {
		got.Accounts[i].Line = 0
	}
	for i := range got.Entries {
		got.Entries[i].Line = 0
	}
	if !reflect.DeepEqual(got, doc) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, doc)
	}
}
