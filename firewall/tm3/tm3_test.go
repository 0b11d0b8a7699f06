package tm3

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/store"
)

// ent is an entry as the tests compare it.
type ent struct {
	Kind, Value string
	Perms       []int
	Comment     string
}

func (e ent) String() string { return fmt.Sprintf("%s %s %v %q", e.Kind, e.Value, e.Perms, e.Comment) }

type acct struct {
	Name    string
	Perms   []int
	Entries []ent
}

func project(r Result) []acct {
	var out []acct
	for _, a := range r.Accounts {
		pa := acct{Name: a.Name, Perms: a.Perms}
		for _, e := range a.Entries {
			pa.Entries = append(pa.Entries, ent{e.Kind, e.Value, e.Perms, e.Comment})
		}
		out = append(out, pa)
	}
	return out
}

func parseFile(t *testing.T, path string, parse func(*os.File, string) (Result, error)) Result {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := parse(f, path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	checkInvariants(t, r)
	return r
}

func parseIPT(f *os.File, name string) (Result, error)     { return ParseIPTables(f, name) }
func parseAccount(f *os.File, name string) (Result, error) { return ParseAccountFile(f, name) }

func parseString(t *testing.T, text string) Result {
	t.Helper()
	r, err := ParseIPTables(strings.NewReader(text), "test")
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, r)
	return r
}

// checkInvariants holds for every result, whatever the input: what comes
// out is accepted as is by dialgate's own validation.
func checkInvariants(t testing.TB, r Result) {
	t.Helper()
	names := map[string]bool{}
	for _, a := range r.Accounts {
		if err := auth.ValidateAccountName(a.Name); err != nil {
			t.Errorf("account name: %v", err)
		}
		if names[a.Name] {
			t.Errorf("account %q twice", a.Name)
		}
		names[a.Name] = true
		if err := auth.ValidateComment(a.Comment); err != nil {
			t.Errorf("account %s comment: %v", a.Name, err)
		}
		checkPerms(t, a.Name, a.Perms)
		seen := map[string]bool{}
		for _, e := range a.Entries {
			v, err := auth.ParseEntry(store.EntryKind(e.Kind), e.Value, false)
			if err != nil {
				t.Errorf("account %s: entry refused by dialgate: %v", a.Name, err)
			} else if v != e.Value {
				t.Errorf("account %s: entry %q is not canonical (%q)", a.Name, e.Value, v)
			}
			if err := auth.ValidateComment(e.Comment); err != nil {
				t.Errorf("account %s entry %s: comment: %v", a.Name, e.Value, err)
			}
			checkPerms(t, a.Name+" "+e.Value, e.Perms)
			key := e.Kind + " " + e.Value
			if seen[key] {
				t.Errorf("account %s: entry %s not de-duplicated", a.Name, key)
			}
			seen[key] = true
			if e.Line < 1 {
				t.Errorf("account %s entry %s: line %d", a.Name, key, e.Line)
			}
		}
	}
	for _, s := range r.Skipped {
		if s.Reason == "" {
			t.Errorf("line %d skipped without a reason", s.Line)
		}
		for _, txt := range []string{s.Text, s.Reason} {
			if !utf8.ValidString(txt) {
				t.Errorf("line %d: invalid UTF-8 in %q", s.Line, txt)
			}
			for _, c := range txt {
				if !unicode.IsPrint(c) && c != ' ' {
					t.Errorf("line %d: unprintable %U in %q", s.Line, c, txt)
				}
			}
		}
		if n := utf8.RuneCountInString(s.Text); n > maxText+1 {
			t.Errorf("line %d: text of %d runes", s.Line, n)
		}
	}
}

func checkPerms(t testing.TB, what string, p []int) {
	t.Helper()
	if !slices.IsSorted(p) || len(slices.Compact(slices.Clone(p))) != len(p) {
		t.Errorf("%s: perms %v not sorted and unique", what, p)
	}
	for _, c := range p {
		if c < 0 || c > 9 || (c == 0 && len(p) > 1) {
			t.Errorf("%s: perms %v", what, p)
		}
	}
}

// wantSkip is a line of Skipped: its number and a part of its reason.
type wantSkip struct {
	line   int
	reason string
}

func checkSkipped(t *testing.T, got []Skipped, want []wantSkip) {
	t.Helper()
	if len(got) != len(want) {
		for _, s := range got {
			t.Logf("skipped line %d: %s: %s", s.Line, s.Text, s.Reason)
		}
		t.Fatalf("%d lines skipped, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Line != w.line || !strings.Contains(got[i].Reason, w.reason) {
			t.Errorf("skipped[%d] = line %d %q, want line %d with %q", i, got[i].Line, got[i].Reason, w.line, w.reason)
		}
	}
}

