package main

import (
	"bytes"
	"encoding/json"
	"runtime"
	"testing"
)

// TestVersionFlag: --version prints the version, the commit and the build
// date the Makefile stamps in; --version --json the same as an object.
func TestVersionFlag(t *testing.T) {
	defer func(v, c, d string) { version, commit, date = v, c, d }(version, commit, date)
	version, commit, date = "0.2.0-3-gabc123def456", "abc123def4567890abc123def4567890abc123de", "2026-12-01T10:00:00Z"

	run := func(args ...string) string {
		t.Helper()
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatalf("dialgate %v: %v", args, err)
		}
		return out.String()
	}
	want := "dialgate 0.2.0-3-gabc123def456 (commit abc123def456, 2026-12-01, " + runtime.Version() + ")\n"
	if got := run("--version"); got != want {
		t.Errorf("--version: %q, want %q", got, want)
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(run("--version", "--json")), &v); err != nil {
		t.Fatalf("--version --json: %v", err)
	}
	if v != (versionInfo{Version: version, Commit: commit, Date: date, GoVersion: runtime.Version()}) {
		t.Errorf("--version --json: %+v", v)
	}
}
