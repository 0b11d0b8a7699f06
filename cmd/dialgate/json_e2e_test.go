package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/dialgate/dialgate/firewall/fwtest"
	"github.com/dialgate/dialgate/localapi"
)

// TestJSONOutput runs every command that offers --json in a lab, on a
// fresh install and again with accounts, entries, an unresolved name, a
// grant and a lockout, and holds each output to the wire rules: lower-case
// snake_case keys, [] and never null, durations as seconds, RFC 3339 times
// with their zone. A command that gains --json must be added here.
func TestJSONOutput(t *testing.T) {
	e := newE2E(t)
	e.lab.Echo(t, "tcp", 22)
	e.ok("init")
	e.startServe()
	backup := filepath.Join(e.dir, "backup.db")
	cmds := [][]string{
		{"status", "--json"},
		{"account", "list", "--json"},
		{"audit", "--json", "--limit", "0"},
		{"lockouts", "list", "--json"},
		{"grants", "list", "--json"},
		{"fqdn", "list", "--json"},
		{"sip-domain", "list", "--json"},
		{"providers", "list", "--json"},
		{"db", "check", "--json"},
		{"db", "backup", "--json", backup},
		{"explain", "--json", "203.0.113.7"},
		{"explain", "--json", "203.0.113.7", "udp/5060"},
		{"export", "--json"},
		{"drops", "--json"},
		{"blocks", "list", "--json"},
	}
	// Every command with --json is in the table.
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup("json") != nil {
			path := strings.Fields(c.CommandPath())[1:]
			if !slices.ContainsFunc(cmds, func(args []string) bool { return slices.Equal(args[:len(path)], path) }) {
				t.Errorf("%s offers --json but TestJSONOutput does not run it", c.CommandPath())
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot())
	check := func(stage string) {
		t.Helper()
		for _, args := range cmds {
			out := e.ok(args...)
			var doc any
			if err := json.Unmarshal([]byte(out), &doc); err != nil {
				t.Errorf("%s: dialgate %s: not JSON: %v\n%s", stage, strings.Join(args, " "), err, out)
				continue
			}
			for _, bad := range localapi.CheckJSON(strings.Join(args[:len(args)-1], " "), doc) {
				t.Errorf("%s: %s", stage, bad)
			}
		}
	}
	check("fresh install")

	e.ok("account", "add", "alice", "--perms", "8", "--comment", "Alice")
	e.ok("account", "set", "alice", "--lifetime", "4h")
	e.passcode("alice", "48151623", aliceNumber)
	e.ok("allow", "ip", "alice", fwtest.OtherV4.String(), "--perms", "8")
	e.ok("allow", "fqdn", "alice", "nowhere.invalid", "--refresh", "1m")
	e.ok("sip-domain", "add", "xq356jq.example.org")
	if out, code := e.call("11112222", "555", fwtest.OtherV4.String(), "--account", aliceNumber); code == 0 {
		t.Fatalf("wrong passcode granted:\n%s", out)
	}
	if out, code := e.call("48151623", "555", fwtest.ClientV4.String(), "--account", aliceNumber); code != 0 {
		t.Fatalf("right passcode: exit %d\n%s", code, out)
	}
	check("in use")

	// The durations are there, as seconds.
	var as []map[string]any
	if err := json.Unmarshal([]byte(e.ok("account", "list", "--json")), &as); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(as, func(a map[string]any) bool { return a["name"] == "alice" })
	if i < 0 || as[i]["lifetime_seconds"] != float64(4*3600) {
		t.Errorf("account list --json: alice %v, want lifetime_seconds 14400", as)
	}
	var gs []map[string]any
	if err := json.Unmarshal([]byte(e.ok("grants", "list", "--json")), &gs); err != nil {
		t.Fatal(err)
	}
	if len(gs) != 1 || gs[0]["left_seconds"] == nil || gs[0]["left_seconds"].(float64) < 3*3600 {
		t.Errorf("grants list --json: %v, want one grant with about 4h in left_seconds", gs)
	}
	// The text shows times with their zone, and plurals right.
	if a := e.ok("audit"); !strings.Contains(a, " UTC ") && !strings.Contains(a, " +") && !strings.Contains(a, " -") {
		t.Errorf("audit text shows times without a zone:\n%s", a)
	}
	if out := e.ok("account", "del", "alice"); !strings.Contains(out, "(2 entries, 1 grant removed)") {
		t.Errorf("account del: %q", out)
	}
}