const tm3Box = "testdata/sysconfig-iptables"

// TestTM3Box reads a firewall file in the shape TM3's scripts write it:
// install-time whitelist, trusted providers by FQDN, then one block per
// add-ip/add-fqdn account, newest first.
func TestTM3Box(t *testing.T) {
	r := parseFile(t, tm3Box, parseIPT)
	const server = "server, public and administrator addresses"
	want := []acct{
		{ImportAccount, []int{0}, []ent{
			{"ip", "203.0.113.10", []int{0}, server},
			{"ip", "198.51.100.20", []int{0}, server},
			{"ip", "198.51.100.77", []int{0}, server},
			{"fqdn", "outbound1.vitelity.net", []int{1}, providerComment},
			{"fqdn", "inbound1.vitelity.net", []int{1}, providerComment},
			{"fqdn", "chicago.voip.ms", []int{1, 3}, providerComment},
			{"fqdn", "callcentric.com", []int{1}, providerComment},
			{"ip", "192.0.2.211", []int{1}, providerComment},
		}},
		{"oldphone", nil, nil},
		{"dad", []int{1, 3}, []ent{{"fqdn", "dad-house.no-ip.example", []int{1, 3}, ""}}},
		{"branch", []int{1, 2, 3, 4, 5, 6, 7, 8, 9}, []ent{{"cidr", "198.51.100.0/24", []int{1, 2, 3, 4, 5, 6, 7, 8, 9}, ""}}},
		{"homeoffice", []int{0}, []ent{{"fqdn", "home-office.dyndns.example", []int{0}, ""}}},
		{"roadwarrior", []int{1, 4}, []ent{{"ip", "203.0.113.45", []int{1, 4}, ""}}},
	}
	if got := project(r); !reflect.DeepEqual(got, want) {
		t.Errorf("accounts:\n got %+v\nwant %+v", got, want)
	}
	self := ReasonSelfHandled
	checkSkipped(t, r.Skipped, []wantSkip{
		{7, `jump to chain "fail2ban-SSH" is not followed`},
		{8, self + " (loopback interface)"},
		{9, self + " (established connections)"},
		{10, self + " (ICMP)"},
		{12, self + " (LAN range)"},
		{13, self + " (LAN range)"},
		{14, self + " (LAN range)"},
		{15, self + " (loopback)"},
		{20, "commented-out rule"},
		{30, "disabled by TM3's iptables-restart"},
		{54, self + " (RTP media"},
		{55, "no dialgate service covers tcp/5038"},
		{56, self + " (its chain ends in DROP)"},
		{57, `chain "FORWARD"`},
		{58, `chain "fail2ban-SSH"`},
	})
	// Entries point back at their first line and the file.
	rw := r.Accounts[5].Entries[0]
	if rw.Line != 51 || rw.File != tm3Box {
		t.Errorf("roadwarrior entry from %s:%d, want %s:51", rw.File, rw.Line, tm3Box)
	}
	if c := r.Accounts[4].Comment; !strings.Contains(c, `"HomeOffice.iptables"`) {
		t.Errorf("renamed account's comment %q does not name the TM3 account", c)
	}
}

