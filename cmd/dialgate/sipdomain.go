package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newSIPDomainCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sip-domain",
		Short: "Secret SIP domains: REGISTER for one gets in from anywhere; other REGISTER/OPTIONS probes are dropped",
		Long: `A secret SIP domain lets phones register from any address, without a
whitelist entry, as long as they REGISTER to sip:<secret domain>. SIP
scanners, which register to the server's address or a guessed name, and
OPTIONS probes from addresses not whitelisted for SIP, are dropped.

Anyone who learns the domain can reach SIP: treat it like a password.`,
	}
	print := func(cmd *cobra.Command, ds []string) {
		if len(ds) == 0 {
			cmd.Println("no secret SIP domains")
			return
		}
		cmd.Println(strings.Join(ds, "\n"))
	}
	add := &cobra.Command{
		Use:     "add DOMAIN",
		Short:   "Admit REGISTER sip:DOMAIN from anywhere",
		Example: "  dialgate sip-domain add xq356jq.example.org",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(false)
			if err != nil {
				return err
			}
			ds, err := c.AddSIPDomain(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "warning: anyone who knows this domain can reach SIP on this server; keep it secret")
			print(cmd, ds)
			return nil
		},
	}
	var asJSON bool
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the secret SIP domains",
		Example: "  dialgate sip-domain list\n  dialgate sip-domain list --json",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(false)
			if err != nil {
				return err
			}
			ds, err := c.SIPDomains(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				if ds == nil {
					ds = []string{}
				}
				return printJSON(cmd.OutOrStdout(), ds)
			}
			print(cmd, ds)
			return nil
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	del := &cobra.Command{
		Use:     "del DOMAIN",
		Short:   "Remove a secret SIP domain",
		Example: "  dialgate sip-domain del xq356jq.example.org",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(false)
			if err != nil {
				return err
			}
			ds, err := c.DeleteSIPDomain(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			print(cmd, ds)
			return nil
		},
	}
	cmd.AddCommand(add, list, del)
	return cmd
}
