package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Run applies the stored state to the kernel and serves the LocalAPI
// until ctx is done. It leaves the firewall in place when it returns.
func (d *Daemon) Run(ctx context.Context) error {
	// Claim everything a second dialgate would collide on before touching
	// the kernel: the LocalAPI socket, then this namespace's lock and the
	// kernel's owner mark. Otherwise a second daemon would apply its own
	// state first and only then find out it is not alone.
	ln, err := listenSocket(d.config().Socket)
	if err != nil {
		return err
	}
	release, err := claimKernel(ctx, d.fw, d.db, d.takeOver, d.log)
	if err != nil {
		ln.Close()
		os.Remove(d.config().Socket)
		return err
	}
	defer release()
	if err := d.purgeExpired(); err != nil && !d.storeOutage(err, "purge of expired grants at start") {
		ln.Close()
		os.Remove(d.config().Socket)
		return err
	}
	// The kernel gets the stored state (FQDNs at their last-known
	// addresses) at once; names are re-resolved after, in the background,
	// so a dead name server never delays the firewall.
	start := time.Now()
	d.mu.Lock()
	err = d.applyStored(ctx, false)
	d.mu.Unlock()
	if err != nil {
		ln.Close()
		os.Remove(d.config().Socket)
		return fmt.Errorf("initial apply: %w", err)
	}
	d.log.Info("firewall in place", "duration", time.Since(start))
	d.guard.load(ctx) // blocks the kernel kept across a restart
	if err := d.numberMissingAccounts(); err != nil && !d.storeOutage(err, "numbering of accounts at start") {
		ln.Close()
		os.Remove(d.config().Socket)
		return err
	}
	// Before the LocalAPI serves: it reads what they set.
	if err := d.startServices(ctx); err != nil {
		d.stopServices(context.Background())
		ln.Close()
		os.Remove(d.config().Socket)
		return err
	}
	srv := &http.Server{
		Handler:           d.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ConnContext:       withPeer,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	// Expired grants: the kernel dropped them through the set timeouts;
	// this keeps the store and the audit log in step, and takes out of
	// the kernel what it still holds after a wall-clock jump.
	go d.every(ctx, 30*time.Second, "purge expired grants", func() error { return d.purgeGrants(ctx) })
	if s, ok := d.db.(sharedDB); ok {
		go d.followStore(ctx, s)
	}
	// The kernel is checked against the store every second from now on.
	go d.newWatchdog(WatchdogInterval).run(ctx)
	go func() {
		if _, err := d.RefreshFQDNs(ctx, nil, false); err != nil && ctx.Err() == nil {
			d.log.Error("fqdn refresh at start", "err", err)
		}
		// Checked a few times per interval so per-entry intervals are
		// honoured too; only the names that are due are resolved.
		d.every(ctx, d.config().FQDN.Tick.Duration, "fqdn refresh", func() error {
			_, err := d.RefreshFQDNs(ctx, nil, true)
			return err
		})
	}()
	d.log.Info("dialgate serving", "socket", d.config().Socket, "db", d.db.Path())
	var runErr error
	select {
	case <-ctx.Done():
	case err := <-errc:
		runErr = err
	case err := <-d.svc.fatal:
		runErr = err
	}
	// Stopping with a reload unconfirmed is not a confirmation.
	d.rollback()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Calls in progress finish (or are cut at the deadline).
	d.stopServices(sctx)
	err = errors.Join(runErr, srv.Shutdown(sctx))
	os.Remove(d.config().Socket)
	d.log.Info("dialgate stopped; firewall left in place")
	return err
}

// every runs fn every interval until ctx ends, logging its failures.
func (d *Daemon) every(ctx context.Context, interval time.Duration, what string, fn func() error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := fn(); err != nil && ctx.Err() == nil {
				d.log.Error(what, "err", err)
			}
		}
	}
}

// listenSocket creates the LocalAPI socket, mode 0600 in a 0700
// directory. A live socket means another daemon runs: refuse. A dead one
// is a leftover from a crash: replace it.
func listenSocket(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("localapi: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("localapi: %s is in use: another dialgate daemon is running", path)
	}
	os.Remove(path)
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("localapi: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("localapi: %w", err)
	}
	return ln, nil
}
