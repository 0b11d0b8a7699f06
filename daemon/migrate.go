package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/dialgate/dialgate/etcdstore"
	"github.com/dialgate/dialgate/store"
)

// ensureShared makes sure the shared store holds a dialgate database,
// creating an empty one (what "dialgate init" creates in a file) if it
// holds none; it reports whether it created one.
func ensureShared(ctx context.Context, cfg Config) (bool, error) {
	dir, err := os.MkdirTemp("", "dialgate-init-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	fresh, err := store.Open(filepath.Join(dir, "dialgate.db"), store.Options{Create: true})
	if err != nil {
		return false, err
	}
	ops, err := collectOps(fresh)
	fresh.Close()
	if err != nil {
		return false, err
	}
	err = etcdstore.Push(ctx, cfg.Store.etcdConfig(), ops, nil)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrExists):
		return false, nil
	}
	return false, err
}

func collectOps(db *store.DB) ([]store.Op, error) {
	var ops []store.Op
	err := db.Ops(func(op store.Op) error { ops = append(ops, op); return nil })
	return ops, err
}

// openInitStore opens the store "dialgate init" fills: the file, or the
// shared store (created if empty) through this node's replica.
func openInitStore(ctx context.Context, cfg Config, out io.Writer) (store.Store, string, error) {
	if !cfg.Store.Etcd() {
		db, err := store.Open(cfg.DB, store.Options{Create: true})
		return db, cfg.DB, err
	}
	created, err := ensureShared(ctx, cfg)
	if err != nil {
		return nil, "", err
	}
	where := fmt.Sprintf("etcd %s prefix %s", cfg.Store.Endpoints, cfg.Store.Prefix)
	if created {
		fmt.Fprintf(out, "created an empty dialgate database in %s\n", where)
	}
	s, err := etcdstore.Open(ctx, cfg.Store.etcdConfig())
	if err != nil {
		return nil, "", err
	}
	return s, where + ", replica " + cfg.Store.Replica, nil
}

// MigrateOptions are the facts of `dialgate store migrate`.
type MigrateOptions struct {
	Config Config
	// To is StoreEtcd (the file at Config.DB into etcd) or StoreBBolt
	// (etcd into a new file at Config.DB).
	To  string
	Out io.Writer
}

// Migrate moves a whole database between the bbolt file and etcd in one
// step: the target appears complete or not at all (etcd: its mark is
// written last; bbolt: a temporary file renamed into place) and the
// source is left as it was. A target that already holds a database is
// refused, never merged into or overwritten.
func Migrate(ctx context.Context, opts MigrateOptions) error {
	cfg, out := opts.Config, opts.Out
	if out == nil {
		out = io.Discard
	}
	if len(cfg.Store.Endpoints) == 0 {
		return errors.New("store migrate: no etcd endpoints in [store] (set endpoints, prefix and the TLS files first)")
	}
	ec := cfg.Store.etcdConfig()
	start := time.Now()
	switch opts.To {
	case StoreEtcd:
		db, err := store.Open(cfg.DB, store.Options{ReadOnly: true})
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("store migrate: %w; stop the daemon first (systemctl stop dialgate): changes made during the move would be lost", err)
		}
		if err != nil {
			return fmt.Errorf("store migrate: %w", err)
		}
		ops, err := collectOps(db)
		db.Close()
		if err != nil {
			return fmt.Errorf("store migrate: %w", err)
		}
		if err := etcdstore.Push(ctx, ec, ops, nil); err != nil {
			return fmt.Errorf("store migrate: %w", err)
		}
		fmt.Fprintf(out, "copied %s (%d keys) to etcd %v prefix %s in %s\n", cfg.DB, len(ops), cfg.Store.Endpoints, cfg.Store.Prefix, time.Since(start).Round(time.Millisecond))
		fmt.Fprintf(out, "the file is left as it was; set backend = \"etcd\" in [store] and start the daemon\n")
		return nil
	case StoreBBolt:
		ops, rev, err := etcdstore.Pull(ctx, ec)
		if err != nil {
			return fmt.Errorf("store migrate: %w", err)
		}
		if err := store.CreateFromOps(cfg.DB, ops); err != nil {
			return fmt.Errorf("store migrate: %w", err)
		}
		fmt.Fprintf(out, "copied etcd %v prefix %s at revision %d (%d keys) to %s in %s\n", cfg.Store.Endpoints, cfg.Store.Prefix, rev, len(ops), cfg.DB, time.Since(start).Round(time.Millisecond))
		fmt.Fprintf(out, "etcd is left as it was; set backend = \"bbolt\" in [store] and restart the daemon\n")
		return nil
	}
	return fmt.Errorf("store migrate: --to %q, want %q or %q", opts.To, StoreEtcd, StoreBBolt)
}

// OpenReplicaOffline opens this node's replica of the shared store alone,
// read only, for the CLI's offline checks and backups (no daemon holds
// it); ErrNoDatabase unless [store] backend is etcd.
func OpenReplicaOffline(cfg Config) (*store.DB, error) {
	if !cfg.Store.Etcd() {
		return nil, fmt.Errorf("store backend %q has no replica: %w", cfg.Store.Backend, store.ErrNoDatabase)
	}
	return etcdstore.OpenOffline(cfg.Store.etcdConfig())
}
