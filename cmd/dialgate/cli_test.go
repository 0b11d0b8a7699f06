package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestEveryCommandHasHelp walks the command tree: every command that
// does something has a short description and an example, and every
// listing offers --json.
func TestEveryCommandHasHelp(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if c.Hidden || !c.Runnable() || c.HasSubCommands() || c.Name() == "help" || strings.HasPrefix(c.CommandPath(), "dialgate completion") {
			return
		}
		if c.Short == "" {
			t.Errorf("%s: no short description", c.CommandPath())
		}
		if c.Example == "" {
			t.Errorf("%s: no example in --help", c.CommandPath())
		}
		if (c.Name() == "list" || c.Name() == "status" || c.Name() == "audit") && c.Flags().Lookup("json") == nil {
			t.Errorf("%s: a listing without --json", c.CommandPath())
		}
	}
	walk(newRoot())
}
