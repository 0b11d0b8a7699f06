package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// status answers "is this server protected" first and says it with its
// exit code: 0 protected, 3 protected but no daemon, 4 not protected.
func TestStatusTellsTheTruth(t *testing.T) {
	e := newE2E(t)
	e.ok("init")
	e.startServe()
	out := e.ok("status")
	if !strings.HasPrefix(out, "protected: yes\ndaemon: running") {
		t.Errorf("status with the daemon up:\n%s", out)
	}
	js := e.ok("status", "--json")
	if !strings.HasPrefix(strings.TrimSpace(js), "{\n  \"protected\": true") {
		t.Errorf("status --json does not start with protected:\n%.300s", js)
	}
	var st struct {
		Protected bool     `json:"protected"`
		Reasons   []string `json:"reasons"`
		Daemon    bool     `json:"daemon"`
	}
	if err := json.Unmarshal([]byte(js), &st); err != nil || !st.Protected || !st.Daemon {
		t.Errorf("status --json: %+v %v", st, err)
	}
	if out, _, code := e.run("status", "--check"); code != 0 || strings.TrimSpace(out) != "protected: yes; daemon running" {
		t.Errorf("status --check: exit %d %q", code, out)
	}

	// No daemon, firewall still in the kernel: protected, exit 3.
	e.stop()
	out, _, code := e.run("status")
	if code != exitNotRunning || !strings.HasPrefix(out, "protected: yes\ndaemon: NOT running") {
		t.Errorf("status with the daemon stopped: exit %d\n%s", code, out)
	}

	// No firewall at all: NOT protected, exit 4, and why.
	e.ok("remove", "--yes")
	out, _, code = e.run("status")
	if code != exitNotProtected || !strings.HasPrefix(out, "protected: NO\n  - ") {
		t.Errorf("status without a firewall: exit %d\n%s", code, out)
	}
	if out, _, code := e.run("status", "--check"); code != exitNotProtected || !strings.HasPrefix(out, "protected: NO (") {
		t.Errorf("status --check without a firewall: exit %d %q", code, out)
	}
	e.ok("restore")
	if _, _, code := e.run("status", "--check"); code != exitNotRunning {
		t.Errorf("status --check after restore, no daemon: exit %d, want %d", code, exitNotRunning)
	}
}

// Rules ahead of dialgate's jump are listed with their verdict in the
// text status: fail2ban's chain is harmless (still protected, exit 3
// with no daemon to repair), a stranger's ACCEPT makes it NOT protected.
func TestStatusShowsRulesAhead(t *testing.T) {
	e := newE2E(t)
	e.ok("init")
	e.ok("restore")
	for _, c := range [][]string{
		{"iptables", "-N", "f2b-sshd"},
		{"iptables", "-A", "f2b-sshd", "-s", "192.0.2.66", "-j", "REJECT"},
		{"iptables", "-A", "f2b-sshd", "-j", "RETURN"},
		{"iptables", "-I", "INPUT", "1", "-p", "tcp", "-m", "multiport", "--dports", "22", "-j", "f2b-sshd"},
	} {
		if out, err := e.lab.Exec(e.lab.Server, c...); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	out, _, code := e.run("status")
	if code != exitNotRunning || !strings.HasPrefix(out, "protected: yes\n") {
		t.Fatalf("status with fail2ban ahead: exit %d\n%s", code, out)
	}
	for _, want := range []string{
		"  v4: chain loaded (", "in force, jump at INPUT position 2\n",
		"    ahead: -A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd  [harmless: ",
		"note: fail2ban's chains (f2b-sshd)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	if out, err := e.lab.Exec(e.lab.Server, "iptables", "-I", "INPUT", "1", "-s", "198.51.100.0/24", "-j", "ACCEPT"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, _, code = e.run("status")
	if code != exitNotProtected || !strings.HasPrefix(out, "protected: NO\n") {
		t.Fatalf("status with an ACCEPT ahead: exit %d\n%s", code, out)
	}
	for _, want := range []string{
		"NOT in force, jump at INPUT position 3\n",
		"    ahead: -A INPUT -s 198.51.100.0/24 -j ACCEPT  [CAN ADMIT: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}