// TestServiceCodes maps each service line add-ip writes, and other port
// sets, to permission codes.
func TestServiceCodes(t *testing.T) {
	tests := []struct {
		name    string
		rule    string // after "-A INPUT", with ADDR for the source
		codes   []int
		partial string // part of the partial-import reason, if any
	}{
		// add-ip 1.4U's entry[0..9], verbatim in shape.
		{"tm3 0 all", "-s ADDR -j ACCEPT", []int{0}, ""},
		{"tm3 1 sip udp", "-p udp -m udp -s ADDR --dport 5060:5069 -j ACCEPT", []int{1}, ""},
		{"tm3 2 sip tcp", "-p tcp -m tcp -s ADDR --dport 5060:5069 -j ACCEPT", []int{2}, ""},
		{"tm3 3 iax", "-p udp -m udp -s ADDR --dport 4569 -j ACCEPT", []int{3}, ""},
		{"tm3 4 web", "-p tcp -m multiport -s ADDR --dports 80,9080 -j ACCEPT", []int{4}, ""},
		{"tm3 5 webmin", "-p tcp -m tcp -s ADDR --dport 9001 -j ACCEPT", []int{5}, ""},
		{"tm3 6 ftp", "-p tcp -m tcp -s ADDR --dport 21 -j ACCEPT", []int{6}, ""},
		{"tm3 7 tftp", "-p udp -m udp -s ADDR --dport 69 -j ACCEPT", []int{7}, ""},
		{"tm3 8 ssh", "-p tcp -m multiport -s ADDR --dports 22,9022 -j ACCEPT", []int{8}, ""},
		{"tm3 9 fop", "-p tcp -m tcp -s ADDR --dport 4445 -j ACCEPT", []int{9}, ""},
		// iptables-save's own spelling of the same rules.
		{"saved order", "-s ADDR/32 -p udp -m udp --dport 5060:5069 -j ACCEPT", []int{1}, ""},
		{"https alone", "-s ADDR -p tcp -m tcp --dport 443 -j ACCEPT", []int{4}, ""},
		{"stock webmin", "-s ADDR -p tcp -m tcp --dport 10000 -j ACCEPT", []int{5}, ""},
		{"one sip port", "-s ADDR -p udp --dport 5060 -j ACCEPT", []int{1}, ""},
		{"sip tls", "-s ADDR -p tcp --dport 5061 -j ACCEPT", []int{2}, ""},
		{"long options", "--source ADDR --protocol tcp --match tcp --destination-port 22 --jump ACCEPT", []int{8}, ""},
		{"service name", "-s ADDR -p tcp --dport ssh -j ACCEPT", []int{8}, ""},
		{"two services", "-s ADDR -p tcp -m multiport --dports 22,80 -j ACCEPT", []int{4, 8}, ""},
		{"multiport ports", "-s ADDR -p tcp -m multiport --ports 4445 -j ACCEPT", []int{9}, ""},
		{"protocol all", "-s ADDR -p all -j ACCEPT", []int{0}, ""},
		{"new only", "-s ADDR -m state --state NEW -j ACCEPT", []int{0}, ""},
		{"syn", "-s ADDR -p tcp --syn --dport 21 -j ACCEPT", []int{6}, ""},
		{"comment", `-s ADDR -m comment --comment "x y" -j ACCEPT`, []int{0}, ""},
		{"counters", "-s ADDR -j ACCEPT -c 10 200", []int{0}, ""},
		{"insert", "-I INPUT 1 -s ADDR -j ACCEPT", []int{0}, ""},
		{"udp every port", "-s ADDR -p udp -j ACCEPT", []int{1, 3, 7}, "every udp port was open"},
		{"tcp every port", "-s ADDR -p tcp -j ACCEPT", []int{2, 4, 5, 6, 8, 9}, "every tcp port was open"},
		{"wide sip range", "-s ADDR -p udp -m udp --dport 5060:5080 -j ACCEPT", []int{1}, "udp/5070:5080 has no dialgate service"},
		{"ssh and mysql", "-s ADDR -p tcp -m multiport --dports 22,3306 -j ACCEPT", []int{8}, "tcp/3306"},
		{"sip plus rtp", "-s ADDR -p udp -m multiport --dports 5060,10000:20000 -j ACCEPT", []int{1}, ""},
		{"open range", "-s ADDR -p tcp --dport 9000: -j ACCEPT", []int{4, 5, 8}, "tcp/9000,9002:9021,9023:9079"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule := strings.ReplaceAll(tt.rule, "ADDR", "203.0.113.9")
			if !strings.HasPrefix(rule, "-I ") {
				rule = "-A INPUT " + rule
			}
			r := parseString(t, "*filter\n"+rule+"\nCOMMIT\n")
			if len(r.Accounts) != 1 || len(r.Accounts[0].Entries) != 1 {
				t.Fatalf("%s: got %+v, skipped %+v", rule, r.Accounts, r.Skipped)
			}
			e := r.Accounts[0].Entries[0]
			if e.Kind != "ip" || e.Value != "203.0.113.9" || !reflect.DeepEqual(e.Perms, tt.codes) {
				t.Errorf("%s: entry %s %s %v, want codes %v", rule, e.Kind, e.Value, e.Perms, tt.codes)
			}
			switch {
			case tt.partial == "" && len(r.Skipped) > 0:
				t.Errorf("%s: unexpected skip %q", rule, r.Skipped[0].Reason)
			case tt.partial != "" && (len(r.Skipped) != 1 || !strings.Contains(r.Skipped[0].Reason, tt.partial)):
				t.Errorf("%s: skipped %+v, want a partial-import note with %q", rule, r.Skipped, tt.partial)
			}
		})
	}
}

