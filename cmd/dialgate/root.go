package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/dialgate/dialgate/daemon"
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
	root.AddCommand(newGenDocsCmd(root))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newInitCmd(g), newServeCmd(g), newAccountCmd(g), newAllowCmd(g), newDenyCmd(g),
		newStatusCmd(g), newReloadCmd(g), newRemoveCmd(g), newGrantsCmd(g), newTestCallCmd(g), newAuditCmd(g), newLockoutsCmd(g), newFQDNCmd(g), newSIPDomainCmd(g), newConfirmCmd(g), newProvidersCmd(g), newImportCmd(g), newDialplanCmd(g), newRestoreCmd(g), newExportCmd(g), newEntryCmd(g), newDropsCmd(g),
	)
	root.AddCommand(newDBCmd(g))
	return root
}

// now is the clock the CLI stamps backups with.
func (g *globals) now() time.Time { return time.Now() }

func (g *globals) config() (daemon.Config, error) {
	return daemon.LoadConfig(g.configPath, g.explicit)
}

// client returns a LocalAPI client that carries the caller's SSH session
// so the daemon can refuse to cut it off, or, when the caller runs in one
// whose address cannot be found, says that the guard is off.
func (g *globals) client(force bool) (*daemon.Client, error) {
	cfg, err := g.config()
	if err != nil {
		return nil, err
	}
	c := daemon.NewClient(cfg.Socket)
	s := sshpeer.Find() // through sudo and su too
	c.SSH, c.Force = s.Addr, force
	if s.Lost() {
		c.SSHUnknown, c.Warn = s.Warning(), os.Stderr
	}
	return c, nil
}

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s: want %d argument(s), got %d; see --help", cmd.CommandPath(), n, len(args))}
		}
		return nil
	}
}
