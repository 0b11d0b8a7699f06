package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/store"
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
			d := canonicalDomain(args[0])
			cmd.Printf("secret SIP domain %s added: REGISTER sip:%s now gets in from any address (%s in all)\n", d, d, plural(len(ds), "secret SIP domain"))
			fmt.Fprintln(cmd.ErrOrStderr(), "warning: anyone who knows this domain can reach SIP on this server; keep it secret")
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
			d := canonicalDomain(args[0])
			ds, err := c.DeleteSIPDomain(cmd.Context(), args[0])
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("secret SIP domain %q not found, nothing removed; `dialgate sip-domain list` shows them", d)
			}
			if err != nil {
				return err
			}
			left := plural(len(ds), "secret SIP domain") + " left"
			if len(ds) == 0 {
				left = "no secret SIP domains left"
			}
			cmd.Printf("secret SIP domain %s removed: REGISTER sip:%s gets in only from addresses whitelisted for SIP (%s)\n", d, d, left)
			return nil
		},
	}
	cmd.AddCommand(add, list, del)
	return cmd
}

// canonicalDomain is the form the daemon stores a domain in, for saying
// what was done; the daemon validates it.
func canonicalDomain(s string) string {
	if d, err := auth.CanonicalHost(s); err == nil {
		return d
	}
	return s
}