// TestSkipReasons covers the rules that are never entries, from a hostile
// and malformed file.
func TestSkipReasons(t *testing.T) {
	r := parseFile(t, "testdata/hostile-iptables", parseIPT)
	want := []acct{
		{"etc-passwd-rm-rf", []int{0}, []ent{{"ip", "203.0.113.5", []int{0}, `ok"; rm -rf / #`}}},
		{ImportAccount, []int{0}, []ent{
			{"ip", "203.0.113.7", []int{8}, ""},
			{"ip", "203.0.113.12", []int{0}, ""},
			{"ip", "203.0.113.13", []int{1, 3, 7}, ""},
			{"ip", "203.0.113.14", []int{4, 8}, ""},
			{"ip", "203.0.113.16", []int{2}, ""},
			{"ip", "203.0.113.17", []int{5}, ""},
			{"cidr", "203.0.113.0/24", []int{8}, ""},
		}},
	}
	if got := project(r); !reflect.DeepEqual(got, want) {
		t.Errorf("accounts:\n got %+v\nwant %+v", got, want)
	}
	checkSkipped(t, r.Skipped, []wantSkip{
		{8, `"0.0.0.0/0" would admit everyone`},
		{9, `"::/0" would admit everyone`},
		{10, "multicast"},
		{11, "broadcast"},
		{12, "unspecified address"},
		{13, `"1.2.3.04" is not an IP address`},
		{14, `"300.1.1.1" is not an IP address`},
		{15, `"bad_host.example" is not an IP address, a network or a valid host name`},
		{16, "wider than /8"},
		{17, "link-local"},
		{18, ReasonSelfHandled + " (loopback)"},
		{20, `match "limit" narrows the rule`},
		{21, "negated match (! -s)"},
		{22, "destination match (-d)"},
		{23, "unbalanced quote"},
		{24, `source "10.1.1.1": ` + ReasonSelfHandled + " (LAN range)"},
		{24, `source "evil..example"`},
		{25, "every udp port was open; imported as codes 1,3,7 only"},
		{26, "imported as codes 4,8; tcp/3306 has no dialgate service"},
		{27, ReasonSelfHandled + " (RTP media"},
		{32, "not a prefix length or contiguous netmask"},
		{33, `interface match "eth0"`},
		{34, `protocol "gre"`},
		{35, `jump to chain "fail2ban-SSH"`},
		{36, "logging rule"},
		{37, "--dport without -p tcp or -p udp"},
		{38, "--dports without -m multiport"},
		{39, "-s given twice"},
		{40, "source-port match"},
		{41, `port "99999"`},
		{42, "malformed target"},
		{43, `chain "OUTPUT"`},
		{44, "only -A and -I lines add rules"},
		{45, "not an iptables-restore line"},
		{47, "outside a table"},
		{49, `table "nat"`},
	})
}

// TestFirstMatch keeps rules that iptables never reached, or reached only
// with an exception, out of the import.
func TestFirstMatch(t *testing.T) {
	r := parseString(t, `*filter
-A INPUT -s 203.0.113.66 -j DROP
-A INPUT -s 203.0.113.0/24 -j ACCEPT
-A INPUT -s 203.0.113.66 -p tcp --dport 22 -j ACCEPT
-A INPUT -s blocked.example.org -j REJECT
-A INPUT -s blocked.example.org,198.51.100.1 -j ACCEPT
-A INPUT -p tcp --dport 22 -j DROP
-A INPUT -m state --state INVALID -j DROP
-A INPUT -p udp --dport 5060 -m string --string "friendly-scanner" --algo bm -j DROP
-A INPUT -s 198.51.100.2 -j ACCEPT
-A INPUT -s 198.51.100.3 -p tcp --dport 80 -j ACCEPT
-A INPUT -s 198.51.100.4 -p udp --dport 5060 -j ACCEPT
-A INPUT -j REJECT --reject-with icmp-host-prohibited
-A INPUT -s 198.51.100.5 -j ACCEPT
COMMIT
`)
	want := []acct{{ImportAccount, []int{0}, nil}}
	want[0].Entries = []ent{
		{"ip", "198.51.100.1", []int{0}, ""},
		{"ip", "198.51.100.3", []int{4}, ""},
		{"ip", "198.51.100.4", []int{1}, ""},
	}
	if got := project(r); !reflect.DeepEqual(got, want) {
		t.Errorf("accounts:\n got %+v\nwant %+v", got, want)
	}
	self := ReasonSelfHandled
	checkSkipped(t, r.Skipped, []wantSkip{
		{2, self},
		{3, `source "203.0.113.0/24": line 2 drops an overlapping source first`},
		{4, "line 2 drops"},
		{5, self},
		{6, `source "blocked.example.org": line 5 drops`},
		{7, self},
		{8, self},
		{9, self},
		{10, "line 7 drops tcp/22 for everyone first"},
		{13, self},
		{14, "unreachable: line 13 drops everything"},
	})
}

