package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dialgate/dialgate/localapi"
	"github.com/spf13/cobra"
)

func newExplainCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "explain ADDRESS [PROTO/PORT]",
		Short: "Say why an address is admitted or dropped, service by service, and by what",
		Long: `Answers "why can't my user connect?": for each service (or the one port
given), whether ADDRESS is admitted or dropped and by what (loopback, a LAN
range, a port open to everyone, an entry with its ID, account and value, the
dynamic-DNS name it came from, a grant with its time left, a provider), then
every entry and grant that contains the address, and whether the kernel's
sets agree with the database. Exit 0 when the answer was given, whatever it is.`,
		Example: `  dialgate explain 203.0.113.7
  dialgate explain 203.0.113.7 udp/5060
  dialgate explain 2001:db8::7 tcp/22 --json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageError{fmt.Errorf("%s: want ADDRESS [PROTO/PORT], got %d arguments; see --help", cmd.CommandPath(), len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			req := localapi.ExplainRequest{Addr: args[0]}
			if len(args) == 2 {
				proto, port, ok := strings.Cut(args[1], "/")
				n, err := strconv.ParseUint(port, 10, 16)
				if !ok || (proto != "tcp" && proto != "udp") || err != nil || n == 0 {
					return usageError{fmt.Errorf("%q: want tcp/PORT or udp/PORT, such as udp/5060", args[1])}
				}
				req.Proto, req.Port = proto, uint16(n)
			}
			c, err := g.client(false)
			if err != nil {
				return err
			}
			ex, err := c.Explain(cmd.Context(), req)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(ex)
			}
			printExplanation(cmd.OutOrStdout(), ex)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printExplanation(w io.Writer, ex localapi.Explanation) {
	fmt.Fprintf(w, "%s\n", ex.Addr)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, v := range ex.Verdicts {
		verdict := "DROPPED"
		if v.Admitted {
			verdict = "admitted"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", v.Service, v.Ports, verdict, v.By[0])
		for _, b := range v.By[1:] {
			fmt.Fprintf(tw, "  \t\t\t%s\n", b)
		}
	}
	tw.Flush()
	if len(ex.Matches) > 0 {
		fmt.Fprintln(w, "contained in:")
		for _, m := range ex.Matches {
			s := fmt.Sprintf("  %s", m.Kind)
			if m.ID != "" {
				s += " " + m.ID
			}
			if m.Account != "" {
				s += " of " + m.Account
			}
			s += ": " + m.Value
			if m.Via != "" {
				s += " (resolves to " + m.Via + ")"
			}
			if m.Perms != "" {
				s += ", perms " + m.Perms
			}
			if m.LeftSec > 0 {
				s += fmt.Sprintf(", %s left", time.Duration(m.LeftSec)*time.Second)
			}
			if !m.Active {
				s += " -- inactive: " + m.Why
			}
			fmt.Fprintln(w, s)
		}
	} else {
		fmt.Fprintln(w, "contained in: no entry, grant or LAN range")
	}
	switch {
	case !ex.KernelChecked:
		fmt.Fprintf(w, "kernel: NOT checked: %s\n", strings.Join(ex.Disagreements, "; "))
	case ex.KernelAgrees:
		fmt.Fprintln(w, "kernel: agrees (its sets hold this address exactly where the database says)")
	default:
		fmt.Fprintln(w, "kernel: DISAGREES with the database (the watchdog repairs this within seconds; dialgate reload forces it):")
		for _, d := range ex.Disagreements {
			fmt.Fprintf(w, "  - %s\n", d)
		}
	}
	if len(ex.Drops) == 0 {
		fmt.Fprintln(w, "recent drops: none in the last hour")
	} else {
		fmt.Fprintln(w, "recent drops (the final DROP, last hour):")
		for _, dr := range ex.Drops {
			fmt.Fprintf(w, "  %s: %s, last %s\n", dr.Service, plural(int(dr.Packets), "packet"), dr.LastSeen.Local().Format("15:04:05 MST"))
		}
	}
	if !ex.Protected && ex.KernelChecked {
		fmt.Fprintln(w, "warning: the server is NOT protected (see dialgate status): the answer above is what dialgate would do")
	}
	for _, n := range ex.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
