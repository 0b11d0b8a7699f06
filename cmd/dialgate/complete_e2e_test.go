package main

import (
	"strings"
	"testing"
)

// Shell completion offers the daemon's account, entry and provider
// names (cobra's __complete is what bash and zsh call), and nothing, not
// an error, when the daemon is down.
func TestCompletionNames(t *testing.T) {
	e := newE2E(t)
	e.ok("init")
	e.startServe()
	e.ok("account", "add", "alice", "--perms", "8", "--comment", "sales")
	out := e.ok("allow", "ip", "alice", "203.0.113.7")
	id := strings.SplitN(out, ":", 2)[0]
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"account", "del", ""}, []string{"alice\t8 sales", "server"}},
		{[]string{"allow", "ip", ""}, []string{"alice"}},
		{[]string{"allow", "ip", "alice", ""}, nil}, // the value: nothing to offer
		{[]string{"deny", ""}, []string{id + "\tip 203.0.113.7 of alice"}},
		{[]string{"entry", "set", ""}, []string{id}},
		{[]string{"providers", "enable", "voipms", ""}, []string{"telnyx"}},
	}
	for _, tt := range tests {
		out := e.ok(append([]string{"__complete"}, tt.args...)...)
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("complete %q: lacks %q:\n%s", tt.args, w, out)
			}
		}
		if tt.want == nil && strings.Contains(out, "alice") {
			t.Errorf("complete %q offers names:\n%s", tt.args, out)
		}
	}
	e.stop()
	out, errOut, code := e.run("__complete", "account", "del", "")
	if code != 0 || strings.Contains(out, "alice") || strings.Contains(errOut, "error") {
		t.Errorf("daemon down: exit %d, %q %q", code, out, errOut)
	}
}
