package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dialgate/dialgate/daemon"
	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/localapi"
)

func newDropsCmd(g *globals) *cobra.Command {
	var f firewall.DropFilter
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "drops",
		Short: "Show who the firewall drops: sources and services, most packets first",
		Long: `Show the sources the firewall's final drop (or reject) hit, per service
(protocol and destination port), most packets first. The kernel keeps the
count itself, without sending packets to dialgate: a source is remembered
for an hour after its last drop, and at most 65 536 sources and services
per address family.

Services are named as the configuration names them (sip-udp, ssh, ...);
other ports show as protocol/port. Without a running daemon the kernel
is read directly.`,
		Example: `  dialgate drops
  dialgate drops --since 10m --service sip-udp
  dialgate drops --limit 0 --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.Since < 0 {
				return usageError{errFlag("--since must be a positive duration such as 15m")}
			}
			if f.Limit < 0 {
				return usageError{errFlag("--limit must be 0 (all) or more")}
			}
			c, err := g.client(false)
			if err != nil {
				return err
			}
			info, err := c.Drops(cmd.Context(), f)
			if errors.Is(err, localapi.ErrNotRunning) {
				info, err = offlineDrops(cmd.Context(), g, f)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), info)
			}
			return printDrops(cmd.OutOrStdout(), info, time.Now())
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&f.Since, "since", 0, "only sources dropped within the last `DURATION`, e.g. 10m (the kernel remembers 1h)")
	fl.StringVar(&f.Service, "service", "", "only this service (sip-udp, ssh, ... or proto/port such as tcp/3306)")
	fl.IntVar(&f.Limit, "limit", 20, "top N sources (0: all)")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// offlineDrops reads the kernel itself when no daemon answers.
func offlineDrops(ctx context.Context, g *globals, f firewall.DropFilter) (localapi.DropsInfo, error) {
	cfg, err := g.config()
	if err != nil {
		return localapi.DropsInfo{}, err
	}
	fw, err := firewall.New(cfg.Firewall.Backend, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return localapi.DropsInfo{}, err
	}
	defer fw.Close()
	ds, err := fw.Drops(ctx)
	if err != nil {
		return localapi.DropsInfo{}, err
	}
	return selectDrops(cfg.FirewallRules(), ds, f, time.Now()), nil
}

// selectDrops is what the daemon's GET /v1/drops does: services named,
// filtered, sorted, summarized, cut to the limit.
func selectDrops(cfg firewall.Config, ds []firewall.Drop, f firewall.DropFilter, now time.Time) localapi.DropsInfo {
	daemon.NameDrops(cfg, ds)
	limit := f.Limit
	f.Limit, f.Now = 0, now
	sel := firewall.FilterDrops(ds, f)
	info := localapi.DropsInfo{Matched: len(sel), Summary: firewall.SummarizeDrops(sel), WindowSeconds: int64(firewall.DropsTimeout / time.Second)}
	if limit > 0 && len(sel) > limit {
		sel = sel[:limit]
	}
	info.Drops = sel
	return info
}

// printDrops prints the table: one line per source and service.
func printDrops(w io.Writer, info localapi.DropsInfo, now time.Time) error {
	if info.Matched == 0 {
		fmt.Fprintf(w, "no drops recorded (the kernel remembers the last %s)\n", shortDur(time.Duration(info.WindowSeconds)*time.Second))
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tSERVICE\tPACKETS\tLAST SEEN")
	for _, d := range info.Drops {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s ago\n", d.Addr, serviceLabel(d), d.Packets, shortDur(now.Sub(d.LastSeen)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if n := info.Matched - len(info.Drops); n > 0 {
		fmt.Fprintf(w, "... and %d more (--limit 0 for all)\n", n)
	}
	fmt.Fprintf(w, "%s\n", dropSummaryLine(info.Summary))
	return nil
}

// serviceLabel names the service, with the port when the name alone
// does not say it (sip-udp covers 5060-5069).
func serviceLabel(d firewall.Drop) string {
	if d.Service == "" {
		d.Service = d.Proto
		if d.Port != 0 {
			d.Service = fmt.Sprintf("%s/%d", d.Proto, d.Port)
		}
	}
	if d.Port == 0 || strings.Contains(d.Service, "/") {
		return d.Service
	}
	return fmt.Sprintf("%s (%s/%d)", d.Service, d.Proto, d.Port)
}

// dropSummaryLine totals drops in a line: "1 234 packets from 56 sources".
func dropSummaryLine(s firewall.DropSummary) string {
	return fmt.Sprintf("%s packets from %s sources", groupDigits(s.Packets), groupDigits(uint64(s.Sources)))
}

// groupDigits writes n with thin groups of three: 1 234 567.
func groupDigits(n uint64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// shortDur rounds d to what a person reads: 42s, 7m, 1h.
func shortDur(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(0, int(d.Round(time.Second)/time.Second)))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	}
	return fmt.Sprintf("%dh", int(d/time.Hour))
}
