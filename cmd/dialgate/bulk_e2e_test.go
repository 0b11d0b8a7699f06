package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dialgate/dialgate/firewall/fwtest"
)

// A whitelist exported from one server and read back with allow --file
// on a fresh one gives the same accounts, entries and kernel members;
// passcodes never leave. A file with one bad line adds nothing and names
// the line.
func TestExportAllowFileRoundTrip(t *testing.T) {
	a := newE2E(t)
	a.ok("init")
	a.startServe()
	a.ok("account", "add", "alice", "--perms", "1,2,8", "--comment", `road "warrior"`)
	a.withStdin("482913\n").ok("account", "passcode", "alice", "--stdin")
	a.ok("allow", "ip", "alice", fwtest.ClientV4.String())
	a.ok("allow", "cidr", "alice", "198.51.100.0/24", "--perms", "1", "--comment", "branch office")
	a.ok("allow", "fqdn", "alice", "home.dyndns.example", "--force", "--refresh", "90s")
	file := filepath.Join(a.dir, "wl.txt")
	if out := a.ok("export", "--output", file); !strings.Contains(out, "to "+file) {
		t.Errorf("export: %s", out)
	}
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("export file mode %v, want 0600", fi.Mode().Perm())
	}
	for _, want := range []string{
		`account alice perms=1,2,8 comment="road \"warrior\""`,
		"alice ip " + fwtest.ClientV4.String() + "\n",
		`alice cidr 198.51.100.0/24 perms=1 comment="branch office"`,
		"alice fqdn home.dyndns.example refresh=1m30s force",
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("export lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(string(text), "argon2") || strings.Contains(string(text), "482913") {
		t.Errorf("export leaks the passcode:\n%s", text)
	}

	b := newE2E(t)
	b.ok("init")
	b.startServe()
	// One bad line: nothing is added, and the error names the line.
	bad := filepath.Join(b.dir, "bad.txt")
	os.WriteFile(bad, append(append([]byte{}, text...), "alice ip 203.0.113.300\n"...), 0o600)
	b.fails(exitError, "203.0.113.300", "allow", "--file", bad)
	shape := filepath.Join(b.dir, "shape.txt")
	os.WriteFile(shape, []byte("alice ip 203.0.113.9\nalice host x\n"), 0o600)
	b.fails(exitError, "shape.txt:2: unknown kind \"host\"", "allow", "--file", shape)
	// Entries for an account neither existing nor defined are refused.
	orphan := filepath.Join(b.dir, "orphan.txt")
	os.WriteFile(orphan, []byte("carol ip 203.0.113.9\n"), 0o600)
	b.fails(exitError, `account "carol"`, "allow", "--file", orphan)
	if out := b.ok("account", "list"); strings.Contains(out, "alice") || strings.Contains(out, "carol") {
		t.Fatalf("a refused file changed accounts:\n%s", out)
	}

	out := b.ok("allow", "--file", file)
	if !strings.Contains(out, "1 account created") || !strings.Contains(out, "3 entries added") {
		t.Errorf("allow --file: %s", out)
	}
	again := filepath.Join(b.dir, "again.txt")
	b.ok("export", "--output", again)
	text2, _ := os.ReadFile(again)
	if body(text) != body(text2) {
		t.Errorf("round trip differs:\n%s\n---\n%s", text, text2)
	}
	// Reading it again adds nothing.
	if out := b.ok("allow", "--file", file); !strings.Contains(out, "0 entries added") {
		t.Errorf("second allow --file: %s", out)
	}
	// The kernel agrees: the client reaches SSH on b.
	b.lab.Echo(t, "tcp", 22)
	b.lab.Check(t, probe,
		fwtest.Probe{Proto: "tcp", Src: fwtest.ClientV4, Dst: fwtest.ServerV4, Port: 22, Want: true},
		fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: false},
	)
	// JSON reads back too.
	js := filepath.Join(b.dir, "wl.json")
	b.ok("export", "--json", "--output", js)
	if out := b.ok("allow", "--file", js); !strings.Contains(out, "0 entries added") {
		t.Errorf("allow --file JSON: %s", out)
	}
	b.fails(exitUsage, "missing command, one of: cidr, fqdn, ip", "allow")
}

// body drops the header comment lines (they carry the export's time).
func body(b []byte) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// entry set changes an entry in place: same ID, new perms, and the kernel
// follows; perms wider than the account's need --force.
func TestEntrySet(t *testing.T) {
	e := newE2E(t)
	e.ok("init")
	e.startServe()
	e.lab.Echo(t, "tcp", 22)
	e.lab.Echo(t, "udp", 5060)
	e.ok("account", "add", "bob", "--perms", "1,8")
	out := e.ok("allow", "ip", "bob", fwtest.OtherV4.String())
	id := strings.SplitN(out, ":", 2)[0]
	reach := func(ssh, sip bool) {
		t.Helper()
		e.lab.Check(t, probe,
			fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: ssh},
			fwtest.Probe{Proto: "udp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 5060, Want: sip},
		)
	}
	reach(true, true)
	if out := e.ok("entry", "set", id, "--perms", "1", "--comment", "phone only"); !strings.Contains(out, id+": ip "+fwtest.OtherV4.String()+" of bob: perms 1 sip-udp") {
		t.Errorf("entry set: %s", out)
	}
	reach(false, true)
	e.fails(exitError, "wider than account", "entry", "set", id, "--perms", "1,2")
	e.fails(exitUsage, "nothing to change", "entry", "set", id)
	e.fails(exitError, "only for fqdn", "entry", "set", id, "--refresh", "1m")
	e.fails(exitError, "not found", "entry", "set", "e999", "--comment", "x")
	if out := e.ok("entry", "set", id, "--perms", ""); !strings.Contains(out, "(the account's)") {
		t.Errorf("entry set --perms '': %s", out)
	}
	reach(true, true)
	if st := e.ok("status"); !strings.Contains(st, id) || !strings.Contains(st, "phone only") {
		t.Errorf("status after entry set:\n%s", st)
	}
}
