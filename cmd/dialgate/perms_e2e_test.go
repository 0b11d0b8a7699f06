package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPermsFormE2E (issue 11, finding 6): --perms takes codes separated
// by commas. "10" used to be read digit by digit as codes 1 and 0, and 0
// is every service; now it, and every other malformed or too-wide list,
// is refused naming the value, and the kernel does not change.
func TestPermsFormE2E(t *testing.T) {
	e := newE2E(t)
	e.ok("init")
	e.startServe()
	e.ok("account", "add", "bob", "--perms", "1")
	before, st := e.kernel(), e.status()
	cases := []struct {
		args []string
		msg  string
	}{
		{[]string{"account", "add", "x", "--perms", "10"}, `"10" is not a code 0-9`},
		{[]string{"account", "add", "x", "--perms", "12"}, `"12" is not a code 0-9`},
		{[]string{"account", "add", "x", "--perms", "0,8"}, "0 already means all"},
		{[]string{"account", "add", "x", "--perms", "1,,2"}, "1,2,8"},
		{[]string{"account", "set", "bob", "--perms", "10"}, `"10"`},
		{[]string{"allow", "ip", "bob", "203.0.113.7", "--perms", "99999999999"}, `"99999999999"`},
		{[]string{"allow", "ip", "bob", "203.0.113.7", "--perms", "9"}, "--force"},
		{[]string{"allow", "ip", "bob", "203.0.113.7", "--perms", "0"}, "wider than"},
	}
	for _, c := range cases {
		e.fails(exitError, c.msg, c.args...)
	}
	if after := e.kernel(); after != before {
		t.Fatalf("refused perms changed the kernel:\n%s\n---\n%s", before, after)
	}
	if now := e.status(); len(now.Accounts) != len(st.Accounts) || len(now.Entries) != len(st.Entries) {
		t.Fatalf("refused perms stored something: %+v %+v", now.Accounts, now.Entries)
	}
	for _, a := range e.status().Accounts {
		if a.Name == "bob" && a.Perms.String() != "1" {
			t.Fatalf("bob's perms became %s", a.Perms)
		}
	}
	// The forms that mean what they say still work.
	e.ok("account", "add", "carol", "--perms", "1, 2 ,8")
	e.ok("allow", "ip", "bob", "203.0.113.7", "--perms", "9", "--force")
}

// TestWideLANConfigE2E (issue 11, finding 9): a config whose lan admits
// the world makes serve refuse to start, and reload refuse it, without
// touching the kernel.
func TestWideLANConfigE2E(t *testing.T) {
	e := newE2E(t)
	good, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.ok("init")
	pristine := e.kernel()
	e.appendConfig("[firewall]\nlan = [\"0.0.0.0/0\"]\n")
	// serve must exit on its own; a daemon still up after the deadline
	// accepted the config.
	cmd := e.command("serve")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(out.String(), "firewall.lan") || !strings.Contains(out.String(), `"0.0.0.0/0"`) {
			t.Fatalf("serve: %v\n%s; want a refusal naming firewall.lan and the value", err, out.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Signal(syscall.SIGTERM)
		<-done
		t.Fatalf("serve started with lan = [\"0.0.0.0/0\"]:\n%s", out.String())
	}
	if after := e.kernel(); after != pristine {
		t.Fatalf("refused config changed the kernel:\n%s\n---\n%s", pristine, after)
	}
	// A running daemon keeps its rules when a reload meets the typo. A
	// secret in a file others can read is accepted, with a warning.
	if err := os.WriteFile(e.cfg, append(good, "[ami]\nsecret = \"s3cret\"\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(e.cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	e.startServe()
	if out := e.ok("status"); !strings.Contains(out, "warning: config "+e.cfg+": holds ami.secret") {
		t.Errorf("status does not warn of the readable secret:\n%s", out)
	}
	running := e.kernel()
	e.appendConfig("[firewall]\nopen = [\"tcp/1:65535\"]\n")
	e.fails(exitError, "firewall.open", "reload")
	if after := e.kernel(); after != running {
		t.Fatalf("refused reload changed the kernel:\n%s\n---\n%s", running, after)
	}
}
