package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dialgate/dialgate/daemon"
	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

func newAccountCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "account", Short: "Manage accounts (who the whitelist entries belong to)"}
	var perms, comment string
	add := &cobra.Command{
		Use:   "add NAME --perms CODES",
		Short: "Create an account with permission codes 0-9",
		Example: `  dialgate account add alice --perms 1,2,8 --comment "Alice, sales"
  dialgate account add office --perms 0`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if perms == "" {
				return usageError{errFlag("--perms is required, e.g. --perms 1,2,8 (0 all, 1 SIP UDP, 2 SIP TCP, 3 IAX, 4 Web, 5 Webmin, 6 FTP, 7 TFTP, 8 SSH, 9 FOP)")}
			}
			c, err := g.client(false)
			if err != nil {
				return err
			}
			a, err := c.AddAccount(cmd.Context(), localapi.AddAccountRequest{Name: args[0], Perms: perms, Comment: comment})
			if err != nil {
				return err
			}
			cmd.Printf("account %s added, perms %s\n", a.Name, describePerms(a.Perms))
			return nil
		},
	}
	add.Flags().StringVar(&perms, "perms", "", "permission codes separated by commas, e.g. 1,2,8 (0 alone: all)")
	add.Flags().StringVar(&comment, "comment", "", "free text shown in status")
	var asJSON bool
	list := &cobra.Command{
		Use:     "list",
		Short:   "List accounts",
		Example: "  dialgate account list --json",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(false)
			if err != nil {
				return err
			}
			as, err := c.Accounts(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), as)
			}
			printAccounts(cmd.OutOrStdout(), as)
			return nil
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var force bool
	del := &cobra.Command{
		Use:     "del NAME",
		Short:   "Delete an account with all its entries and grants",
		Example: "  dialgate account del alice",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(force)
			if err != nil {
				return err
			}
			res, err := c.DeleteAccount(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			cmd.Printf("account %s deleted (%s, %s removed)\n", args[0], plural(len(res.Entries), "entry"), plural(len(res.Grants), "grant"))
			return nil
		},
	}
	del.Flags().BoolVar(&force, "force", false, "even if it cuts off your own SSH session")
	cmd.AddCommand(add, list, del, newPasscodeCmd(g), newAccountSetCmd(g))
	return cmd
}

func newAllowCmd(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "allow {ip|cidr|fqdn} ACCOUNT VALUE",
		Short: "Whitelist an address, network or dynamic-DNS name for an account",
		Long: `Whitelists one address, network or dynamic-DNS name (allow ip|cidr|fqdn), or,
with --file, every account and entry of a whitelist file in one transaction
(all of it, or nothing if any line is refused). The file has one entry a
line, as dialgate export writes it:

  account alice perms=0 comment="road warrior"
  alice ip 203.0.113.7
  alice cidr 198.51.100.0/24 perms=1,2 comment="branch office"
  alice fqdn home.example.org refresh=1m

An account line creates the account if it does not exist; an entry line
needs its account to exist or to be defined in the file.`,
		Example: `  dialgate allow ip alice 203.0.113.7
  dialgate allow --file /root/whitelist.txt`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" || len(args) > 0 {
				return missingCommand(cmd, args)
			}
			return allowFile(cmd, g, file)
		},
	}
	cmd.SuggestionsMinimumDistance = 2
	cmd.Flags().StringVar(&file, "file", "", "add every entry of `FILE` (one a line; - for standard input) in one transaction")
	for _, k := range []struct {
		kind    store.EntryKind
		example string
	}{
		{store.KindIP, "203.0.113.7"},
		{store.KindCIDR, "198.51.100.0/24"},
		{store.KindFQDN, "home.example.org"},
	} {
		var perms, comment string
		var force bool
		var refresh time.Duration
		sub := &cobra.Command{
			Use:   fmt.Sprintf("%s ACCOUNT VALUE", k.kind),
			Short: fmt.Sprintf("Whitelist a %s (entries take the account's perms unless --perms)", k.kind),
			Example: fmt.Sprintf("  dialgate allow %s alice %s\n  dialgate allow %s alice %s --perms 1 --comment \"hotel\"",
				k.kind, k.example, k.kind, k.example),
			Args: exactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := g.client(false)
				if err != nil {
					return err
				}
				e, err := c.AddEntry(cmd.Context(), localapi.AddEntryRequest{
					Account: args[0], Kind: k.kind, Value: args[1], Perms: perms, Comment: comment, Force: force, Refresh: refresh,
				})
				if err != nil {
					return err
				}
				cmd.Printf("%s: %s %s whitelisted for %s, perms %s\n", e.ID, e.Kind, e.Value, e.Account, describePerms(e.Perms))
				if e.Kind == store.KindFQDN {
					if len(e.Addrs) == 0 {
						cmd.Printf("  warning: %s did not resolve (%s); it admits nobody until it does\n", e.Value, e.Error)
					} else {
						cmd.Printf("  resolves to %s\n", strings.Join(e.Addrs, ", "))
					}
				}
				return nil
			},
		}
		sub.Flags().StringVar(&perms, "perms", "", "permission codes for this entry, e.g. 1,8, within the account's (default: the account's)")
		sub.Flags().StringVar(&comment, "comment", "", "free text shown in status")
		sub.Flags().BoolVar(&force, "force", false, "accept networks wider than /8 (/16 for IPv6), 0.0.0.0/0, multicast, --perms wider than the account's; for fqdn: private answers")
		if k.kind == store.KindFQDN {
			sub.Flags().DurationVar(&refresh, "refresh", 0, "re-resolve this name every `DURATION` (e.g. 1m; default: fqdn.interval)")
		}
		cmd.AddCommand(sub)
	}
	return cmd
}

func newDenyCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "deny ENTRY",
		Short: "Remove a whitelist entry, by ID (e12) or by value (every entry with it)",
		Example: `  dialgate deny e12
  dialgate deny 203.0.113.7`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(force)
			if err != nil {
				return err
			}
			res, err := c.DeleteEntry(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			for _, e := range res.Entries {
				cmd.Printf("%s: %s %s of %s removed\n", e.ID, e.Kind, e.Value, e.Account)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "even if it cuts off your own SSH session")
	return cmd
}

func newReloadCmd(g *globals) *cobra.Command {
	var force bool
	var confirm time.Duration
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Re-read the config, rebuild the firewall from the database, re-resolve FQDNs",
		Example: `  dialgate reload

  # A risky config change, in two steps:
  dialgate reload --confirm 2m   # applies it; the old rules come back in 2 minutes...
  # ...now open a NEW SSH session to check you still get in, and only then:
  dialgate confirm`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(force)
			if err != nil {
				return err
			}
			if err := c.Reload(cmd.Context(), confirm); err != nil {
				return err // a refusal changed nothing; a partial reload says what it left
			}
			cmd.Println("firewall rebuilt from the database; [ami], [agi], [metrics] and [door] applied")
			if confirm > 0 {
				cmd.Printf("check that you can still open NEW connections (a second SSH session), then run `dialgate confirm` within %s, or the previous rules come back\n", confirm)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "even if the new config cuts off your own SSH session")
	cmd.Flags().DurationVar(&confirm, "confirm", 0, "put the previous rules back after `DURATION` (e.g. 2m, at most 1h) unless dialgate confirm runs before")
	return cmd
}

func newConfirmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "confirm",
		Short:   "Keep the rules of a `reload --confirm`",
		Example: "  dialgate confirm",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(false)
			if err != nil {
				return err
			}
			if err := c.Confirm(cmd.Context()); err != nil {
				return err
			}
			cmd.Println("confirmed: the new rules stay")
			return nil
		},
	}
}

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON, check bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Is the server protected? The firewall as the kernel has it, accounts, entries and grants",
		Long: `status says first whether the server is protected (dialgate's firewall in
force in the kernel for IPv4 and IPv6) and why not, then the daemon's
state, the sets, accounts, entries and grants. With the daemon stopped it
reads the kernel itself and says so.

Exit codes: 0 protected and the daemon running; 3 protected but no daemon
running (nothing repairs tampering or serves the phone door); 4 NOT
protected; 5 protected, but the shared store (etcd) is unreachable, so
changes and the phone door are refused; 1 any other error. --check prints
one line, for monitoring.`,
		Example: `  dialgate status
  dialgate status --check || alert "dialgate: server not protected"
  dialgate status --json | jq .protected`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(false)
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if errors.Is(err, localapi.ErrNotRunning) {
				st, err = offlineStatus(cmd.Context(), g)
			}
			if err != nil {
				return err
			}
			st.Version = version
			switch {
			case check:
				fmt.Fprintln(cmd.OutOrStdout(), statusLine(st))
			case asJSON:
				if err := printJSON(cmd.OutOrStdout(), st); err != nil {
					return err
				}
			default:
				printStatus(cmd.OutOrStdout(), st)
			}
			switch {
			case !st.Protected:
				return notProtected{}
			case !st.Daemon:
				return fmt.Errorf("%w: the kernel holds dialgate's firewall, but nothing repairs tampering or serves the phone door", localapi.ErrNotRunning)
			case st.Store != nil && !st.Store.Reachable:
				return storeUnreachable{}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&check, "check", false, "print one line and exit 0 (protected), 3 (no daemon), 4 (not protected) or 5 (shared store unreachable)")
	return cmd
}

// statusLine is `status --check`'s one line.
func statusLine(st localapi.StatusInfo) string {
	daemonState := "daemon running"
	if !st.Daemon {
		daemonState = "daemon NOT running"
	}
	if st.Protected {
		return "protected: yes" + storeState(st.Store) + "; " + daemonState
	}
	return "protected: NO (" + strings.Join(st.Reasons, "; ") + "); " + daemonState
}

// offlineStatus reads the kernel itself when no daemon answers.
func offlineStatus(ctx context.Context, g *globals) (localapi.StatusInfo, error) {
	cfg, err := g.config()
	if err != nil {
		return localapi.StatusInfo{}, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	fw, err := firewall.New(cfg.Firewall.Backend, quiet)
	if err != nil {
		return localapi.StatusInfo{}, err
	}
	defer fw.Close()
	fst, err := fw.Status(ctx)
	if err != nil {
		return localapi.StatusInfo{}, err
	}
	st := localapi.StatusInfo{Firewall: fst, DB: cfg.DB, ConfigPath: g.configPath, Backend: cfg.Firewall.Backend, Time: time.Now()}
	st.Protected, st.Reasons = daemon.Protection(fst)
	if ds, err := fw.Drops(ctx); err == nil {
		sum := selectDrops(cfg.FirewallRules(), ds, firewall.DropFilter{}, st.Time).Summary
		st.Drops = &sum
	}
	return st, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(localapi.EmptyLists(v))
}

func describePerms(p store.PermSet) string {
	var names []string
	for _, c := range p.Codes() {
		names = append(names, fmt.Sprintf("%d %s", c, firewall.CodeName(c)))
	}
	return strings.Join(names, ", ")
}

func printAccounts(w io.Writer, as []localapi.AccountInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tPERMS\tENTRIES\tGRANTS\tENABLED\tNUMBER\tEXTENSION\tCALLER IDS\tCOMMENT")
	dash := func(s string) string { return orDefault(s, s == "", "-") }
	for _, a := range as {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%v\t%s\t%s\t%s\t%s\n", a.Name, a.Perms, a.Entries, a.Grants, a.Enabled,
			dash(a.Number), dash(a.Extension), dash(strings.Join(a.CallerIDs, ",")), a.Comment)
	}
	tw.Flush()
}

// storeState is ", store unreachable since ..." for a node cut off from
// its shared store, else "".
func storeState(s *localapi.StoreInfo) string {
	if s == nil || s.Reachable {
		return ""
	}
	return ", store unreachable since " + s.Since.Local().Format("2006-01-02 15:04:05 MST")
}

