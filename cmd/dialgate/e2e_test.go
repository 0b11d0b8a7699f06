package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dialgate/dialgate/daemon"
	"github.com/dialgate/dialgate/firewall/fwtest"
	"github.com/dialgate/dialgate/localapi"
)

// The test binary doubles as the dialgate binary: run with this variable
// set, it is dialgate. That way the end-to-end tests exercise exactly the
// code under test, as separate processes inside the lab's namespace.
const beMain = "DIALGATE_TEST_BE_MAIN"

// lockDir is where the daemons these tests start keep their
// network-namespace locks: not the machine's /run/dialgate.
var lockDir string

func TestMain(m *testing.M) {
	if os.Getenv(beMain) == "1" {
		main()
		return
	}
	dir, err := os.MkdirTemp("", "dialgate-locks-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	lockDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const probe = 400 * time.Millisecond

type e2e struct {
	t     testing.TB
	lab   *fwtest.Lab
	dir   string
	cfg   string
	serve *exec.Cmd
	env   []string
	stdin string
}

// withStdin returns a copy of e whose next commands read s.
func (e *e2e) withStdin(s string) *e2e {
	c := *e
	c.stdin = s
	return &c
}

func newE2E(t testing.TB) *e2e {
	t.Helper()
	lab := fwtest.NewLab(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "dialgate.toml")
	conf := fmt.Sprintf("db = %q\nsocket = %q\n", filepath.Join(dir, "db", "dialgate.db"), filepath.Join(dir, "run", "dialgate.sock"))
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &e2e{t: t, lab: lab, dir: dir, cfg: cfg}
	t.Cleanup(e.stop)
	return e
}

func (e *e2e) command(args ...string) *exec.Cmd {
	self, err := os.Executable()
	if err != nil {
		e.t.Fatal(err)
	}
	full := append([]string{"netns", "exec", e.lab.Server, self, "--config", e.cfg}, args...)
	cmd := exec.Command("ip", full...)
	cmd.Env = append(os.Environ(), beMain+"=1", "SSH_CONNECTION=", "SSH_CLIENT=", "DIALGATE_LOCK_DIR="+lockDir)
	cmd.Env = append(cmd.Env, e.env...)
	return cmd
}

// run executes one dialgate command in the server namespace.
func (e *e2e) run(args ...string) (stdout, stderr string, code int) {
	cmd := e.command(args...)
	if e.stdin != "" {
		cmd.Stdin = strings.NewReader(e.stdin)
	}
	var o, s bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &s
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		e.t.Fatalf("dialgate %v: %v", args, err)
	}
	return o.String(), s.String(), code
}

func (e *e2e) ok(args ...string) string {
	e.t.Helper()
	out, errOut, code := e.run(args...)
	if code != 0 {
		e.t.Fatalf("dialgate %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (e *e2e) fails(wantCode int, wantMsg string, args ...string) {
	e.t.Helper()
	out, errOut, code := e.run(args...)
	if code != wantCode || !strings.Contains(errOut, wantMsg) {
		e.t.Fatalf("dialgate %s: exit %d, stderr %q, stdout %q; want exit %d and %q", strings.Join(args, " "), code, errOut, out, wantCode, wantMsg)
	}
}

func (e *e2e) startServe() {
	e.t.Helper()
	e.startServeExpect(0)
}

// startServeExpect starts the daemon and waits until `status` exits with
// want (5: serving, cut off from its shared store).
func (e *e2e) startServeExpect(want int) {
	e.t.Helper()
	cmd := e.command("serve")
	logf, err := os.Create(filepath.Join(e.dir, fmt.Sprintf("serve-%d.log", time.Now().UnixNano())))
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.serve = cmd
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, code := e.run("status"); code == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(logf.Name())
	e.t.Fatalf("daemon did not come up:\n%s", log)
}

func (e *e2e) stopWith(sig syscall.Signal) {
	if e.serve == nil {
		return
	}
	// ip netns exec replaces itself with dialgate, so this is the daemon.
	e.serve.Process.Signal(sig)
	e.serve.Wait()
	e.serve = nil
}

func (e *e2e) stop() { e.stopWith(syscall.SIGTERM) }

func (e *e2e) status() localapi.StatusInfo {
	e.t.Helper()
	var st localapi.StatusInfo
	if err := json.Unmarshal([]byte(e.ok("status", "--json")), &st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

func ssh(want bool) fwtest.Probe {
	return fwtest.Probe{Proto: "tcp", Src: fwtest.ClientV4, Dst: fwtest.ServerV4, Port: 22, Want: want}
}

// TestInitServeAllowDeny is the administrator's first day: init, serve,
// allow an address, see packets pass, deny it, see them dropped; the
// firewall survives the daemon stopping.
func TestInitServeAllowDeny(t *testing.T) {
	e := newE2E(t)
	e.lab.Echo(t, "tcp", 22, 443)
	e.lab.Echo(t, "udp", 5060)
	out := e.ok("init")
	for _, want := range []string{"account server: created", "127.0.0.1", "::1", "203.0.113.1", "2001:db8::1"} {
		if !strings.Contains(out, want) {
			t.Errorf("init output lacks %q:\n%s", want, out)
		}
	}
	if again := e.ok("init"); !strings.Contains(again, "(already)") {
		t.Errorf("second init should keep what exists:\n%s", again)
	}
	e.startServe()
	st := e.status()
	if !st.Firewall.Loaded() {
		t.Fatalf("firewall not loaded after serve: %+v", st.Firewall.Families)
	}
	e.lab.Check(t, probe, ssh(false))

	e.ok("account", "add", "alice", "--perms", "1,8", "--comment", "Alice on the road")
	e.ok("allow", "ip", "alice", fwtest.ClientV4.String())
	e.ok("allow", "ip", "alice", fwtest.ClientV6.String(), "--perms", "1")
	e.lab.Check(t, probe,
		ssh(true),
		fwtest.Probe{Proto: "udp", Src: fwtest.ClientV4, Dst: fwtest.ServerV4, Port: 5060, Want: true},
		fwtest.Probe{Proto: "tcp", Src: fwtest.ClientV4, Dst: fwtest.ServerV4, Port: 443, Want: false},
		fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: false},
		fwtest.Probe{Proto: "udp", Src: fwtest.ClientV6, Dst: fwtest.ServerV6, Port: 5060, Want: true},
		fwtest.Probe{Proto: "tcp", Src: fwtest.ClientV6, Dst: fwtest.ServerV6, Port: 22, Want: false},
	)
	// SIGTERM leaves the firewall in place, with its entries.
	e.stop()
	e.lab.Check(t, probe, ssh(true),
		fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: false})
	e.fails(exitNotRunning, "not running", "status")

	e.startServe()
	e.ok("deny", fwtest.ClientV4.String())
	e.lab.Check(t, probe, ssh(false),
		fwtest.Probe{Proto: "udp", Src: fwtest.ClientV6, Dst: fwtest.ServerV6, Port: 5060, Want: true})
	e.ok("account", "del", "alice")
	e.lab.Check(t, probe,
		fwtest.Probe{Proto: "udp", Src: fwtest.ClientV6, Dst: fwtest.ServerV6, Port: 5060, Want: false})
	if accts := e.ok("account", "list"); strings.Contains(accts, "alice") {
		t.Errorf("alice still listed:\n%s", accts)
	}
}

// TestBadInputLeavesFirewallIntact throws malformed and dangerous input at
// the CLI: each gets a clear error naming the value and the kernel rules
// do not change by a byte.
func TestBadInputLeavesFirewallIntact(t *testing.T) {
	e := newE2E(t)
	e.ok("init")
	e.startServe()
	e.ok("account", "add", "bob", "--perms", "8")
	before, entries := e.kernel(), len(e.status().Entries)
	cases := []struct {
		args []string
		msg  string
	}{
		{[]string{"allow", "ip", "bob", "203.0.113.999"}, `"203.0.113.999"`},
		{[]string{"allow", "ip", "bob", "1.2.3.4;iptables -F"}, `"1.2.3.4;iptables -F"`},
		{[]string{"allow", "cidr", "bob", "0.0.0.0/0"}, "--force"},
		{[]string{"allow", "cidr", "bob", "::/0"}, "--force"},
		{[]string{"allow", "ip", "bob", "224.0.0.5"}, "multicast"},
		{[]string{"allow", "ip", "bob", "0.0.0.0"}, "unspecified"},
		{[]string{"allow", "cidr", "bob", "203.0.113.7/24"}, "203.0.113.0/24"},
		{[]string{"allow", "fqdn", "bob", "evil$(reboot).example"}, "not allowed"},
		{[]string{"allow", "ip", "bob", "203.0.113.7", "--comment", "x\n-A INPUT -j ACCEPT"}, "control character"},
		{[]string{"allow", "ip", "bob", "203.0.113.7", "--perms", "1,x"}, `"x"`},
		{[]string{"allow", "ip", "nobody", "203.0.113.7"}, `account "nobody": not found`},
		{[]string{"account", "add", "Bad Name", "--perms", "1"}, `"Bad Name"`},
		{[]string{"account", "add", "eve", "--perms", "12a"}, "12a"},
		{[]string{"account", "add", "bob", "--perms", "1"}, "already exists"},
		{[]string{"deny", "203.0.113.99"}, "not found"},
	}
	for _, c := range cases {
		e.fails(exitError, c.msg, c.args...)
	}
	e.fails(exitUsage, "--perms is required", "account", "add", "eve")
	e.fails(exitUsage, "want 2 argument", "allow", "ip", "bob")
	if after := e.kernel(); after != before {
		t.Fatalf("refused input changed the kernel:\n%s\n---\n%s", before, after)
	}
	if st := e.status(); len(st.Entries) != entries {
		t.Fatalf("refused input stored something: %+v", st.Entries)
	}
}

// kernel is a snapshot of the namespace's firewall to compare before and
// after: rules and sets of both backends, without counters (nft -s), which
// stray traffic moves.
func (e *e2e) kernel() string {
	e.t.Helper()
	var b strings.Builder
	for _, c := range [][]string{{"iptables", "-S"}, {"ip6tables", "-S"}, {"ipset", "list"}, {"nft", "-s", "list", "ruleset"}} {
		out, err := e.lab.Exec(e.lab.Server, c...)
		if err != nil {
			e.t.Fatal(err)
		}
		b.WriteString(stripDropAccounting(out))
	}
	return b.String()
}

// TestSSHSessionIsNeverDropped runs the CLI as if from an SSH session:
// removing the entry that admits it is refused unless forced.
func TestSSHSessionIsNeverDropped(t *testing.T) {
	e := newE2E(t)
	e.lab.Echo(t, "tcp", 22)
	e.env = []string{"SSH_CONNECTION=" + fwtest.ClientV4.String() + " 51234 " + fwtest.ServerV4.String() + " 22"}
	out := e.ok("init")
	if !strings.Contains(out, "account admin: created") || !strings.Contains(out, fwtest.ClientV4.String()) {
		t.Fatalf("init did not whitelist the SSH client:\n%s", out)
	}
	e.startServe()
	e.lab.Check(t, probe, ssh(true))
	e.fails(exitError, "lock out", "deny", fwtest.ClientV4.String())
	e.fails(exitError, "lock out", "account", "del", "admin")
	e.lab.Check(t, probe, ssh(true))
	// A second way in makes the removal safe.
	e.ok("account", "add", "ops", "--perms", "8")
	e.ok("allow", "cidr", "ops", "203.0.113.0/24")
	e.ok("account", "del", "admin")
	e.lab.Check(t, probe, ssh(true))
	e.fails(exitError, "lock out", "account", "del", "ops")
	e.ok("account", "del", "ops", "--force")
	e.lab.Check(t, probe, ssh(false))
}

// TestConcurrentWriters sends many changes at once through the daemon:
// none is lost, in the store or in the kernel.
func TestConcurrentWriters(t *testing.T) {
	e := newE2E(t)
	e.ok("init")
	e.startServe()
	e.ok("account", "add", "many", "--perms", "1")
	base := len(e.status().Entries)
	cfg, err := daemon.LoadConfig(e.cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	c := localapi.NewClient(cfg.Socket)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				_, err := c.AddEntry(context.Background(), localapi.AddEntryRequest{Account: "many", Kind: "ip", Value: fmt.Sprintf("198.51.%d.%d", w, i+1)})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := e.status()
	if n := len(st.Entries); n != writers*each+base {
		t.Errorf("store has %d entries, want %d", n, writers*each+base)
	}
	for _, s := range st.Firewall.Sets {
		if s.Name == "dialgate-1-v4" && len(s.Entries) != writers*each {
			t.Errorf("kernel set %s has %d members, want %d", s.Name, len(s.Entries), writers*each)
		}
	}
}

// TestCrashAndRestart kills the daemon with SIGKILL: the kernel keeps
// filtering, and a new daemon starts from the store and agrees with it.
func TestCrashAndRestart(t *testing.T) {
	e := newE2E(t)
	e.lab.Echo(t, "tcp", 22)
	e.ok("init")
	e.startServe()
	e.ok("account", "add", "carol", "--perms", "8")
	e.ok("allow", "ip", "carol", fwtest.ClientV4.String())
	entries := len(e.status().Entries)
	e.stopWith(syscall.SIGKILL)
	e.lab.Check(t, probe, ssh(true),
		fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: false})
	// init refuses nothing here (the daemon is dead); with a live daemon
	// it must say the daemon holds the database.
	e.startServe()
	e.fails(exitError, "dialgate serve", "init")
	e.lab.Check(t, probe, ssh(true))
	if st := e.status(); !st.Firewall.Loaded() || len(st.Entries) != entries {
		t.Fatalf("after restart: loaded=%v entries=%d", st.Firewall.Loaded(), len(st.Entries))
	}
	e.ok("reload")
	e.lab.Check(t, probe, ssh(true),
		fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: false})
	e.stop()
	e.fails(exitUsage, "--yes", "remove")
	e.ok("remove", "--yes")
	e.lab.Check(t, probe, fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: true})
}

// TestFQDNEntry whitelists a dynamic-DNS name. `ip netns exec` mounts
// /etc/netns/<ns>/hosts over /etc/hosts, so the daemon's real resolver
// answers from a file this test controls; changing it and reloading
// moves the whitelist to the new address.
func TestFQDNEntry(t *testing.T) {
	e := newE2E(t)
	e.lab.Echo(t, "tcp", 22)
	hostsDir := filepath.Join("/etc/netns", e.lab.Server)
	if err := os.MkdirAll(hostsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(hostsDir) })
	setHosts := func(addr string) {
		t.Helper()
		line := ""
		if addr != "" {
			line = addr + " home.dyn.example\n"
		}
		if err := os.WriteFile(filepath.Join(hostsDir, "hosts"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
		// Go's resolver re-reads /etc/hosts at most every 5 seconds.
		time.Sleep(5100 * time.Millisecond)
	}
	if err := os.WriteFile(filepath.Join(hostsDir, "hosts"), []byte(fwtest.ClientV4.String()+" home.dyn.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.ok("init")
	e.startServe()
	e.ok("account", "add", "dana", "--perms", "8")
	out := e.ok("allow", "fqdn", "dana", "HOME.dyn.example.")
	if !strings.Contains(out, "resolves to "+fwtest.ClientV4.String()) {
		t.Fatalf("allow fqdn output:\n%s", out)
	}
	e.lab.Check(t, probe, ssh(true),
		fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: false})
	setHosts(fwtest.OtherV4.String())
	e.ok("fqdn", "refresh")
	e.lab.Check(t, probe, ssh(false),
		fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: true})
	// A name that stops resolving keeps its last-known address.
	setHosts("")
	e.ok("fqdn", "refresh", "home.dyn.example")
	e.lab.Check(t, probe, fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: true})
	st := e.status()
	var found bool
	for _, en := range st.Entries {
		if en.Value == "home.dyn.example" {
			found = true
			if en.Error == "" || len(en.Addrs) != 1 || en.Addrs[0] != fwtest.OtherV4.String() {
				t.Errorf("failed name should keep its address and show the error: %+v", en)
			}
		}
	}
	if !found {
		t.Fatal("fqdn entry missing from status")
	}
	e.ok("deny", "home.dyn.example")
	e.lab.Check(t, probe, fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: false})
}

