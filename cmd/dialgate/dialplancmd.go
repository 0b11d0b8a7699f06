package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/dialgate/dialgate/dialplan"
	"github.com/dialgate/dialgate/localapi"
)

func newDialplanCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "dialplan", Short: "The Asterisk dialplan include that sends callers to the phone door"}
	var o dialplan.Options
	flags := func(c *cobra.Command) {
		c.Flags().StringVar(&o.Extension, "extension", dialplan.DefaultExtension, "access extension callers dial")
		c.Flags().StringVar(&o.Context, "context", dialplan.DefaultContext, "context the access extension goes in")
		c.Flags().StringVar(&o.AGIURL, "agi-url", "", "FastAGI URL of the door (default from agi.listen)")
		c.Flags().BoolVar(&o.NoAccessExtension, "no-access-extension", false, "only the dialgate-authorize context (route to it from a FreePBX Custom Destination)")
	}
	generate := func() (string, error) {
		if o.AGIURL == "" {
			cfg, err := g.config()
			if err != nil {
				return "", err
			}
			o.AGIURL = "agi://" + cfg.AGI.Listen + "/authorize"
		}
		return dialplan.Generate(o)
	}
	print := &cobra.Command{
		Use:   "print",
		Short: "Print the include (a dialgate-authorize context and the access extension)",
		Example: `  dialgate dialplan print
  dialgate dialplan print --extension '*48' --context from-internal-custom`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			text, err := generate()
			if err != nil {
				return usageError{err}
			}
			cmd.Print(text)
			return nil
		},
	}
	flags(print)
	var file string
	var noReload bool
	install := &cobra.Command{
		Use:   "install [--file FILE]",
		Short: "Write the include between dialgate markers in FILE (idempotent, with a backup) and reload the dialplan",
		Example: `  dialgate dialplan install --file /etc/asterisk/extensions_custom.conf
  dialgate dialplan install --file /etc/asterisk/extensions.conf --context from-internal`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			text, err := generate()
			if err != nil {
				return usageError{err}
			}
			changed, backup, err := dialplan.Install(file, text, "", g.now())
			if err != nil {
				return err
			}
			if !changed {
				cmd.Printf("%s already holds this include; nothing changed\n", file)
				return nil
			}
			if backup != "" {
				cmd.Printf("wrote %s (backup %s)\n", file, backup)
			} else {
				cmd.Printf("wrote %s\n", file)
			}
			if noReload {
				cmd.Println("not reloaded: run `asterisk -rx 'dialplan reload'`")
				return nil
			}
			c, err := g.client(false)
			if err != nil {
				return err
			}
			if err := c.ReloadDialplan(cmd.Context()); err != nil {
				if errors.Is(err, localapi.ErrNotRunning) || errors.Is(err, localapi.ErrAMIDisabled) {
					cmd.Printf("not reloaded (%v): run `asterisk -rx 'dialplan reload'`\n", err)
					return nil
				}
				return err
			}
			cmd.Println("dialplan reloaded through AMI")
			return nil
		},
	}
	flags(install)
	install.Flags().StringVar(&file, "file", "/etc/asterisk/extensions_custom.conf", "Asterisk config file to edit (FreePBX: extensions_custom.conf)")
	install.Flags().BoolVar(&noReload, "no-reload", false, "do not reload the dialplan")
	var user, secret string
	var permit []string
	manager := &cobra.Command{
		Use:   "manager-conf",
		Short: "Print the least-privilege manager.conf user dialgate's AMI login needs",
		Example: `  dialgate dialplan manager-conf >> /etc/asterisk/manager_custom.conf
  # then put the same username and secret in [ami] of dialgate.toml`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if secret == "" {
				secret = rand.Text() // 26 characters, 130 bits
			}
			var ps []netip.Prefix
			for _, p := range permit {
				pfx, err := netip.ParsePrefix(p)
				if err != nil {
					return usageError{fmt.Errorf("--permit %q: %w", p, err)}
				}
				ps = append(ps, pfx)
			}
			text, err := dialplan.ManagerStanza(user, secret, ps)
			if err != nil {
				return usageError{err}
			}
			cmd.Print(text)
			cmd.PrintErrf("put in dialgate.toml:\n[ami]\nenabled = true\nusername = %q\nsecret = %q\n", user, secret)
			return nil
		},
	}
	manager.Flags().StringVar(&user, "user", "dialgate", "manager.conf user name")
	manager.Flags().StringVar(&secret, "secret", "", "secret (default: a random one, printed once)")
	manager.Flags().StringSliceVar(&permit, "permit", nil, "networks allowed to log in (default 127.0.0.1/32)")
	cmd.AddCommand(print, install, manager)
	return cmd
}
