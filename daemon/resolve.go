package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/dialgate/dialgate/store"
)

// Resolver looks up the A and AAAA records of a name.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

type systemResolver struct{}

func (systemResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, network, host)
}

// resolve looks name up with the configured timeout and returns the
// updated cache record. A failure keeps the last-known addresses: a dead
// name server must never empty the whitelist (the Travelin' Man 3
// lesson). Answers that are not usable unicast addresses are dropped.
func (d *Daemon) resolve(ctx context.Context, name string, prev store.FQDNRecord) store.FQDNRecord {
	ctx, cancel := context.WithTimeout(ctx, d.config().FQDN.Timeout.Duration)
	defer cancel()
	rec := prev
	rec.Name = name
	rec.LastAttempt = d.now()
	addrs, err := d.resolver.LookupNetIP(ctx, "ip", name)
	var good []string
	for _, a := range addrs {
		a = a.Unmap()
		if a.IsUnspecified() || a.IsMulticast() || !a.IsValid() {
			d.log.Warn("fqdn answer ignored", "fqdn", name, "addr", a.String())
			continue
		}
		good = append(good, a.String())
	}
	if err == nil && len(good) == 0 {
		err = fmt.Errorf("no usable address")
	}
	if err != nil {
		rec.LastError = err.Error()
		d.log.Warn("fqdn resolution failed; keeping last-known addresses", "fqdn", name, "kept", len(rec.Addrs), "err", err)
		return rec
	}
	slices.Sort(good)
	rec.Addrs = slices.Compact(good)
	rec.LastSuccess = rec.LastAttempt
	rec.LastError = ""
	return rec
}

// mergeFQDN folds a fresh lookup into a stored record: a failed lookup
// keeps the stored addresses.
func mergeFQDN(old, fresh store.FQDNRecord) store.FQDNRecord {
	if fresh.LastError != "" {
		fresh.Addrs, fresh.LastSuccess = old.Addrs, old.LastSuccess
	}
	return fresh
}

// refreshFQDNs resolves every FQDN entry concurrently (a slow name costs
// one timeout, not one per name) and stores the results.
func (d *Daemon) refreshFQDNs(ctx context.Context) {
	var names []string
	prev := map[string]store.FQDNRecord{}
	err := d.db.View(func(tx store.Tx) error {
		es, err := tx.Entries()
		if err != nil {
			return err
		}
		for _, e := range es {
			if e.Kind != store.KindFQDN {
				continue
			}
			if _, seen := prev[e.Value]; seen {
				continue
			}
			names = append(names, e.Value)
			prev[e.Value], _ = tx.FQDN(e.Value)
		}
		return nil
	})
	if err != nil || len(names) == 0 {
		return
	}
	results := make([]store.FQDNRecord, len(names))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = d.resolve(ctx, n, prev[n])
		}()
	}
	wg.Wait()
	err = d.db.Update(func(tx store.Tx) error {
		for _, r := range results {
			if err := tx.PutFQDN(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		d.log.Error("fqdn cache update", "err", err)
	}
}
