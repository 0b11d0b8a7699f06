package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/dialgate/dialgate/localapi"
	"github.com/spf13/cobra"
)

func newFQDNCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "fqdn", Short: "Dynamic-DNS names: what they resolve to and when"}
	var asJSON bool
	list := &cobra.Command{
		Use:     "list",
		Short:   "Show each name, its addresses, their age and the last error",
		Example: "  dialgate fqdn list\n  dialgate fqdn list --json",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(false)
			if err != nil {
				return err
			}
			fs, err := c.FQDNs(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), fs)
			}
			return printFQDNs(cmd.OutOrStdout(), fs)
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	refresh := &cobra.Command{
		Use:     "refresh [NAME...]",
		Short:   "Re-resolve names now (all of them without arguments)",
		Example: "  dialgate fqdn refresh\n  dialgate fqdn refresh home.dyndns.example",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(false)
			if err != nil {
				return err
			}
			fs, err := c.RefreshFQDNs(cmd.Context(), args...)
			if err != nil {
				return err
			}
			return printFQDNs(cmd.OutOrStdout(), fs)
		},
	}
	cmd.AddCommand(list, refresh)
	return cmd
}

func printFQDNs(w io.Writer, fs []localapi.FQDNInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESSES\tAGE\tEVERY\tENTRIES\tLAST ERROR")
	for _, f := range fs {
		addrs, age := strings.Join(f.Addrs, ","), f.Age.String()
		if addrs == "" {
			addrs = "-"
		}
		if f.LastSuccess.IsZero() {
			age = "never resolved"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, addrs, age, f.Interval, strings.Join(f.Entries, ","), f.LastError)
	}
	return tw.Flush()
}