// TestSIPDomainCLI: secret domains through the CLI reach the kernel rules;
// bad domains are refused with the firewall untouched.
func TestSIPDomainCLI(t *testing.T) {
	e := newE2E(t)
	e.lab.Echo(t, "udp", 5060)
	e.ok("init")
	e.startServe()
	before := e.kernel()
	for _, bad := range []string{`evil".example`, "two words.example", "x", strings.Repeat("a", 60) + "." + strings.Repeat("b", 60)} {
		e.fails(exitError, "", "sip-domain", "add", bad)
	}
	if e.kernel() != before {
		t.Fatal("refused domain changed the kernel")
	}
	out, warn, _ := e.run("sip-domain", "add", "XQ356JQ.example.org")
	if !strings.Contains(warn, "anyone who knows") {
		t.Errorf("no warning on add: %q", warn)
	}
	if want := "secret SIP domain xq356jq.example.org added: REGISTER sip:xq356jq.example.org now gets in from any address (1 secret SIP domain in all)\n"; out != want {
		t.Errorf("add said %q, want %q", out, want)
	}
	if l := e.ok("sip-domain", "list"); !strings.Contains(l, "xq356jq.example.org") {
		t.Fatalf("list: %s", l)
	}
	e.fails(exitError, "already exists", "sip-domain", "add", "xq356jq.example.org")
	reg := func(domain string, want bool) fwtest.Probe {
		return fwtest.Probe{Proto: "udp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 5060, Want: want,
			Payload: []byte("REGISTER sip:" + domain + " SIP/2.0\r\nCSeq: 1 REGISTER\r\n\r\n")}
	}
	e.lab.Check(t, probe, reg("xq356jq.example.org", true), reg("pbx.example.org", false))
	for _, tc := range []struct{ args, want string }{
		{"add second.example.org", "secret SIP domain second.example.org added: REGISTER sip:second.example.org now gets in from any address (2 secret SIP domains in all)\n"},
		{"del Second.Example.org", "secret SIP domain second.example.org removed: REGISTER sip:second.example.org gets in only from addresses whitelisted for SIP (1 secret SIP domain left)\n"},
		{"del xq356jq.example.org", "secret SIP domain xq356jq.example.org removed: REGISTER sip:xq356jq.example.org gets in only from addresses whitelisted for SIP (no secret SIP domains left)\n"},
	} {
		if out := e.ok(append([]string{"sip-domain"}, strings.Fields(tc.args)...)...); out != tc.want {
			t.Errorf("sip-domain %s said %q, want %q", tc.args, out, tc.want)
		}
	}
	e.lab.Check(t, probe, reg("xq356jq.example.org", false))
	e.fails(exitError, `secret SIP domain "xq356jq.example.org" not found, nothing removed`, "sip-domain", "del", "XQ356JQ.example.org")
	e.fails(exitError, `secret SIP domain "never.example.org" not found`, "sip-domain", "del", "never.example.org")
}

