package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/firewall/fwtest"
)

// other returns a harness on the same lab with its own config: its own
// database, and the given socket ("" for its own).
func (e *e2e) other(name, socket string) *e2e {
	e.t.Helper()
	dir := filepath.Join(e.dir, name)
	if socket == "" {
		socket = filepath.Join(dir, "run", "dialgate.sock")
	}
	cfg := filepath.Join(dir, "dialgate.toml")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		e.t.Fatal(err)
	}
	conf := fmt.Sprintf("db = %q\nsocket = %q\n", filepath.Join(dir, "db", "dialgate.db"), socket)
	if old, err := os.ReadFile(e.cfg); err == nil {
		if _, fw, ok := strings.Cut(string(old), "[firewall]"); ok {
			conf += "[firewall]" + fw // the same backend
		}
	}
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		e.t.Fatal(err)
	}
	o := *e
	o.dir, o.cfg, o.serve = dir, cfg, nil
	return &o
}

// within runs a dialgate command that must end by itself (a serve that
// refuses to start); a command still running after limit is a failure.
func (e *e2e) within(limit time.Duration, args ...string) (out string, code int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := e.command(args...)
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	c.Env = cmd.Env
	b, err := c.CombinedOutput()
	if ctx.Err() != nil {
		e.t.Fatalf("dialgate %s still running after %v: it did not refuse\n%s", strings.Join(args, " "), limit, b)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return string(b), code
}

// A second dialgate, however configured, never touches a firewall that
// another one runs: same socket, another socket, another database, a
// restore. Only --force takes a firewall over.
func TestSecondDaemonNeverTouchesTheKernel(t *testing.T) {
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) { secondDaemon(t, backend) })
	}
}

func secondDaemon(t *testing.T, backend string) {
	e := newE2E(t)
	e.appendConfig(fmt.Sprintf("[firewall]\nbackend = %q\n", backend))
	mark := map[string]string{"iptables": "dgowner-", "nftables": "dgowner_"}[backend]
	e.lab.Echo(t, "tcp", 22)
	e.ok("init")
	e.startServe()
	e.ok("account", "add", "ops", "--perms", "8")
	e.ok("allow", "ip", "ops", fwtest.ClientV4.String())
	e.lab.Check(t, probe, ssh(true), from(fwtest.OtherV4, false))
	before := e.kernel()
	if !strings.Contains(before, mark) {
		t.Fatalf("no owner mark in the kernel:\n%s", before)
	}

	sameSocket := e.other("b", filepath.Join(e.dir, "run", "dialgate.sock"))
	sameSocket.ok("init")
	out, code := sameSocket.within(20*time.Second, "serve")
	if code == 0 || !strings.Contains(out, "in use") {
		t.Errorf("second daemon on the same socket: exit %d\n%s", code, out)
	}
	if k := e.kernel(); k != before {
		t.Fatalf("a second daemon on the same socket changed the kernel:\n%s\nwas:\n%s", k, before)
	}

	own := e.other("c", "")
	own.ok("init")
	out, code = own.within(20*time.Second, "serve")
	if code == 0 || !strings.Contains(out, "another dialgate (pid") {
		t.Errorf("second daemon with its own socket and database: exit %d\n%s", code, out)
	}
	if k := e.kernel(); k != before {
		t.Fatalf("a second daemon with its own socket changed the kernel:\n%s", k)
	}

	// With the first daemon stopped, its mark still says whose firewall
	// this is.
	e.stop()
	for _, args := range [][]string{{"serve"}, {"restore"}} {
		out, code = own.within(20*time.Second, args...)
		if code == 0 || !strings.Contains(out, "belongs to install") || !strings.Contains(out, "--force") {
			t.Errorf("%s on another database: exit %d\n%s", args[0], code, out)
		}
		if k := e.kernel(); k != before {
			t.Fatalf("%s on another database changed the kernel:\n%s", args[0], k)
		}
	}
	e.lab.Check(t, probe, ssh(true), from(fwtest.OtherV4, false))

	// The owner's own restore and serve go on as ever.
	e.ok("restore")
	e.startServe()
	e.stop()

	// --force takes it over: the other database's whitelist (no ops) now rules.
	if out, errOut, code := own.run("restore", "--force"); code != 0 {
		t.Fatalf("restore --force: exit %d\n%s%s", code, out, errOut)
	}
	e.lab.Check(t, probe, ssh(false))
	if k := e.kernel(); k == before || strings.Count(k, mark) != 1 {
		t.Errorf("after the takeover the kernel should hold one new owner mark:\n%s", k)
	}
	// And `remove` leaves no mark behind.
	e.ok("remove", "--yes")
	if k := e.kernel(); strings.Contains(k, mark) {
		t.Errorf("remove left the owner mark:\n%s", k)
	}
}
