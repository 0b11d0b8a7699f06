package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/entryfile"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// allowFile adds every account and entry of a whitelist file in one
// transaction: all of it, or, if any value is refused, nothing.
func allowFile(cmd *cobra.Command, g *globals, path string) error {
	var in io.Reader = cmd.InOrStdin()
	name := "stdin"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("allow --file: %w", err)
		}
		defer f.Close()
		in, name = f, path
	}
	doc, err := entryfile.Read(in, name)
	if err != nil {
		return err
	}
	req, err := importOf(doc)
	if err != nil {
		return err
	}
	if len(doc.Providers) > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "note: %s lists providers (%v); they are not imported: dialgate providers enable ...\n", name, doc.Providers)
	}
	c, err := g.client(false)
	if err != nil {
		return err
	}
	done := progress(cmd, fmt.Sprintf("adding %d entries and %d accounts from %s", len(doc.Entries), len(doc.Accounts), name))
	res, err := c.Import(cmd.Context(), req)
	done(err)
	if err != nil {
		return err
	}
	cmd.Printf("%s: %s created, %d kept, %s added, %d already present\n",
		name, plural(len(res.Created), "account"), len(res.Kept), plural(len(res.Added), "entry"), len(res.Already))
	return nil
}

// importOf groups a file's entries by account for one import request.
// Perms are checked here for the shape only; the daemon checks them
// again with everything else.
func importOf(doc entryfile.Document) (localapi.ImportRequest, error) {
	req := localapi.ImportRequest{Source: "file", Accounts: []localapi.ImportAccount{}}
	at := map[string]int{}
	account := func(name string) *localapi.ImportAccount {
		i, ok := at[name]
		if !ok {
			i = len(req.Accounts)
			at[name] = i
			req.Accounts = append(req.Accounts, localapi.ImportAccount{Name: name, MustExist: true})
		}
		return &req.Accounts[i]
	}
	codes := func(s string, line int, what string) ([]int, error) {
		if s == "" {
			return nil, nil
		}
		p, err := auth.ParsePerms(s)
		if err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", line, what, err)
		}
		return p.Codes(), nil
	}
	for _, a := range doc.Accounts {
		ia := account(a.Name)
		if !ia.MustExist {
			return req, usageError{fmt.Errorf("line %d: account %s is defined twice", a.Line, a.Name)}
		}
		perms, err := codes(a.Perms, a.Line, "account "+a.Name)
		if err != nil {
			return req, err
		}
		ia.MustExist, ia.Perms, ia.Comment = false, perms, a.Comment
	}
	for _, e := range doc.Entries {
		perms, err := codes(e.Perms, e.Line, e.Value)
		if err != nil {
			return req, err
		}
		ia := account(e.Account)
		ia.Entries = append(ia.Entries, localapi.ImportEntry{Kind: store.EntryKind(e.Kind), Value: e.Value, Perms: perms,
			Comment: e.Comment, Force: e.Force, RefreshSeconds: e.RefreshSeconds})
	}
	return req, nil
}

// progress says on a terminal (stderr) that a long operation is under
// way and how long it took; elsewhere it says nothing, so scripts see
// only the result.
func progress(cmd *cobra.Command, what string) func(error) {
	f, ok := cmd.ErrOrStderr().(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return func(error) {}
	}
	start := time.Now()
	fmt.Fprintf(f, "%s ...", what)
	return func(err error) {
		if err != nil {
			fmt.Fprintln(f, " failed")
			return
		}
		fmt.Fprintf(f, " done in %.1f s\n", time.Since(start).Seconds())
	}
}

func newExportCmd(g *globals) *cobra.Command {
	var out string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the whitelist (accounts and entries, no passcodes or grants) as a file allow --file reads back",
		Long: `Writes every account (name, perms, comment) and every entry (value, perms,
comment, refresh, force) as a whitelist file, text by default or JSON, to
standard output or to --output (written beside, mode 0600, then renamed).
Passcodes, door numbers and grants are not exported; entries of trusted
providers are named in a comment line instead (enable them with dialgate
providers enable). dialgate allow --file reads the file back, on this
server or another.`,
		Example: `  dialgate export --output /root/whitelist.txt
  dialgate allow --file /root/whitelist.txt`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(false)
			if err != nil {
				return err
			}
			doc, err := c.Export(cmd.Context())
			if err != nil {
				return err
			}
			var b bytes.Buffer
			if asJSON {
				enc := json.NewEncoder(&b)
				enc.SetIndent("", "  ")
				err = enc.Encode(doc)
			} else {
				header := fmt.Sprintf("dialgate export, %s: %d accounts, %d entries\nread back with: dialgate allow --file FILE",
					time.Now().Format(time.RFC3339), len(doc.Accounts), len(doc.Entries))
				err = entryfile.Write(&b, doc, header)
			}
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(b.Bytes())
				return err
			}
			if err := writeFileAtomic(out, b.Bytes()); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			cmd.Printf("exported %d accounts and %d entries to %s\n", len(doc.Accounts), len(doc.Entries), out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write to `FILE` instead of standard output")
	cmd.Flags().BoolVar(&asJSON, "json", false, "write JSON instead of text")
	return cmd
}

// writeFileAtomic writes data beside path, mode 0600, and renames it over
// path, so a reader never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func newEntryCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "entry", Short: "Change a whitelist entry in place (it keeps its ID)"}
	var perms, comment string
	var refresh time.Duration
	var force bool
	set := &cobra.Command{
		Use:   "set ID",
		Short: "Change an entry's perms, comment or FQDN refresh interval",
		Long: `Changes an entry without removing it: it keeps its ID and is never out of
the firewall in between. --perms "" makes it take its account's perms again.
Narrowing perms is checked by the SSH lockout guard, like deny.`,
		Example: `  dialgate entry set e12 --perms 1,2
  dialgate entry set e12 --comment "hotel, until Friday"
  dialgate entry set e14 --refresh 1m`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req localapi.UpdateEntryRequest
			if cmd.Flags().Changed("perms") {
				req.Perms = &perms
			}
			if cmd.Flags().Changed("comment") {
				req.Comment = &comment
			}
			if cmd.Flags().Changed("refresh") {
				if refresh < 0 || refresh%time.Second != 0 {
					return usageError{errFlag("--refresh takes whole seconds, e.g. 90s or 5m (0 for the default)")}
				}
				s := int64(refresh / time.Second)
				req.RefreshSeconds = &s
			}
			if req.Perms == nil && req.Comment == nil && req.RefreshSeconds == nil {
				return usageError{errFlag("nothing to change: give --perms, --comment or --refresh")}
			}
			req.Force = force
			c, err := g.client(force)
			if err != nil {
				return err
			}
			e, err := c.UpdateEntry(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			perms := describePerms(e.Perms)
			if e.Inherited {
				perms += " (the account's)"
			}
			cmd.Printf("%s: %s %s of %s: perms %s", e.ID, e.Kind, e.Value, e.Account, perms)
			if e.Comment != "" {
				cmd.Printf(", comment %q", e.Comment)
			}
			cmd.Println()
			return nil
		},
	}
	set.Flags().StringVar(&perms, "perms", "", "permission codes, e.g. 1,8, within the account's; \"\" for the account's")
	set.Flags().StringVar(&comment, "comment", "", "free text shown in status")
	set.Flags().DurationVar(&refresh, "refresh", 0, "for an fqdn entry: re-resolve every `DURATION`, e.g. 1m (0: fqdn.interval)")
	set.Flags().BoolVar(&force, "force", false, "perms wider than the account's; or even if it cuts off your own SSH session")
	cmd.AddCommand(set)
	return cmd
}
