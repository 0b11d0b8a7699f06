package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/dialgate/dialgate/firewall/fwtest"
	"github.com/dialgate/dialgate/sshpeer/sshpeertest"
	"github.com/dialgate/dialgate/store"
)

// The test binary also plays the fake sshd and its client.
func init() { sshpeertest.Main() }

// sudoArgv is `sudo dialgate ARGS` typed in a login shell: sh runs env
// -i, which clears the environment as sudo's env_reset does (the test
// binary only needs beMain to be dialgate).
func (e *e2e) sudoArgv(args ...string) []string {
	self, err := os.Executable()
	if err != nil {
		e.t.Fatal(err)
	}
	script := `env -i ` + beMain + `=1 "$@"; exit $?`
	return append([]string{"/bin/sh", "-c", script, "sh", self, "--config", e.cfg}, args...)
}

// loginEnv is the login shell's environment; with SSH_CONNECTION as sshd
// sets it or without (then only the sshd's socket tells the session).
func loginEnv(withSSH bool) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=/root"}
	if withSSH {
		env = append(env, "SSH_CONNECTION="+fwtest.ClientV4.String()+" 50000 "+fwtest.ServerV4.String()+" 22")
	}
	return env
}

// TestSSHGuardThroughSudo runs the CLI as `sudo dialgate` in an SSH
// session: below a process named sshd, in the server namespace, that
// holds the administrator's TCP connection from the client namespace,
// with SSH_CONNECTION cleared. init still whitelists the administrator,
// and removing that address is refused.
func TestSSHGuardThroughSudo(t *testing.T) {
	e := newE2E(t)
	sshpeertest.StartSSHD(t, e.lab.Server, "[::]:22")
	sudo := func(withSSH bool, args ...string) sshpeertest.Reply {
		t.Helper()
		return sshpeertest.Run(t, e.lab.Client, fwtest.ClientV4, netip.AddrPortFrom(fwtest.ServerV4, 22),
			sshpeertest.Request{Env: loginEnv(withSSH), Argv: e.sudoArgv(args...)})
	}
	r := sudo(false, "init")
	if r.Code != 0 || !strings.Contains(r.Stdout, "account admin: created") || !strings.Contains(r.Stdout, "whitelisted "+fwtest.ClientV4.String()) {
		t.Fatalf("sudo dialgate init did not whitelist the SSH client (exit %d):\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	e.startServe()
	e.lab.Check(t, probe, ssh(true), from(fwtest.OtherV4, false))
	for _, c := range []struct {
		withSSH bool
		args    []string
	}{
		{false, []string{"deny", fwtest.ClientV4.String()}},
		{true, []string{"deny", fwtest.ClientV4.String()}},
		{false, []string{"account", "del", "admin"}},
	} {
		if r := sudo(c.withSSH, c.args...); r.Code != exitError || !strings.Contains(r.Stderr, "lock out") {
			t.Fatalf("sudo dialgate %s (login shell SSH_CONNECTION %v): exit %d, stderr %q; want refused, lock out",
				strings.Join(c.args, " "), c.withSSH, r.Code, r.Stderr)
		}
	}
	e.lab.Check(t, probe, ssh(true))
	// Over a new connection, the same session is what --force overrides.
	if r := sudo(false, "deny", fwtest.ClientV4.String(), "--force"); r.Code != 0 {
		t.Fatalf("deny --force: exit %d: %s", r.Code, r.Stderr)
	}
	e.lab.Check(t, probe, ssh(false))
}

// TestSSHGuardOffIsSaid: below an sshd whose session cannot be found (it
// holds no connection), init warns that it whitelisted no administrator,
// and every change warns on stderr that the guard is off and says so in
// its audit record; reads stay quiet.
func TestSSHGuardOffIsSaid(t *testing.T) {
	e := newE2E(t)
	lost := func(args ...string) sshpeertest.Reply {
		t.Helper()
		return sshpeertest.Exec(t, e.lab.Server, sshpeertest.Request{Env: loginEnv(false), Argv: e.sudoArgv(args...)})
	}
	const off = "the SSH lockout guard is off"
	r := lost("init")
	if r.Code != 0 || !strings.Contains(r.Stderr, "no admin address can be whitelisted") || !strings.Contains(r.Stderr, "sshd pid") {
		t.Fatalf("init below a lost session: exit %d, stderr %q", r.Code, r.Stderr)
	}
	e.startServe()
	e.ok("account", "add", "ops", "--perms", "8")
	e.ok("allow", "ip", "ops", fwtest.OtherV4.String())
	if r := lost("status"); r.Code != 0 || strings.Contains(r.Stderr, off) {
		t.Fatalf("status: exit %d, stderr %q; want no warning for a read", r.Code, r.Stderr)
	}
	r = lost("deny", fwtest.OtherV4.String())
	if r.Code != 0 || !strings.Contains(r.Stderr, off) || strings.Count(r.Stderr, off) != 1 {
		t.Fatalf("deny: exit %d, stderr %q; want done, with one warning", r.Code, r.Stderr)
	}
	var recs []store.AuditRecord
	if err := json.Unmarshal([]byte(e.ok("audit", "--json", "--limit", "0")), &recs); err != nil {
		t.Fatal(err)
	}
	var saw bool
	for _, rec := range recs {
		if rec.Action == "entry.del" {
			saw = true
			if !strings.Contains(rec.Detail, "SSH lockout guard off") || !strings.Contains(rec.Detail, "sshd pid") {
				t.Errorf("audit record of the change does not say the guard was off: %+v", rec)
			}
		} else if strings.Contains(rec.Detail, "guard off") {
			t.Errorf("a change made outside the lost session says the guard was off: %+v", rec)
		}
	}
	if !saw {
		t.Fatalf("no entry.del audit record: %+v", recs)
	}
}
