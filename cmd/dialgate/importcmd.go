package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dialgate/dialgate/firewall/tm3"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

func newImportCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "import", Short: "Import whitelists from other tools"}
	var dryRun bool
	tm := &cobra.Command{
		Use:   "tm3 FILE...",
		Short: "Import Travelin' Man 3: /etc/sysconfig/iptables and /root/*.iptables account files",
		Long: `Reads a Travelin' Man 3 firewall file (iptables-save format) and its
account files (NAME.iptables), maps each whitelisted source and the services
its rules open to dialgate accounts, entries and permission codes, prints
what it mapped and what it skipped (and why), and imports it all in one
transaction. Nothing is imported if any value is refused.`,
		Example: `  dialgate import tm3 --dry-run /etc/sysconfig/iptables /root/*.iptables
  dialgate import tm3 /etc/sysconfig/iptables /root/*.iptables`,
		RunE: func(cmd *cobra.Command, files []string) error {
			if len(files) == 0 {
				return usageError{errFlag("name the files, e.g. /etc/sysconfig/iptables /root/*.iptables")}
			}
			var results []tm3.Result
			for _, f := range files {
				r, err := parseTM3File(f)
				if err != nil {
					return err
				}
				results = append(results, r)
			}
			res := tm3.Merge(results...)
			req := localapi.ImportRequest{Source: "tm3"}
			out := cmd.OutOrStdout()
			for _, a := range res.Accounts {
				fmt.Fprintf(out, "account %s perms %s  (%s)\n", a.Name, codes(a.Perms), a.Comment)
				ia := localapi.ImportAccount{Name: a.Name, Perms: a.Perms, Comment: a.Comment}
				for _, e := range a.Entries {
					fmt.Fprintf(out, "  %-4s %-40s perms %-8s %s:%d\n", e.Kind, e.Value, codes(e.Perms), e.File, e.Line)
					ia.Entries = append(ia.Entries, localapi.ImportEntry{Kind: store.EntryKind(e.Kind), Value: e.Value, Perms: e.Perms, Comment: e.Comment})
				}
				req.Accounts = append(req.Accounts, ia)
			}
			for _, s := range res.Skipped {
				fmt.Fprintf(out, "skipped %s:%d: %s\n    %s\n", s.File, s.Line, s.Reason, s.Text)
			}
			if dryRun {
				fmt.Fprintln(out, "dry run: nothing imported")
				return nil
			}
			c, err := g.client(false)
			if err != nil {
				return err
			}
			n := 0
			for _, a := range req.Accounts {
				n += len(a.Entries)
			}
			done := progress(cmd, fmt.Sprintf("importing %s", plural(n, "entry")))
			ir, err := c.Import(cmd.Context(), req)
			done(err)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "imported: %s created (%s), %d kept, %s added, %d already present\n",
				plural(len(ir.Created), "account"), strings.Join(ir.Created, ", "), len(ir.Kept), plural(len(ir.Added), "entry"), len(ir.Already))
			return nil
		},
	}
	tm.Flags().BoolVar(&dryRun, "dry-run", false, "only show the mapping")
	cmd.AddCommand(tm)
	return cmd
}

// parseTM3File reads an account file (NAME.iptables) or a firewall file.
func parseTM3File(path string) (tm3.Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return tm3.Result{}, fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	if strings.HasSuffix(filepath.Base(path), ".iptables") {
		return tm3.ParseAccountFile(f, path)
	}
	return tm3.ParseIPTables(f, path)
}

// codes prints permission codes as the CLI takes them; "-" for none (the
// account's, for an entry; nothing opened, for an account).
func codes(cs []int) string {
	if len(cs) == 0 {
		return "-"
	}
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = fmt.Sprint(c)
	}
	return strings.Join(s, ",")
}
