package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// runSelf runs the test binary as dialgate, outside any lab: usage errors
// are found before any command touches a daemon, a kernel or a file.
func runSelf(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, append([]string{"--config", t.TempDir() + "/none.toml"}, args...)...)
	cmd.Env = append(os.Environ(), beMain+"=1", "DIALGATE_CONFIG=")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// TestUsageErrorsExit2: an unknown command or flag, a wrong number of
// arguments and a parent command without its subcommand exit 2 with a
// message naming the bad input and the help to read.
func TestUsageErrorsExit2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"frob"}, []string{`unknown command "frob"`, "see 'dialgate --help'"}},
		{[]string{"acount"}, []string{`unknown command "acount"`, "did you mean account?"}},
		{[]string{"account", "frob"}, []string{`dialgate account: unknown command "frob"`, "see 'dialgate account --help'"}},
		{[]string{"--frob"}, []string{"unknown flag: --frob", "see 'dialgate --help'"}},
		{[]string{"account", "list", "--frob"}, []string{"dialgate account list: unknown flag: --frob", "see 'dialgate account list --help'"}},
		{[]string{"status", "-z"}, []string{"dialgate status: unknown shorthand flag: 'z'", "see 'dialgate status --help'"}},
		{[]string{"reload", "--confirm", "soon"}, []string{"dialgate reload:", `"soon"`, "--confirm"}},
		{[]string{"account", "add"}, []string{"dialgate account add: missing argument", "(NAME)", "see 'dialgate account add --help'"}},
		{[]string{"allow", "ip", "alice"}, []string{"dialgate allow ip: missing argument", "(ACCOUNT VALUE), got 1"}},
		{[]string{"deny", "e1", "e2"}, []string{`dialgate deny: unexpected argument "e2"`, "see 'dialgate deny --help'"}},
		{[]string{"status", "extra"}, []string{`dialgate status: unexpected argument "extra"`}},
		{[]string{"lockouts", "clear", "a", "b"}, []string{"dialgate lockouts clear:", "at most 1", "see 'dialgate lockouts clear --help'"}},
		{[]string{"db", "check", "a", "b"}, []string{"dialgate db check:", "see 'dialgate db check --help'"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := runSelf(t, tc.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d (usage)\nstdout %q\nstderr %q", code, exitUsage, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
			if strings.Count(errOut, "\n") != 1 || strings.HasPrefix(errOut, "dialgate: dialgate") {
				t.Errorf("want one line naming the command once, got %q", errOut)
			}
		})
	}
}

// TestParentCommandsExit2 walks the command tree: every command that only
// groups others, run alone, is a usage error that lists its subcommands;
// run with an unknown subcommand, one that names it.
func TestParentCommandsExit2(t *testing.T) {
	var parents []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() {
			parents = append(parents, c)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot())
	if len(parents) < 10 {
		t.Fatalf("found %d parent commands, want the whole tree", len(parents))
	}
	for _, p := range parents {
		path := strings.Fields(p.CommandPath())[1:]
		t.Run(p.CommandPath(), func(t *testing.T) {
			_, errOut, code := runSelf(t, path...)
			if code != exitUsage || !strings.Contains(errOut, p.CommandPath()+": missing command, one of: ") ||
				!strings.Contains(errOut, "see '"+p.CommandPath()+" --help'") {
				t.Errorf("%s: exit %d, stderr %q; want exit 2, the subcommands and the help hint", p.CommandPath(), code, errOut)
			}
			for _, sub := range p.Commands() {
				if sub.IsAvailableCommand() && !strings.Contains(errOut, sub.Name()) {
					t.Errorf("%s: stderr %q does not offer %s", p.CommandPath(), errOut, sub.Name())
				}
			}
			_, errOut, code = runSelf(t, append(path, "nosuchcommand")...)
			if code != exitUsage || !strings.Contains(errOut, `unknown command "nosuchcommand"`) {
				t.Errorf("%s nosuchcommand: exit %d, stderr %q; want exit 2 naming it", p.CommandPath(), code, errOut)
			}
		})
	}
}

// TestExitCodes maps errors to the README's exit codes.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "dialgate.toml")
	conf := fmt.Sprintf("db = %q\nsocket = %q\n", filepath.Join(dir, "dialgate.db"), filepath.Join(dir, "dialgate.sock"))
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--version"}, exitOK},
		{[]string{"account", "--help"}, exitOK},
		{[]string{"account"}, exitUsage},
		{[]string{"status"}, exitError}, // the config file asked for is missing
		{[]string{"account", "list", "--config", cfg}, exitNotRunning},
	} {
		if _, errOut, code := runSelf(t, tc.args...); code != tc.want {
			t.Errorf("dialgate %s: exit %d, want %d (stderr %q)", strings.Join(tc.args, " "), code, tc.want, errOut)
		}
	}
}

// TestHelpPlaceholders: a flag's --help placeholder says what to type
// (`--confirm DURATION`, with an example), not its Go type, and no
// example confirms a `reload --confirm` in the same breath, which would
// defeat the rollback.
func TestHelpPlaceholders(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			name, usage := pflag.UnquoteUsage(f)
			if f.Value.Type() == "duration" && (name != "DURATION" || !strings.Contains(usage, "e.g.") && f.Name != "timeout") {
				t.Errorf("%s --%s: placeholder %q, usage %q; want DURATION and an example", c.CommandPath(), f.Name, name, usage)
			}
		})
		for _, line := range strings.Split(c.Example, "\n") {
			if strings.Contains(line, "--confirm") && strings.Contains(strings.SplitN(line, "#", 2)[0], "dialgate confirm") {
				t.Errorf("%s: example %q confirms in the same command line", c.CommandPath(), line)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	root := newRoot()
	walk(root)
	reload, _, err := root.Find([]string{"reload"})
	if err != nil {
		t.Fatal(err)
	}
	var help bytes.Buffer
	reload.SetOut(&help)
	if err := reload.Help(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--confirm DURATION", "e.g. 2m", "dialgate reload --confirm 2m", "\n  dialgate confirm"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("reload --help lacks %q:\n%s", want, help.String())
		}
	}
}