// TestDedup folds rules for one address into one entry, and Merge folds
// entries across files.
func TestDedup(t *testing.T) {
	a := parseString(t, `*filter
# // New entry for joe.iptables
-A INPUT -p udp -m udp -s 203.0.113.5 --dport 5060:5069 -j ACCEPT
-A INPUT -p tcp -m multiport -s 203.0.113.5 --dports 22,9022 -j ACCEPT
-A INPUT -p udp -m udp -s 203.0.113.5 --dport 5060:5069 -j ACCEPT
-A INPUT -s 203.0.113.6/32 -j ACCEPT
-A INPUT -s 203.0.113.6 -p tcp --dport 80 -j ACCEPT
# // End entry for joe.iptables
COMMIT
`)
	want := []acct{{"joe", []int{0}, []ent{{"ip", "203.0.113.5", []int{1, 8}, ""}, {"ip", "203.0.113.6", []int{0}, ""}}}}
	if got := project(a); !reflect.DeepEqual(got, want) {
		t.Errorf("one file:\n got %+v\nwant %+v", got, want)
	}
	if e := a.Accounts[0].Entries[0]; e.Line != 3 {
		t.Errorf("folded entry keeps line %d, want its first line 3", e.Line)
	}

	b := parseString(t, "*filter\n# // New entry for joe.iptables\n-A INPUT -p udp -m udp -s 203.0.113.5 --dport 4569 -j ACCEPT\n-A INPUT -s 203.0.113.7 -p udp --dport 69 -j ACCEPT\n# // End entry for joe.iptables\nCOMMIT\n")
	m := Merge(a, b, a)
	checkInvariants(t, m)
	want = []acct{{"joe", []int{0}, []ent{
		{"ip", "203.0.113.5", []int{1, 3, 8}, ""},
		{"ip", "203.0.113.6", []int{0}, ""},
		{"ip", "203.0.113.7", []int{7}, ""},
	}}}
	if got := project(m); !reflect.DeepEqual(got, want) {
		t.Errorf("merged:\n got %+v\nwant %+v", got, want)
	}
	// Merging a result with itself changes nothing.
	if got := project(Merge(a, a)); !reflect.DeepEqual(got, project(a)) {
		t.Errorf("Merge(a, a) = %+v, want %+v", got, project(a))
	}
}

// TestMergeWholeBox joins the firewall file with every /root account file
// of the same box.
func TestMergeWholeBox(t *testing.T) {
	results := []Result{parseFile(t, tm3Box, parseIPT)}
	files, err := filepath.Glob("testdata/root/*.iptables")
	if err != nil || len(files) == 0 {
		t.Fatal(files, err)
	}
	slices.Sort(files)
	for _, f := range files {
		results = append(results, parseFile(t, f, parseAccount))
	}
	m := Merge(results...)
	checkInvariants(t, m)
	got := map[string]acct{}
	var order []string
	for _, a := range project(m) {
		got[a.Name] = a
		order = append(order, a.Name)
	}
	wantOrder := []string{ImportAccount, "oldphone", "dad", "branch", "homeoffice", "roadwarrior", "laptop", "pending"}
	if !reflect.DeepEqual(order, wantOrder) {
		t.Errorf("accounts %v, want %v", order, wantOrder)
	}
	checks := map[string]acct{
		// The block's codes, the account file's last-resolved address.
		"homeoffice": {"homeoffice", []int{0}, []ent{{"fqdn", "home-office.dyndns.example", []int{0}, "TM3 last resolved it to 203.0.113.50"}}},
		"dad":        {"dad", []int{1, 3}, []ent{{"fqdn", "dad-house.no-ip.example", []int{1, 3}, "TM3 last resolved it to 198.51.100.33"}}},
		"branch":     {"branch", []int{1, 2, 3, 4, 5, 6, 7, 8, 9}, []ent{{"cidr", "198.51.100.0/24", []int{1, 2, 3, 4, 5, 6, 7, 8, 9}, ""}}},
		// add-ip 1.4U left the account file blank: the block carries it.
		"roadwarrior": {"roadwarrior", []int{1, 4}, []ent{{"ip", "203.0.113.45", []int{1, 4}, ""}}},
		// Its only rule was disabled: the name comes in with no codes.
		"oldphone": {"oldphone", nil, []ent{{"fqdn", "gone.dyndns.example", nil, "TM3 last resolved it to 203.0.113.60"}}},
		// No block left in the firewall file: nothing is opened.
		"laptop":  {"laptop", nil, []ent{{"ip", "203.0.113.81", nil, ""}}},
		"pending": {"pending", nil, nil},
	}
	for name, w := range checks {
		if !reflect.DeepEqual(got[name], w) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got[name], w)
		}
	}
	var notes []string
	for _, s := range m.Skipped {
		if strings.HasPrefix(s.File, "testdata/root/") {
			notes = append(notes, filepath.Base(s.File)+": "+s.Reason)
		}
	}
	if len(notes) != 2 || !strings.Contains(notes[0], "pending.iptables: TM3 placeholder") ||
		!strings.Contains(notes[1], "roadwarrior.iptables: no address in the account file") {
		t.Errorf("account-file notes: %q", notes)
	}
}