// TestReloadConfirm: a reload with --confirm that nobody confirms is
// rolled back, with an audit record; a confirmed one stays.
func TestReloadConfirm(t *testing.T) {
	e := newE2E(t)
	e.lab.Echo(t, "tcp", 22, 2222)
	e.ok("init")
	e.startServe()
	e.ok("account", "add", "ops", "--perms", "8")
	e.ok("allow", "ip", "ops", fwtest.ClientV4.String())
	ssh2222 := func(want bool) fwtest.Probe {
		return fwtest.Probe{Proto: "tcp", Src: fwtest.ClientV4, Dst: fwtest.ServerV4, Port: 2222, Want: want}
	}
	e.lab.Check(t, probe, ssh(true), ssh2222(false))
	// Move SSH to 2222: port 22 closes for ops.
	e.appendConfig("[firewall.ports]\nssh = [\"tcp/2222\"]\n")
	e.fails(exitError, "no reload is waiting", "confirm")
	out := e.ok("reload", "--confirm", "2s")
	if !strings.Contains(out, "dialgate confirm") {
		t.Errorf("reload --confirm should explain what to do:\n%s", out)
	}
	e.lab.Check(t, probe, ssh(false), ssh2222(true))
	e.fails(exitError, "already waiting", "reload", "--confirm", "2s")
	time.Sleep(3 * time.Second)
	e.lab.Check(t, probe, ssh(true), ssh2222(false))
	if a := e.ok("audit"); !strings.Contains(a, "reload.rollback") {
		t.Errorf("no rollback audit record:\n%s", a)
	}
	e.ok("reload", "--confirm", "2s")
	e.ok("confirm")
	time.Sleep(3 * time.Second)
	e.lab.Check(t, probe, ssh(false), ssh2222(true))
}

