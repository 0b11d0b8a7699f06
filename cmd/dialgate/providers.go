package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

func newProvidersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "providers",
		Short: "Trusted SIP trunk providers: a built-in catalogue and your own",
		Long: `Enabling a provider whitelists its signalling servers (names, resolved and
kept current by the FQDN refresher, and networks) for its services only
(1 SIP UDP, 2 SIP TCP, 3 IAX), as entries of the account "providers".
Providers change their networks: check the catalogue's source for yours.`,
	}
	var asJSON bool
	list := &cobra.Command{
		Use:     "list",
		Short:   "List providers and whether they are enabled",
		Example: "  dialgate providers list\n  dialgate providers list --json",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(false)
			if err != nil {
				return err
			}
			ps, err := c.Providers(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), ps)
			}
			return printProviders(cmd.OutOrStdout(), ps)
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	toggle := func(enable bool) *cobra.Command {
		verb := "disable"
		if enable {
			verb = "enable"
		}
		var all bool
		c := &cobra.Command{
			Use:     verb + " NAME...|--all",
			Short:   strings.ToUpper(verb[:1]) + verb[1:] + " providers",
			Example: fmt.Sprintf("  dialgate providers %s voipms telnyx\n  dialgate providers %s --all", verb, verb),
			RunE: func(cmd *cobra.Command, args []string) error {
				if all == (len(args) > 0) {
					return usageError{errFlag("name the providers or use --all (not both)")}
				}
				c, err := g.client(false)
				if err != nil {
					return err
				}
				ps, err := c.SetProviders(cmd.Context(), enable, args, all)
				if err != nil {
					return err
				}
				return printProviders(cmd.OutOrStdout(), ps)
			},
		}
		c.Flags().BoolVar(&all, "all", false, "every provider")
		return c
	}
	var p auth.Provider
	var services string
	add := &cobra.Command{
		Use:   "add NAME --fqdn NAME|--cidr NET ... --services 1,2",
		Short: "Add your own provider (then enable it)",
		Example: `  dialgate providers add acme --fqdn sip.acme.example --cidr 198.51.100.0/28 --services 1,2
  dialgate providers enable acme`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.Name = args[0]
			perms, err := auth.ParsePerms(services)
			if err != nil {
				return usageError{err}
			}
			p.Services = perms.Codes()
			c, err := g.client(false)
			if err != nil {
				return err
			}
			pi, err := c.AddProvider(cmd.Context(), p)
			if err != nil {
				return err
			}
			cmd.Printf("provider %s added, services %s; enable it with: dialgate providers enable %s\n", pi.Name, describePerms(store.NewPermSet(pi.Services...)), pi.Name)
			return nil
		},
	}
	add.Flags().StringVar(&p.Title, "title", "", "display name")
	add.Flags().StringSliceVar(&p.FQDNs, "fqdn", nil, "signalling server name (repeatable)")
	add.Flags().StringSliceVar(&p.CIDRs, "cidr", nil, "signalling network or address (repeatable)")
	add.Flags().StringVar(&services, "services", "1", "services: 1 SIP UDP, 2 SIP TCP, 3 IAX")
	cmd.AddCommand(list, toggle(true), toggle(false), add)
	return cmd
}

// printProviders shows each provider with its services written as perms
// are everywhere (codes and names) and the source of its addresses, which
// the administrator should check: providers move their servers.
func printProviders(w io.Writer, ps []localapi.ProviderInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tENABLED\tSERVICES\tSERVERS\tTITLE\tSOURCE")
	for _, p := range ps {
		servers := strings.Join(append(append([]string{}, p.FQDNs...), p.CIDRs...), ",")
		if len(servers) > 60 {
			servers = servers[:57] + "..."
		}
		title, source := orDefault(p.Title, p.Title == "", "-"), orDefault(p.Source, p.Source == "", "-")
		if p.Custom {
			title = strings.TrimPrefix(strings.TrimPrefix(title, "-")+" (custom)", " ")
			source = orDefault(p.Source, p.Source == "", "yours (providers add)")
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%s\n", p.Name, p.Enabled, describePerms(store.NewPermSet(p.Services...)), servers, title, source)
	}
	return tw.Flush()
}
