package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dialgate/dialgate/daemon"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

func newDBCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Back up and check the database",
		Long: `The database (db in the config, /var/lib/dialgate/dialgate.db by default)
holds accounts, entries, grants, the audit log and passcode hashes. Only
"dialgate init" creates it: serve and restore refuse a missing, empty or
damaged one and leave the kernel firewall as it is. Keep backups:

  dialgate db backup /root/dialgate-$(date +%F).db

To restore one: stop dialgate (systemctl stop dialgate), copy the backup
over the database path with mode 0600 (install -m 0600 BACKUP
/var/lib/dialgate/dialgate.db), then start it again.`,
	}
	cmd.AddCommand(newDBBackupCmd(g), newDBCheckCmd(g))
	return cmd
}

func newDBBackupCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent copy of the database to FILE (mode 0600), daemon running or not",
		Long: `backup copies the database to FILE. While the daemon runs the copy comes
through it, from one read transaction, and the daemon keeps serving; when it
does not run, straight from the database file. The copy goes to a temporary
file next to FILE, is checked as "dialgate db check" checks, and only then
replaces FILE, with mode 0600: it holds passcode hashes.`,
		Example: `  dialgate db backup /root/dialgate-$(date +%F).db
  dialgate db backup /var/backups/dialgate.db --json`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			file := args[0]
			if samePath(file, cfg.DB) {
				return usageError{fmt.Errorf("%s is the database itself; give the backup another path", file)}
			}
			c, err := g.client(false)
			if err != nil {
				return err
			}
			from := "through the daemon"
			rep, err := store.SaveBackup(file, func(w io.Writer) error {
				_, err := c.Backup(cmd.Context(), w)
				return err
			})
			if errors.Is(err, localapi.ErrNotRunning) {
				from = "from the database file (the daemon is not running)"
				if cfg.Store.Etcd() {
					from = "from this node's replica (the daemon is not running)"
				}
				rep, err = backupOffline(cfg, file)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), rep)
			}
			src := cfg.DB
			if cfg.Store.Etcd() {
				src = "the shared store (replica " + cfg.Store.Replica + ")"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backed up %s to %s %s, mode 0600\n", src, rep.Path, from)
			fmt.Fprintf(cmd.OutOrStdout(), "checked: %s\n", reportLine(rep))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the check of the copy as JSON")
	return cmd
}

// checkOffline checks the database file, or with the etcd backend this
// node's replica, when no daemon runs.
func checkOffline(cfg daemon.Config) (store.CheckReport, error) {
	if !cfg.Store.Etcd() {
		return store.CheckFile(cfg.DB, 0)
	}
	db, err := daemon.OpenReplicaOffline(cfg)
	if err != nil {
		return store.CheckReport{}, err
	}
	defer db.Close()
	return db.CheckCopy()
}

func backupOffline(cfg daemon.Config, file string) (store.CheckReport, error) {
	var db *store.DB
	var err error
	if cfg.Store.Etcd() {
		db, err = daemon.OpenReplicaOffline(cfg)
	} else {
		db, err = store.Open(cfg.DB, store.Options{ReadOnly: true})
	}
	if err != nil {
		return store.CheckReport{}, err
	}
	defer db.Close()
	return store.SaveBackup(file, func(w io.Writer) error {
		_, err := db.Backup(w)
		return err
	})
}

func newDBCheckCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check [FILE]",
		Short: "Check the database, or a backup FILE, for damage",
		Long: `check reads the whole database and exits 0 if it is sound, 1 naming the
damage if not: bbolt's page structure and consistency check, dialgate's
schema, every record, that entries and grants belong to accounts, and the
door index. Without FILE it checks the database: a copy taken by the daemon
while it runs, the file itself when it does not. With FILE it checks that
file, a backup before you restore it, say. It changes nothing.`,
		Example: `  dialgate db check
  dialgate db check /root/dialgate-2026-12-01.db`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rep store.CheckReport
			var err error
			if len(args) == 1 {
				rep, err = store.CheckFile(args[0], 0)
			} else {
				cfg, cerr := g.config()
				if cerr != nil {
					return cerr
				}
				c, cerr := g.client(false)
				if cerr != nil {
					return cerr
				}
				rep, err = c.CheckDB(cmd.Context())
				if errors.Is(err, localapi.ErrNotRunning) {
					rep, err = checkOffline(cfg)
				}
			}
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), rep)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: sound; %s\n", rep.Path, reportLine(rep))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func reportLine(r store.CheckReport) string {
	s := strings.Join([]string{plural(int(r.Bytes), "byte"), plural(r.Accounts, "account"), plural(r.Entries, "entry"), plural(r.Grants, "grant"),
		plural(r.FQDNs, "dynamic-DNS name"), plural(r.Lockouts, "lockout record"), plural(r.Audit, "audit record")}, ", ")
	if !r.DoorIndex {
		s += " (no door index yet: the daemon builds it at start)"
	}
	return s
}

// samePath reports whether a and b name the same file, or would.
func samePath(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	if err1 == nil && err2 == nil {
		return os.SameFile(fa, fb)
	}
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}
