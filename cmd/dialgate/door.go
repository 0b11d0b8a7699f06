package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/dialgate/dialgate/agi/agitest"
	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/daemon"
	"github.com/dialgate/dialgate/localapi"
)

func newPasscodeCmd(g *globals) *cobra.Command {
	var random int
	var stdin bool
	cmd := &cobra.Command{
		Use:   "passcode NAME",
		Short: "Set the passcode the account keys on the phone (asked twice, not echoed)",
		Example: `  dialgate account passcode alice
  dialgate account passcode alice --random 8     # prints the new passcode once
  echo 48151623 | dialgate account passcode alice --stdin`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var code string
			var err error
			switch {
			case random > 0:
				if code, err = auth.RandomPasscode(random); err != nil {
					return usageError{err}
				}
			case stdin:
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				code = strings.TrimSpace(line)
			default:
				if code, err = promptTwice(); err != nil {
					return err
				}
			}
			c, err := g.client(false)
			if err != nil {
				return err
			}
			res, err := c.SetPasscode(cmd.Context(), args[0], code)
			if err != nil {
				return err
			}
			if random > 0 {
				cmd.Printf("passcode for %s: %s\n(shown once; it is stored only as a hash)\n", args[0], code)
			} else {
				cmd.Printf("passcode for %s set\n", args[0])
			}
			cmd.Printf("account number %s: callers key it before the passcode, unless their extension or a bound caller ID identifies them\n", res.Number)
			return nil
		},
	}
	cmd.Flags().IntVar(&random, "random", 0, "generate a random passcode of N digits and print it once")
	cmd.Flags().BoolVar(&stdin, "stdin", false, "read the passcode from standard input")
	return cmd
}

func promptTwice() (string, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", usageError{errFlag("not a terminal: use --stdin or --random N")}
	}
	read := func(prompt string) (string, error) {
		fmt.Fprint(os.Stderr, prompt)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		return strings.TrimSpace(string(b)), err
	}
	a, err := read("passcode (4-20 digits): ")
	if err != nil {
		return "", err
	}
	b, err := read("again: ")
	if err != nil {
		return "", err
	}
	if a != b {
		return "", errFlag("the two passcodes differ; nothing changed")
	}
	return a, nil
}

func newAccountSetCmd(g *globals) *cobra.Command {
	var req localapi.UpdateAccountRequest
	var perms, comment, extension, number string
	var callerIDs []string
	var lifetime time.Duration
	var maxGrants int
	var enable, disable, keyIP, noKeyIP, force bool
	cmd := &cobra.Command{
		Use:   "set NAME",
		Short: "Change an account: perms, comment, phone-door settings, enable/disable",
		Example: `  dialgate account set alice --lifetime 4h --max-grants 2
  dialgate account set alice --extension 201 --may-key-ip
  dialgate account set alice --number 4711 --callerid +15551234567 --callerid 201
  dialgate account set bob --disable`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			if f.Changed("perms") {
				req.Perms = &perms
			}
			if f.Changed("comment") {
				req.Comment = &comment
			}
			if f.Changed("extension") {
				req.Extension = &extension
			}
			if f.Changed("number") {
				req.Number = &number
			}
			if f.Changed("callerid") {
				req.CallerIDs = &callerIDs
			}
			if f.Changed("lifetime") {
				req.Lifetime = &lifetime
			}
			if f.Changed("max-grants") {
				req.MaxGrants = &maxGrants
			}
			if enable && disable || keyIP && noKeyIP {
				return usageError{errFlag("contradictory flags")}
			}
			if enable || disable {
				req.Enabled = &enable
			}
			if keyIP || noKeyIP {
				req.MayKeyIP = &keyIP
			}
			c, err := g.client(force)
			if err != nil {
				return err
			}
			a, err := c.UpdateAccount(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			cmd.Printf("account %s: perms %s, enabled %v, lifetime %s, max grants %s, extension %q, may key IP %v, number %q, caller IDs %q\n",
				a.Name, a.Perms, a.Enabled, orDefault(a.Lifetime.String(), a.Lifetime == 0, "default"), orDefault(fmt.Sprint(a.MaxGrants), a.MaxGrants == 0, "default"),
				a.Extension, a.MayKeyIP, a.Number, a.CallerIDs)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&perms, "perms", "", "permission codes separated by commas, e.g. 1,2,8 (0 alone: all); refused below an entry's own perms unless --force")
	f.StringVar(&comment, "comment", "", "free text")
	f.StringVar(&extension, "extension", "", "SIP extension: its registered address gets the grant, and a call from it needs no account number")
	f.StringVar(&number, "number", "", "account number keyed before the passcode (2-10 digits; \"\" clears)")
	f.StringSliceVar(&callerIDs, "callerid", nil, "caller ID that identifies the account without a number (repeat; replaces the list; --callerid \"\" clears)")
	f.DurationVar(&lifetime, "lifetime", 0, "grants last `DURATION` (e.g. 4h; 0: the [door] default)")
	f.IntVar(&maxGrants, "max-grants", 0, "live grants at once (0: the [door] default)")
	f.BoolVar(&enable, "enable", false, "enable the account")
	f.BoolVar(&disable, "disable", false, "disable the account: its entries and grants stop admitting")
	f.BoolVar(&keyIP, "may-key-ip", false, "let the caller key an IP address on the phone")
	f.BoolVar(&noKeyIP, "no-key-ip", false, "do not let the caller key an IP address")
	f.BoolVar(&force, "force", false, "even if it cuts off your own SSH session, or --perms leaves entries with wider perms of their own")
	return cmd
}

func orDefault(s string, isDefault bool, def string) string {
	if isDefault {
		return def
	}
	return s
}

func newGrantsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "grants", Short: "Time-limited grants made by the phone door"}
	var asJSON bool
	list := &cobra.Command{
		Use:     "list",
		Short:   "List live grants",
		Example: "  dialgate grants list\n  dialgate grants list --json",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(false)
			if err != nil {
				return err
			}
			gs, err := c.Grants(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), gs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "GRANT\tACCOUNT\tIP\tSERVICES\tEXPIRES\tLEFT\tSOURCE")
			for _, gr := range gs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", gr.ID, gr.Account, gr.IP, describePerms(gr.Perms),
					gr.Expires.Local().Format(timeFormat), gr.Left.Round(time.Second), gr.Source)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var force bool
	revoke := &cobra.Command{
		Use:     "revoke ID|IP",
		Short:   "Revoke a grant now (by ID, or every grant of an address)",
		Example: "  dialgate grants revoke g7\n  dialgate grants revoke 203.0.113.7",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(force)
			if err != nil {
				return err
			}
			gs, err := c.RevokeGrants(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			for _, gr := range gs {
				cmd.Printf("%s: %s of %s revoked\n", gr.ID, gr.IP, gr.Account)
			}
			return nil
		},
	}
	revoke.Flags().BoolVar(&force, "force", false, "even if it cuts off your own SSH session")
	cmd.AddCommand(list, revoke)
	return cmd
}