// TestAccountFile covers the shapes of /root/NAME.iptables.
func TestAccountFile(t *testing.T) {
	tests := []struct {
		name, file, text string
		want             acct
		skip             []wantSkip
	}{
		{"add-ip", "/root/dave.iptables", "203.0.113.7 203.0.113.7\n",
			acct{"dave", nil, []ent{{"ip", "203.0.113.7", nil, ""}}}, nil},
		{"add-fqdn", "/root/mom.iptables", "Mom.DynDNS.example. 198.51.100.9\n",
			acct{"mom", nil, []ent{{"fqdn", "mom.dyndns.example", nil, "TM3 last resolved it to 198.51.100.9"}}}, nil},
		{"one field", "x.iptables", "2001:db8::5\n", acct{"x", nil, []ent{{"ip", "2001:db8::5", nil, ""}}}, nil},
		{"network", "net.iptables", "198.51.100.0/24 198.51.100.0/24\n",
			acct{"net", nil, []ent{{"cidr", "198.51.100.0/24", nil, ""}}}, nil},
		{"comment line", "c.iptables", "# Bob's\x1b[31m phone\n203.0.113.8\n",
			acct{"c", nil, []ent{{"ip", "203.0.113.8", nil, "Bob's[31m phone"}}}, nil},
		{"add-ip 1.4U blank", "/root/joe.iptables", " \n", acct{"joe", nil, nil},
			[]wantSkip{{1, "no address in the account file"}}},
		{"empty", "/root/empty.iptables", "", acct{"empty", nil, nil},
			[]wantSkip{{0, "no address in the account file"}}},
		{"add-ip placeholder", "p.iptables", "1.1.1.1 1.1.1.1\n", acct{"p", nil, nil},
			[]wantSkip{{1, "TM3 placeholder"}}},
		{"add-fqdn placeholder", "p.iptables", "no.fqdn 1.1.1.1\n", acct{"p", nil, nil},
			[]wantSkip{{1, "TM3 placeholder"}}},
		{"lan", "lan.iptables", "192.168.1.20 192.168.1.20\n", acct{"lan", nil, nil},
			[]wantSkip{{1, ReasonSelfHandled + " (LAN range)"}}},
		{"garbage second", "g.iptables", "203.0.113.8 $(reboot)\n",
			acct{"g", nil, []ent{{"ip", "203.0.113.8", nil, ""}}}, []wantSkip{{1, "is not an address; ignored"}}},
		{"other second", "o.iptables", "203.0.113.8 203.0.113.9\n",
			acct{"o", nil, []ent{{"ip", "203.0.113.8", nil, ""}}}, []wantSkip{{1, "differs from the account's address"}}},
		{"three fields", "t.iptables", "a b c\n", acct{"t", nil, nil}, []wantSkip{{1, "unexpected account line"}}},
		{"bad address", "b.iptables", "1.2.3 1.2.3\n", acct{"b", nil, nil}, []wantSkip{{1, "not an IP address"}}},
		{"crlf and bom", "w.iptables", "\uFEFFhost.example.org 203.0.113.1\r\n",
			acct{"w", nil, []ent{{"fqdn", "host.example.org", nil, "TM3 last resolved it to 203.0.113.1"}}}, nil},
		{"odd name", "/root/Mary Ann's iPhone.iptables", "203.0.113.8\n",
			acct{"mary-ann-s-iphone", nil, []ent{{"ip", "203.0.113.8", nil, ""}}}, nil},
		{"no name", "", "203.0.113.8\n", acct{defaultName, nil, []ent{{"ip", "203.0.113.8", nil, ""}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseAccountFile(strings.NewReader(tt.text), tt.file)
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, r)
			got := project(r)
			if len(got) != 1 || !reflect.DeepEqual(got[0], tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			checkSkipped(t, r.Skipped, tt.skip)
		})
	}
}

// TestCRLF reads a file saved with Windows line endings exactly like the
// original.
func TestCRLF(t *testing.T) {
	data, err := os.ReadFile(tm3Box)
	if err != nil {
		t.Fatal(err)
	}
	lf, err := ParseIPTables(strings.NewReader(string(data)), "f")
	if err != nil {
		t.Fatal(err)
	}
	crlf, err := ParseIPTables(strings.NewReader("\uFEFF"+strings.ReplaceAll(string(data), "\n", "\r\n")), "f")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(lf, crlf) {
		t.Errorf("CRLF file parsed differently:\n LF %+v\nCRLF %+v", lf, crlf)
	}
}

// TestLongLines accepts lines up to MaxLine and refuses longer ones,
// naming file and line.
func TestLongLines(t *testing.T) {
	ok := "*filter\n#" + strings.Repeat("x", MaxLine-1) + "\n-A INPUT -s 203.0.113.1 -j ACCEPT\r\n"
	r, err := ParseIPTables(strings.NewReader(ok), "ok")
	if err != nil || len(r.Accounts) != 1 {
		t.Fatalf("line of MaxLine bytes: %v, %+v", err, r.Accounts)
	}
	if c := r.Accounts[0].Entries[0].Comment; utf8.RuneCountInString(c) != maxComment {
		t.Errorf("comment of %d runes, want it capped at %d", utf8.RuneCountInString(c), maxComment)
	}
	for _, tt := range []struct{ name, text, where string }{
		{"one byte over", "*filter\n:INPUT DROP [0:0]\n#" + strings.Repeat("x", MaxLine) + "\n", "big:3:"},
		{"huge", "*filter\n" + strings.Repeat("y", 10*MaxLine) + "\nCOMMIT\n", "big:2:"},
		{"huge last line", "*filter\n" + strings.Repeat("y", MaxLine+1), "big:2:"},
		{"over with CRLF", "#" + strings.Repeat("x", MaxLine) + "\r\n", "big:1:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for name, parse := range map[string]func(string) error{
				"iptables": func(s string) error { _, err := ParseIPTables(strings.NewReader(s), "big"); return err },
				"account":  func(s string) error { _, err := ParseAccountFile(strings.NewReader(s), "big"); return err },
			} {
				err := parse(tt.text)
				if err == nil || !strings.HasPrefix(err.Error(), tt.where) {
					t.Errorf("%s: error %v, want one starting %q", name, err, tt.where)
				}
			}
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestReadError(t *testing.T) {
	if _, err := ParseIPTables(failingReader{}, "f"); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("ParseIPTables: %v", err)
	}
	if _, err := ParseAccountFile(failingReader{}, "f"); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("ParseAccountFile: %v", err)
	}
}

// TestHostileText keeps terminal and log injection out of comments, names
// and echoed lines.
func TestHostileText(t *testing.T) {
	long := strings.Repeat("Ä", 300)
	text := "*filter\n" +
		"# // New entry for \x1b[2J\u202eevil\x00 name.iptables\n" +
		"-A INPUT -s 203.0.113.30 -m comment --comment \"\x1b]0;pwned\x07 \u202eevil\u200b \\\"quoted\\\"\ttab\" -j ACCEPT\n" +
		"-A INPUT -s 203.0.113.31 -m comment --comment '" + long + "' -j ACCEPT\n" +
		"-A INPUT -s 203.0.113.32 -m comment --comment \"\xff\xfe bad utf8\" -j ACCEPT\n" +
		"-A INPUT -s 203.0.113.33\x1b[1A -j ACCEPT\n" +
		"\x00\x01\x02 binary junk \x1b[31m\n" +
		"# // End entry for \x1b[2J\u202eevil\x00 name.iptables\n" +
		"COMMIT\n"
	r := parseString(t, text)
	if len(r.Accounts) != 1 {
		t.Fatalf("accounts %+v", r.Accounts)
	}
	a := r.Accounts[0]
	if a.Name != "2j-evil-name" {
		t.Errorf("name %q", a.Name)
	}
	want := []string{
		`]0;pwned evil "quoted" tab`,
		strings.Repeat("Ä", maxComment),
		"\uFFFD bad utf8",
	}
	var got []string
	for _, e := range a.Entries {
		got = append(got, e.Comment)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("comments\n got %q\nwant %q", got, want)
	}
	checkSkipped(t, r.Skipped, []wantSkip{
		{6, `"203.0.113.33\x1b[1A" is not an IP address`},
		{7, "not an iptables-restore line"},
	})
	if s := r.Skipped[1].Text; strings.ContainsAny(s, "\x00\x01\x1b") {
		t.Errorf("echoed text %q keeps control characters", s)
	}
}

func TestNormalizeName(t *testing.T) {
	for in, want := range map[string]string{
		"dave":                           "dave",
		"HomeOffice":                     "homeoffice",
		"Mary Ann's iPhone":              "mary-ann-s-iphone",
		"road_warrior.2":                 "road_warrior.2",
		"--x--":                          "x",
		"_hidden":                        "hidden",
		"a   b":                          "a-b",
		"Jürgen":                         "j-rgen",
		"":                               defaultName,
		"!!!":                            defaultName,
		"../../etc/passwd":               "etc-passwd",
		strings.Repeat("abcdefghij", 5):  "abcdefghijabcdefghijabcdefghijab",
		strings.Repeat("a", 31) + "-bcd": strings.Repeat("a", 31),
	} {
		got := NormalizeName(in)
		if got != want {
			t.Errorf("NormalizeName(%q) = %q, want %q", in, got, want)
		}
		if err := auth.ValidateAccountName(got); err != nil {
			t.Errorf("NormalizeName(%q): %v", in, err)
		}
	}
}

// TestNameCollisions keeps two TM3 accounts apart when their names
// normalize alike, in one file and across files.
func TestNameCollisions(t *testing.T) {
	r := parseString(t, `*filter
# // New entry for Bob.iptables
-A INPUT -s 203.0.113.1 -j ACCEPT
# // End entry for Bob.iptables
# // New entry for bob.iptables
-A INPUT -s 203.0.113.2 -p udp --dport 5060 -j ACCEPT
# // End entry for bob.iptables
# // New entry for tm3-import.iptables
-A INPUT -s 203.0.113.3 -j ACCEPT
# // End entry for tm3-import.iptables
-A INPUT -s 203.0.113.4 -j ACCEPT
COMMIT
`)
	var names []string
	for _, a := range r.Accounts {
		names = append(names, a.Name)
	}
	if want := []string{"bob", "bob-2", "tm3-import", "tm3-import-2"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("names %v, want %v", names, want)
	}
	// The account files of the same box join the right accounts.
	bob, _ := ParseAccountFile(strings.NewReader("203.0.113.1\n"), "/root/Bob.iptables")
	bob2, _ := ParseAccountFile(strings.NewReader("203.0.113.2\n"), "/root/bob.iptables")
	m := Merge(r, bob2, bob)
	checkInvariants(t, m)
	got := project(m)
	if len(got) != 4 || len(got[0].Entries) != 1 || len(got[1].Entries) != 1 ||
		got[0].Entries[0].Value != "203.0.113.1" || got[1].Entries[0].Value != "203.0.113.2" {
		t.Errorf("merged %+v", got)
	}
	// Without the firewall file, the second name still gets a suffix.
	m = Merge(bob, bob2)
	if m.Accounts[0].Name != "bob" || m.Accounts[1].Name != "bob-2" {
		t.Errorf("merged names %s %s", m.Accounts[0].Name, m.Accounts[1].Name)
	}
	if got := withSuffix(strings.Repeat("a", 31)+"b", 12); got != strings.Repeat("a", 29)+"-12" {
		t.Errorf("withSuffix = %q", got)
	}
}

// TestBlockMarkers reports blocks that are not closed properly and keeps
// their rules.
func TestBlockMarkers(t *testing.T) {
	r := parseString(t, `*filter
# // New entry for a.iptables
-A INPUT -s 203.0.113.1 -j ACCEPT
# // New entry for b.iptables
-A INPUT -s 203.0.113.2 -j ACCEPT
# // End entry for c.iptables
# // End entry for b.iptables
#// New entry for d.iptables
-A INPUT -s 203.0.113.3 -j ACCEPT
COMMIT
-A INPUT -s 203.0.113.4 -j ACCEPT
`)
	var got []string
	for _, a := range r.Accounts {
		for _, e := range a.Entries {
			got = append(got, a.Name+" "+e.Value)
		}
	}
	if want := []string{"a 203.0.113.1", "b 203.0.113.2", "d 203.0.113.3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("entries %v, want %v", got, want)
	}
	checkSkipped(t, r.Skipped, []wantSkip{
		{2, `block for "a.iptables" has no end marker before line 4`},
		{6, `does not match the open block "b.iptables"`},
		{7, "end marker without a start marker"},
		{8, `block for "d.iptables" has no end marker before line 10 (COMMIT`},
		{11, "outside a table"},
	})
}

// FuzzParseIPTables checks that no input panics or yields anything
// dialgate's validation would refuse.
func FuzzParseIPTables(f *testing.F) {
	for _, p := range []string{tm3Box, "testdata/hostile-iptables", "testdata/saved-iptables", "testdata/root/HomeOffice.iptables"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, parse := range []func() (Result, error){
			func() (Result, error) { return ParseIPTables(strings.NewReader(s), "fuzz") },
			func() (Result, error) { return ParseAccountFile(strings.NewReader(s), "fuzz "+s) },
		} {
			r, err := parse()
			if err != nil {
				continue
			}
			checkInvariants(t, r)
			checkInvariants(t, Merge(r, r))
		}
	})
}