func printStatus(w io.Writer, st localapi.StatusInfo) {
	if st.Protected {
		fmt.Fprintln(w, "protected: yes"+storeState(st.Store))
	} else {
		fmt.Fprintln(w, "protected: NO")
		for _, r := range st.Reasons {
			fmt.Fprintf(w, "  - %s\n", r)
		}
	}
	if st.Daemon {
		fmt.Fprintf(w, "daemon: running (%s, backend %s, config %s)\n", orDefault(st.Version, st.Version == "", "dev"), st.Backend, orDefault(st.ConfigPath, st.ConfigPath == "", "defaults"))
		door := "off"
		if st.Services.AGIListen != "" {
			door = st.Services.AGIListen
			if !st.Services.AGIServing {
				door += " (NOT serving)"
			}
		}
		amiState := "off"
		if st.Services.AMIEnabled {
			amiState = map[bool]string{true: "logged in", false: "NOT logged in"}[st.Services.AMILogin]
		}
		fmt.Fprintf(w, "phone door (FastAGI): %s; AMI: %s\n", door, amiState)
		if p := st.PendingReload; p != nil {
			fmt.Fprintf(w, "pending reload: rolls back in %.0f s unless `dialgate confirm` (at %s)\n", p.Left, p.Deadline.Local().Format("15:04:05 MST"))
		}
	} else {
		fmt.Fprintln(w, "daemon: NOT running: the kernel was read directly; nothing repairs tampering or serves the phone door")
	}
	if s := st.Store; s != nil {
		fmt.Fprintf(w, "store: etcd %s, prefix %s, node %s: ", strings.Join(s.Endpoints, ","), s.Prefix, s.Node)
		if s.Reachable {
			fmt.Fprintf(w, "reachable, revision %d\n", s.Revision)
		} else {
			fmt.Fprintf(w, "UNREACHABLE since %s (%s); filtering with the replica at revision %d, changes and the phone door refused\n",
				s.Since.Local().Format("2006-01-02 15:04:05 MST"), s.LastError, s.Revision)
		}
	}
	for _, warn := range st.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	printFirewall(w, st.Firewall)
	if st.Drops != nil {
		fmt.Fprintf(w, "drops (last hour): %s; dialgate drops for the list\n", dropSummaryLine(*st.Drops))
	}
	fmt.Fprintln(w, "sets:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range st.Firewall.Sets {
		if !s.Exists {
			fmt.Fprintf(tw, "  %s\tmissing\n", s.Name)
			continue
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Name, firewall.CodeName(s.Code), plural(len(s.Entries), "entry"))
	}
	tw.Flush()
	fmt.Fprintln(w)
	printAccounts(w, st.Accounts)
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tACCOUNT\tKIND\tVALUE\tPERMS\tCOMMENT")
	for _, e := range st.Entries {
		perms := e.Perms.String()
		if e.Inherited {
			perms += " (account)"
		}
		value := e.Value
		if e.Kind == store.KindFQDN {
			if len(e.Addrs) > 0 {
				value += " -> " + strings.Join(e.Addrs, ",")
			} else {
				value += " -> unresolved"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Account, e.Kind, value, perms, e.Comment)
	}
	tw.Flush()
	if len(st.Grants) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "GRANT\tACCOUNT\tIP\tPERMS\tTIME LEFT\tSOURCE")
		for _, gr := range st.Grants {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", gr.ID, gr.Account, gr.IP, gr.Perms, gr.Left.Round(time.Second), gr.Source)
		}
		tw.Flush()
	}
}