func newTestCallCmd(g *globals) *cobra.Command {
	var (
		addr, passcode, callerID, channel, remote, arg, keyIP, number string
		tries                                                         int
		timeout                                                       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "test-call",
		Short: "Play Asterisk's part: call the phone door over FastAGI and key a passcode",
		Long: `test-call is a built-in FastAGI client. It connects to the door as Asterisk
would, sends a realistic agi_* environment for a SIP call, answers the
door's commands, keys the passcode, and prints what the door did and its
DIALGATE_RESULT. Use it to test the whole path without a phone.`,
		Example: `  dialgate test-call --account 4711 --passcode 48151623 --remote-addr 203.0.113.7
  dialgate test-call --passcode 1111 --tries 3 --callerid +15551234567   # a bound caller ID`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if addr == "" {
				cfg, err := g.config()
				if err != nil {
					return err
				}
				addr = cfg.AGI.Listen
			}
			if passcode == "-" {
				line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				passcode = strings.TrimSpace(line)
			}
			digits := make([]string, 0, tries+2)
			if number != "" {
				digits = append(digits, number+"#")
			}
			for i := 0; i < tries; i++ {
				digits = append(digits, passcode+"#")
			}
			if keyIP != "" {
				digits = append(digits, strings.ReplaceAll(keyIP, ".", "*")+"#")
			}
			vars := map[string]string{}
			if remote != "" {
				// As each channel driver answers: chan_sip without a
				// port, chan_pjsip with one.
				vars["CHANNEL(peerip)"] = remote
				vars["CHANNEL(recvip)"] = remote
				vars["CHANNEL(pjsip,remote_addr)"] = net.JoinHostPort(remote, "5060")
			}
			args := []string{}
			if arg != "" {
				args = append(args, arg)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			tr, err := agitest.Dial(ctx, addr, agitest.Call{
				Script: "authorize",
				Env: map[string]string{
					"agi_channel": channel, "agi_callerid": callerID, "agi_calleridname": "dialgate test-call",
					"agi_context": "dialgate-authorize", "agi_extension": "*47",
				},
				Args: args, Digits: digits, Variables: vars, WaitDigits: []rune{'#'},
			})
			for _, c := range tr.Commands {
				cmd.Printf("  door: %s\n", c)
			}
			if err != nil {
				return fmt.Errorf("test-call: %w", err)
			}
			result, reason := tr.Variables["DIALGATE_RESULT"], tr.Variables["DIALGATE_REASON"]
			cmd.Printf("DIALGATE_RESULT=%s\nDIALGATE_REASON=%s\n", result, reason)
			if result != daemon.ResultGranted {
				return fmt.Errorf("test-call: the door answered %q (%s)", result, reason)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "agi", "", "FastAGI address (default: agi.listen from the config)")
	f.StringVar(&passcode, "passcode", "", "digits to key (\"-\": read from standard input)")
	f.StringVar(&number, "account", "", "account number to key first (leave out when the caller ID or channel identifies the account)")
	f.StringVar(&callerID, "callerid", "100", "caller ID to present")
	f.StringVar(&channel, "channel", "SIP/traveler-00000001", "channel name to present")
	f.StringVar(&remote, "remote-addr", "", "the caller's SIP address, as CHANNEL(recvip), CHANNEL(peerip) and CHANNEL(pjsip,remote_addr) answer it")
	f.StringVar(&arg, "arg", "", "first AGI argument (an address the dialplan passes)")
	f.StringVar(&keyIP, "key-ip", "", "address to key when the door asks for one")
	f.IntVar(&tries, "tries", 1, "how many times to key the passcode")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "give up after `DURATION`")
	return cmd
}