// TestImportTM3: a Travelin' Man 3 firewall file and account files are
// imported in one go; the mapped addresses get exactly their services.
func TestImportTM3(t *testing.T) {
	e := newE2E(t)
	e.lab.Echo(t, "tcp", 22, 443)
	e.lab.Echo(t, "udp", 5060)
	dir := t.TempDir()
	conf := `*filter
:INPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -s ` + fwtest.OtherV4.String() + ` -j ACCEPT
# End of Trusted Provider Section
# // New entry for road.iptables
-A INPUT -p udp -m udp -s ` + fwtest.ClientV4.String() + ` --dport 5060:5069 -j ACCEPT
-A INPUT -p tcp -m multiport -s ` + fwtest.ClientV4.String() + ` --dports 80,9080 -j ACCEPT
# // End entry for road.iptables
-A INPUT -p tcp -m tcp -s 203.0.113.99 --dport 5038 -j ACCEPT
-A INPUT -j REJECT --reject-with icmp-host-prohibited
COMMIT
`
	fw := filepath.Join(dir, "iptables")
	if err := os.WriteFile(fw, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	acct := filepath.Join(dir, "road.iptables")
	if err := os.WriteFile(acct, []byte(fwtest.ClientV4.String()+" "+fwtest.ClientV4.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.ok("init")
	e.startServe()
	dry := e.ok("import", "tm3", "--dry-run", fw, acct)
	for _, want := range []string{"account road perms 1,4", "no dialgate service covers tcp/5038", "dry run"} {
		if !strings.Contains(dry, want) {
			t.Errorf("dry run lacks %q:\n%s", want, dry)
		}
	}
	if strings.Contains(e.ok("account", "list"), "road") {
		t.Fatal("dry run imported")
	}
	e.fails(exitError, "no such file", "import", "tm3", filepath.Join(dir, "missing"))
	out := e.ok("import", "tm3", fw, acct)
	if !strings.Contains(out, "imported: 2 accounts created") {
		t.Fatalf("import:\n%s", out)
	}
	e.lab.Check(t, probe,
		fwtest.Probe{Proto: "udp", Src: fwtest.ClientV4, Dst: fwtest.ServerV4, Port: 5060, Want: true},
		fwtest.Probe{Proto: "tcp", Src: fwtest.ClientV4, Dst: fwtest.ServerV4, Port: 443, Want: true},
		ssh(false),
		fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: true},
	)
	if again := e.ok("import", "tm3", fw, acct); !strings.Contains(again, "already present") || !strings.Contains(again, "0 entries added") {
		t.Errorf("second import should add nothing:\n%s", again)
	}
}

// TestRestore: after the kernel lost everything (a reboot) and with no
// daemon, restore puts the stored whitelist back; with the daemon
// running it does nothing.
func TestRestore(t *testing.T) {
	e := newE2E(t)
	e.lab.Echo(t, "tcp", 22)
	e.ok("init")
	e.startServe()
	e.ok("account", "add", "ops", "--perms", "8")
	e.ok("allow", "ip", "ops", fwtest.ClientV4.String())
	if out := e.ok("restore"); !strings.Contains(out, "nothing to restore") {
		t.Errorf("restore with the daemon up:\n%s", out)
	}
	e.stop()
	e.ok("remove", "--yes")
	e.lab.Check(t, probe, from(fwtest.OtherV4, true))
	e.ok("restore")
	e.lab.Check(t, probe, ssh(true), from(fwtest.OtherV4, false))
}

// TestNFTablesBackend runs the administrator's first day on the nftables
// backend: the same commands, the same packets, one inet table instead
// of iptables chains and ipsets; remove takes it out.
func TestNFTablesBackend(t *testing.T) {
	e := newE2E(t)
	e.lab.Echo(t, "tcp", 22)
	e.lab.Echo(t, "udp", 5060)
	e.appendConfig("[firewall]\nbackend = \"nftables\"\n")
	e.ok("init")
	e.startServe()
	if !e.status().Firewall.Loaded() {
		t.Fatal("nftables firewall not loaded")
	}
	e.lab.Check(t, probe, ssh(false))
	e.ok("account", "add", "alice", "--perms", "1,8")
	e.ok("allow", "ip", "alice", fwtest.ClientV4.String())
	e.ok("allow", "ip", "alice", fwtest.ClientV6.String(), "--perms", "1")
	e.lab.Check(t, probe, ssh(true), from(fwtest.OtherV4, false),
		fwtest.Probe{Proto: "udp", Src: fwtest.ClientV6, Dst: fwtest.ServerV6, Port: 5060, Want: true},
		fwtest.Probe{Proto: "tcp", Src: fwtest.ClientV6, Dst: fwtest.ServerV6, Port: 22, Want: false})
	if out, _ := e.lab.Exec(e.lab.Server, "iptables", "-S"); strings.Contains(out, "DIALGATE") {
		t.Errorf("the nftables backend left iptables rules:\n%s", out)
	}
	if out, err := e.lab.Exec(e.lab.Server, "nft", "list", "tables"); err != nil || !strings.Contains(out, "dialgate") {
		t.Fatalf("no dialgate table: %v\n%s", err, out)
	}
	e.ok("deny", fwtest.ClientV4.String())
	e.lab.Check(t, probe, ssh(false))
	e.stop()
	e.ok("remove", "--yes")
	if out, _ := e.lab.Exec(e.lab.Server, "nft", "list", "tables"); strings.Contains(out, "dialgate") {
		t.Errorf("remove left the table:\n%s", out)
	}
	e.lab.Check(t, probe, from(fwtest.OtherV4, true))
}