// printFirewall shows, per family, whether the chain is in force and
// what filters ahead of it (fail2ban's chains, a stranger's ACCEPT),
// then the notes on neighbouring firewalls: the administrator reads why
// the server is (not) protected, not just booleans.
func printFirewall(w io.Writer, fw firewall.Status) {
	fmt.Fprintln(w, "firewall:")
	for _, f := range fw.Families {
		var state string
		switch {
		case !f.ChainLoaded:
			state = "chain MISSING"
		case !f.JumpFirst:
			state = fmt.Sprintf("chain loaded (%s), NOT in force", plural(f.Rules, "rule"))
		default:
			state = fmt.Sprintf("chain loaded (%s), in force", plural(f.Rules, "rule"))
		}
		if f.JumpPosition > 0 {
			state += fmt.Sprintf(", jump at INPUT position %d", f.JumpPosition)
		}
		fmt.Fprintf(w, "  %s: %s\n", f.Family, state)
		for _, a := range f.Ahead {
			verdict := "harmless"
			if !a.Harmless {
				verdict = "CAN ADMIT"
			}
			fmt.Fprintf(w, "    ahead: %s  [%s: %s]\n", a.Rule, verdict, a.Why)
		}
	}
	for _, n := range fw.Coexistence {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func newAuditCmd(g *globals) *cobra.Command {
	var f localapi.AuditFilter
	var since time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit log: every change, grant and refusal",
		Example: `  dialgate audit
  dialgate audit --account alice --since 24h
  dialgate audit --action door --result locked
  dialgate audit --limit 0 --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if since < 0 {
				return usageError{errFlag("--since must be a positive duration such as 1h")}
			}
			if since > 0 {
				f.Since = time.Now().Add(-since)
			}
			c, err := g.client(false)
			if err != nil {
				return err
			}
			rs, err := c.AuditFiltered(cmd.Context(), f)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), rs)
			}
			return printAudit(cmd.OutOrStdout(), rs)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.Limit, "limit", 50, "newest N records (0: all)")
	fl.StringVar(&f.Account, "account", "", "only this account's records")
	fl.StringVar(&f.Action, "action", "", "only this action (door, passcode, grant, ...); a prefix ending in '.' matches a family (grant.)")
	fl.StringVar(&f.Result, "result", "", "only this result (ok, denied, locked, refused, ...)")
	fl.DurationVar(&since, "since", 0, "only records of the last `DURATION` (e.g. 1h, 24h)")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newLockoutsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "lockouts", Short: "Phone-door lockouts: list them, clear them"}
	var asJSON bool
	list := &cobra.Command{
		Use:     "list",
		Short:   "List caller IDs and accounts that are locked or have recent failures",
		Example: "  dialgate lockouts list\n  dialgate lockouts list --json",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(false)
			if err != nil {
				return err
			}
			ls, err := c.Lockouts(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), ls)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tFAILURES\tLOCKED UNTIL")
			for _, l := range ls {
				until := "-"
				if l.Locked {
					until = l.LockedUntil.Local().Format("2006-01-02 15:04:05 MST")
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\n", l.Key, l.Failures, until)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var all bool
	clearCmd := &cobra.Command{
		Use:   "clear KEY|ACCOUNT",
		Short: "Clear a lockout key (cid:5551234, num:482913, bound:alice), every key of an account, or --all",
		Example: `  dialgate lockouts clear alice
  dialgate lockouts clear cid:+15551234567
  dialgate lockouts clear --all`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) {
				return usageError{errFlag("give one key or account, or --all")}
			}
			what := ""
			if len(args) == 1 {
				what = args[0]
			}
			c, err := g.client(false)
			if err != nil {
				return err
			}
			keys, err := c.ClearLockouts(cmd.Context(), what, all)
			if err != nil {
				return err
			}
			for _, k := range keys {
				cmd.Printf("%s cleared\n", k)
			}
			return nil
		},
	}
	clearCmd.Flags().BoolVar(&all, "all", false, "clear every lockout")
	cmd.AddCommand(list, clearCmd)
	return cmd
}

// plural says "1 rule", "2 rules", "0 entries".
func plural(n int, noun string) string {
	switch {
	case n == 1:
		return "1 " + noun
	case strings.HasSuffix(noun, "y") && !strings.ContainsAny(noun[max(len(noun)-2, 0):len(noun)-1], "aeiou"):
		return fmt.Sprintf("%d %sies", n, noun[:len(noun)-1])
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// timeFormat is how text output shows a time: local, with its zone.
const timeFormat = "2006-01-02 15:04:05 MST"

func printAudit(w io.Writer, rs []store.AuditRecord) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// The NODE column only when a shared store wrote the records.
	nodes := slices.ContainsFunc(rs, func(r store.AuditRecord) bool { return r.Node != "" })
	head := "TIME\tACTION\tACTOR\tACCOUNT\tSUBJECT\tRESULT\tDETAIL"
	if nodes {
		head = "TIME\tNODE\tACTION\tACTOR\tACCOUNT\tSUBJECT\tRESULT\tDETAIL"
	}
	fmt.Fprintln(tw, head)
	for _, r := range rs {
		when := r.Time.Local().Format(timeFormat)
		if nodes {
			when += "\t" + orDefault(r.Node, r.Node == "", "-")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", when,
			r.Action, r.Actor, r.Account, r.Subject, r.Result, r.Detail)
	}
	return tw.Flush()
}
