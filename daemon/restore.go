package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dialgate/dialgate/etcdstore"
	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/store"
)

// Restore applies the stored state to the kernel once and returns: what
// a boot runs before the network comes up, so the server is filtered
// from its first packet even if the daemon then fails to start. Grants
// come back with their remaining life; FQDNs at their last-known
// addresses. It refuses to run while the daemon holds the database, and
// to replace a firewall another dialgate install owns unless force.
func Restore(ctx context.Context, cfg Config, fw firewall.Backend, log *slog.Logger, force bool) error {
	var db database
	var err error
	if cfg.Store.Etcd() {
		// A boot restores before the network is up: the replica alone.
		var r *store.DB
		if r, err = etcdstore.OpenOffline(cfg.Store.etcdConfig()); err == nil {
			db = r
		}
	} else {
		db, err = openDB(cfg.DB)
	}
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("restore: %w; the daemon keeps the firewall itself (use dialgate reload)", err)
	}
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer db.Close()
	if log == nil {
		log = slog.Default()
	}
	release, err := claimKernel(ctx, fw, db, force, log)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer release()
	var st firewall.State
	err = db.View(func(tx store.Tx) (err error) {
		st, err = desiredState(tx, cfg.FirewallRules(), time.Now())
		return err
	})
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := fw.Apply(ctx, st); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if log != nil {
		log.Info("firewall restored from the database", "db", db.Path())
	}
	return nil
}
