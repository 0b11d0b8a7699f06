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
