package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newBlocksCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "blocks", Short: "Sources blocked for repeated failed logins: list them, clear them"}
	var asJSON bool
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the sources blocked for failed authentication, with their time left",
		Example: "  dialgate blocks list\n  dialgate blocks list --json",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(false)
			if err != nil {
				return err
			}
			bs, err := c.Blocks(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), bs)
			}
			if len(bs) == 0 {
				cmd.Println("no source is blocked")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ADDRESS\tTIME LEFT")
			for _, b := range bs {
				fmt.Fprintf(tw, "%s\t%s\n", b.Addr, time.Duration(b.LeftSeconds)*time.Second)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var all bool
	clearCmd := &cobra.Command{
		Use:   "clear ADDRESS",
		Short: "Unblock a source now (or every one with --all)",
		Example: `  dialgate blocks clear 203.0.113.9
  dialgate blocks clear --all`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) {
				return usageError{errFlag("give one address, or --all")}
			}
			addr := ""
			if len(args) == 1 {
				addr = args[0]
			}
			c, err := g.client(false)
			if err != nil {
				return err
			}
			bs, err := c.ClearBlocks(cmd.Context(), addr, all)
			if err != nil {
				return err
			}
			for _, b := range bs {
				cmd.Printf("%s unblocked\n", b.Addr)
			}
			if len(bs) == 0 {
				cmd.Println("no source was blocked")
			}
			return nil
		},
	}
	clearCmd.Flags().BoolVar(&all, "all", false, "unblock every source")
	cmd.AddCommand(list, clearCmd)
	return cmd
}
