package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dialgate/dialgate/daemon"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/sshpeer"
)

type globals struct {
	configPath string
	explicit   bool
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "dialgate",
		Short: "Whitelist firewall and phone door for Asterisk PBX servers",
		Long: `dialgate keeps an Asterisk PBX invisible to everyone it does not trust.

Trusted addresses, networks and dynamic-DNS names are whitelisted per
account with permission codes:
  0 all  1 SIP UDP  2 SIP TCP  3 IAX  4 Web  5 Webmin  6 FTP  7 TFTP  8 SSH  9 FOP
Everything else is dropped by the kernel.

Start with "dialgate init", then "dialgate serve" (or systemctl start dialgate).`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			g.explicit = cmd.Flags().Changed("config")
			if !g.explicit {
				if p := os.Getenv("DIALGATE_CONFIG"); p != "" {
					g.configPath, g.explicit = p, true
				}
			}
		},
	}
	root.PersistentFlags().StringVar(&g.configPath, "config", daemon.DefaultConfigPath, "config file (env DIALGATE_CONFIG)")
	setVersion(root)
	root.AddCommand(newGenDocsCmd(root))
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%s: %v; see '%s --help'", cmd.CommandPath(), err, cmd.CommandPath())}
	})
	root.AddCommand(
		newInitCmd(g), newServeCmd(g), newAccountCmd(g), newAllowCmd(g), newDenyCmd(g),
		newStatusCmd(g), newReloadCmd(g), newRemoveCmd(g), newGrantsCmd(g), newTestCallCmd(g), newAuditCmd(g), newLockoutsCmd(g), newFQDNCmd(g), newSIPDomainCmd(g), newConfirmCmd(g), newProvidersCmd(g), newImportCmd(g), newDialplanCmd(g), newRestoreCmd(g), newExportCmd(g), newEntryCmd(g), newExplainCmd(g), newDropsCmd(g), newBlocksCmd(g),
	)
	root.AddCommand(newDBCmd(g), newStoreCmd(g))
	addCompletions(root, g)
	root.InitDefaultCompletionCmd() // now, so that usageTree sees it
	usageTree(root)
	return root
}

// usageTree makes every usage mistake in the tree a usageError (exit 2)
// naming the bad input and pointing at --help: a parent command run
// without a subcommand or with an unknown one, and a wrong number of
// arguments.
func usageTree(c *cobra.Command) {
	for _, sub := range c.Commands() {
		usageTree(sub)
	}
	if c.HasSubCommands() && !c.Runnable() {
		c.SuggestionsMinimumDistance = 2
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(cmd *cobra.Command, args []string) error { return missingCommand(cmd, args) }
		return
	}
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			err := check(cmd, args)
			var ue usageError
			if err == nil || errors.As(err, &ue) {
				return err
			}
			return usageError{fmt.Errorf("%s: %v; see '%s --help'", cmd.CommandPath(), err, cmd.CommandPath())}
		}
	}
}

// missingCommand is the usage error of a parent command run without a
// subcommand (args empty) or with an unknown one.
func missingCommand(cmd *cobra.Command, args []string) error {
	hint := fmt.Sprintf("see '%s --help'", cmd.CommandPath())
	if len(args) == 0 {
		var subs []string
		for _, s := range cmd.Commands() {
			if s.IsAvailableCommand() {
				subs = append(subs, s.Name())
			}
		}
		return usageError{fmt.Errorf("%s: missing command, one of: %s; %s", cmd.CommandPath(), strings.Join(subs, ", "), hint)}
	}
	msg := fmt.Sprintf("%s: unknown command %q", cmd.CommandPath(), args[0])
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
	}
	return usageError{fmt.Errorf("%s; %s", msg, hint)}
}

// now is the clock the CLI stamps backups with.
func (g *globals) now() time.Time { return time.Now() }

func (g *globals) config() (daemon.Config, error) {
	return daemon.LoadConfig(g.configPath, g.explicit)
}

// client returns a LocalAPI client that carries the caller's SSH session
// so the daemon can refuse to cut it off, or, when the caller runs in one
// whose address cannot be found, says that the guard is off.
func (g *globals) client(force bool) (*localapi.Client, error) {
	cfg, err := g.config()
	if err != nil {
		return nil, err
	}
	c := localapi.NewClient(cfg.Socket)
	s := sshpeer.Find() // through sudo and su too
	c.SSH, c.Force = s.Addr, force
	if s.Lost() {
		c.SSHUnknown, c.Warn = s.Warning(), os.Stderr
	}
	return c, nil
}

// exactArgs wants n positional arguments; a missing or extra one is a
// usage error naming what is missing or what is extra.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		hint := fmt.Sprintf("see '%s --help'", cmd.CommandPath())
		switch {
		case len(args) < n:
			var want []string // the argument names in Use, before any flag
			for _, f := range strings.Fields(cmd.Use)[1:] {
				if strings.HasPrefix(f, "-") || strings.HasPrefix(f, "[") {
					break
				}
				want = append(want, f)
			}
			return usageError{fmt.Errorf("%s: missing argument: want %s (%s), got %d; usage: %s; %s",
				cmd.CommandPath(), plural(n, "argument"), strings.Join(want, " "), len(args), cmd.UseLine(), hint)}
		case len(args) > n:
			return usageError{fmt.Errorf("%s: unexpected argument %q: want %s, got %d; %s",
				cmd.CommandPath(), args[n], plural(n, "argument"), len(args), hint)}
		}
		return nil
	}
}
