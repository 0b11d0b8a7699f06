package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dialgate/dialgate/daemon"
)

// TestGenDocsMan: dialgate(8) carries the sections cobra has no place
// for, with the exit codes main uses, and dialgate.toml(5) the config
// init writes, line for line.
func TestGenDocsMan(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "1764547200") // 2025-12-01
	root := newRoot()
	root.SetArgs([]string{"gen-docs", "--man", dir})
	root.SetOut(new(strings.Builder))
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	page := read("dialgate.8")
	order := []string{".SH OPTIONS", ".SH SSH LOCKOUT", ".SH FILES", ".SH EXIT STATUS", ".SH EXAMPLES", ".SH SEE ALSO\n\\fBdialgate.toml(5)\\fP, \\fBdialgate-account(8)\\fP"}
	last := -1
	for _, s := range order {
		i := strings.Index(page, s)
		if i < 0 || i < last {
			t.Fatalf("dialgate.8: %q missing or out of order:\n%s", s, page)
		}
		last = i
	}
	if strings.Count(page, ".SH SEE ALSO") != 1 {
		t.Errorf("dialgate.8: SEE ALSO more than once")
	}
	for _, f := range []string{"/etc/dialgate/dialgate.toml", daemon.DefaultConfig().DB, daemon.DefaultConfig().Socket, daemon.LockDir} {
		if !strings.Contains(page, f) {
			t.Errorf("dialgate.8 FILES does not name %s", f)
		}
	}
	for _, code := range []int{exitOK, exitError, exitUsage, exitNotRunning, exitNotProtected} {
		if !strings.Contains(page, ".B "+strconv.Itoa(code)+"\n") {
			t.Errorf("dialgate.8 EXIT STATUS lacks %d", code)
		}
	}

	cfg := read("dialgate.toml.5")
	if !strings.HasPrefix(cfg, ".nh\n.TH \"DIALGATE.TOML\" \"5\" \"Dec 2025\"") {
		t.Errorf("dialgate.toml.5 header: %.80q", cfg)
	}
	body := cfg[strings.Index(cfg, ".SH THE DEFAULT FILE\n.nf\n"):]
	for _, line := range strings.Split(daemon.DefaultConfigText(daemon.DefaultConfig()), "\n") {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("dialgate.toml.5 lacks the config line %q", line)
		}
	}
}
