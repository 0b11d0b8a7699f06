package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dialgate/dialgate/daemon"
)

func newStoreCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Move the database between the local file (bbolt) and a shared etcd",
		Long: `dialgate keeps its database in a local file (bbolt, the default) or in an
etcd cluster shared by several PBXes ([store] backend = "etcd"), each PBX
keeping a local replica it filters from when etcd is out of reach.`,
	}
	cmd.AddCommand(newStoreMigrateCmd(g))
	return cmd
}

func newStoreMigrateCmd(g *globals) *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "migrate --to etcd|bbolt",
		Short: "Copy the whole database to etcd, or from etcd to the db file, in one step",
		Long: `migrate --to etcd copies the database file (db) to the etcd of [store]
endpoints under [store] prefix; migrate --to bbolt copies the database held
in etcd to a new file at db. Stop the daemon first: changes made during the
move would be lost.

The copy appears whole or not at all: in etcd its last key is written last
and nothing reads the prefix before it; a file is renamed into place once
complete. The source is left as it was. A target that already holds a
database is refused (an etcd prefix with a dialgate database, an existing
file): nothing is merged or overwritten. Then set [store] backend and start
the daemon.`,
		Example: `  systemctl stop dialgate
  dialgate store migrate --to etcd
  sed -i 's/^backend = "bbolt"/backend = "etcd"/' /etc/dialgate/dialgate.toml
  systemctl start dialgate`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to != daemon.StoreEtcd && to != daemon.StoreBBolt {
				return usageError{fmt.Errorf("store migrate: --to %q: want etcd or bbolt", to)}
			}
			cfg, err := g.config()
			if err != nil {
				return err
			}
			return daemon.Migrate(cmd.Context(), daemon.MigrateOptions{Config: cfg, To: to, Out: cmd.OutOrStdout()})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "where the database goes: etcd or bbolt")
	return cmd
}
