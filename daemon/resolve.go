package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/dialgate/dialgate/localapi"
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

// resolve looks name up within the configured timeout and returns the
// updated cache record. A failure keeps the last-known addresses (the
// caller applies the grace period): a dead name server must never empty
// the whitelist, the Travelin' Man 3 lesson. Answers that are not
// unicast, or that are private or loopback when the entry did not ask for
// them (a public name resolving there is a DNS server lying or a
// misconfiguration), are dropped with a log line.
func (d *Daemon) resolve(ctx context.Context, name string, prev store.FQDNRecord, allowPrivate bool) store.FQDNRecord {
	ctx, cancel := context.WithTimeout(ctx, d.config().FQDN.Timeout.Duration)
	defer cancel()
	rec := prev
	rec.Name = name
	rec.LastAttempt = d.now()
	addrs, err := d.resolver.LookupNetIP(ctx, "ip", name)
	var good []string
	for _, a := range addrs {
		a = a.Unmap()
		bad := !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.Zone() != ""
		private := a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast()
		if bad || (private && !allowPrivate) {
			d.log.Warn("fqdn answer ignored", "fqdn", name, "addr", a.String(), "private", private)
			continue
		}
		good = append(good, a.String())
	}
	if err == nil && len(good) == 0 {
		err = errors.New("no usable address in the answer")
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

// fqdnName is one name to refresh and what its entries ask of it.
type fqdnName struct {
	name         string
	interval     time.Duration
	allowPrivate bool
	prev         store.FQDNRecord
}

// fqdnNames lists the distinct names of the FQDN entries; an entry's own
// refresh interval wins when shorter than the default.
func (d *Daemon) fqdnNames() ([]fqdnName, error) {
	def := d.config().FQDN.Interval.Duration
	byName := map[string]*fqdnName{}
	var order []string
	err := d.db.View(func(tx store.Tx) error {
		es, err := tx.Entries()
		if err != nil {
			return err
		}
		for _, e := range es {
			if e.Kind != store.KindFQDN {
				continue
			}
			n := byName[e.Value]
			if n == nil {
				n = &fqdnName{name: e.Value, interval: def}
				if rec, err := tx.FQDN(e.Value); err == nil {
					n.prev = rec
				} else if !errors.Is(err, store.ErrNotFound) {
					return err
				}
				byName[e.Value] = n
				order = append(order, e.Value)
			}
			if e.Refresh > 0 && e.Refresh < n.interval {
				n.interval = e.Refresh
			}
			n.allowPrivate = n.allowPrivate || e.Force
		}
		return nil
	})
	out := make([]fqdnName, 0, len(order))
	for _, name := range order {
		out = append(out, *byName[name])
	}
	return out, err
}

// RefreshFQDNs re-resolves names (all FQDN entries when names is empty;
// only those due when due is set) concurrently on a bounded pool, each
// within the per-name timeout, so a dead name costs one timeout however
// many there are. Changed addresses only add and remove set members; a
// name that keeps failing past the grace period loses its addresses, with
// an audit record.
func (d *Daemon) RefreshFQDNs(ctx context.Context, names []string, due bool) ([]store.FQDNRecord, error) {
	all, err := d.fqdnNames()
	if err != nil {
		return nil, err
	}
	now := d.now()
	var todo []fqdnName
	for _, n := range all {
		switch {
		case len(names) > 0 && !slices.Contains(names, n.name):
		case due && now.Sub(n.prev.LastAttempt) < n.interval:
		default:
			todo = append(todo, n)
		}
	}
	for _, want := range names {
		if !slices.ContainsFunc(all, func(n fqdnName) bool { return n.name == want }) {
			return nil, fmt.Errorf("fqdn %q: %w (no entry has this name; see dialgate fqdn list)", want, store.ErrNotFound)
		}
	}
	if len(todo) == 0 {
		return nil, nil
	}
	start := time.Now()
	defer func() {
		d.metrics.fqdnDuration.Observe(time.Since(start).Seconds())
		d.log.Info("fqdn refresh", "names", len(todo), "duration", time.Since(start))
	}()
	results := make([]store.FQDNRecord, len(todo))
	workers := d.config().FQDN.Workers
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for i, n := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i] = d.resolve(ctx, n.name, n.prev, n.allowPrivate)
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r.LastError != "" {
			d.metrics.fqdnFailures.Inc()
		}
	}
	grace := d.config().FQDN.Grace.Duration
	// A shared store takes a bounded number of writes per change: the
	// names are stored in batches that fit (one change with bbolt).
	batch := len(results)
	if c := d.config().Store; c.Etcd() {
		batch = max((c.MaxTxnOps-8)/2, 1)
	}
	for from := 0; from < len(results) && err == nil; from += batch {
		err = d.storeFQDNs(ctx, results[from:min(from+batch, len(results))], grace, now)
	}
	return results, err
}

// storeFQDNs stores a batch of lookup results in one change, updating
// the records of results (a name past its grace period loses its
// addresses).
func (d *Daemon) storeFQDNs(ctx context.Context, results []store.FQDNRecord, grace time.Duration, now time.Time) error {
	return d.change(ctx, Guard{}, func(tx store.Tx) ([]netip.Prefix, error) {
		var touched []netip.Prefix
		es, err := tx.Entries()
		if err != nil {
			return nil, err
		}
		referenced := map[string]bool{}
		for _, e := range es {
			if e.Kind == store.KindFQDN {
				referenced[e.Value] = true
			}
		}
		for i, r := range results {
			if !referenced[r.Name] {
				continue // its entries were deleted meanwhile
			}
			// Compare with what is stored now, not the snapshot: another
			// refresh may have landed meanwhile.
			prev, err := tx.FQDN(r.Name)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
			if r.LastError != "" && !prev.LastSuccess.IsZero() {
				// A failed lookup keeps what is stored now.
				r.Addrs, r.LastSuccess = prev.Addrs, prev.LastSuccess
			}
			if r.LastError != "" && len(r.Addrs) > 0 && now.Sub(r.LastSuccess) > grace {
				if err := tx.Audit(store.AuditRecord{Action: "fqdn.expire", Actor: "daemon", Subject: r.Name, Result: "ok",
					Detail: fmt.Sprintf("no answer since %s (grace %s): dropped %v", r.LastSuccess.Format(time.RFC3339), grace, r.Addrs)}); err != nil {
					return nil, err
				}
				d.log.Warn("fqdn grace period over; addresses dropped", "fqdn", r.Name, "addrs", r.Addrs)
				r.Addrs = nil
				results[i] = r
			}
			if !slices.Equal(prev.Addrs, r.Addrs) {
				for _, a := range append(slices.Clone(prev.Addrs), r.Addrs...) {
					if p, err := parsePrefix(a); err == nil {
						touched = append(touched, p)
					}
				}
				d.log.Info("fqdn changed", "fqdn", r.Name, "from", prev.Addrs, "to", r.Addrs)
			}
			if err := tx.PutFQDN(r); err != nil {
				return nil, err
			}
		}
		return touched, nil
	})
}

// FQDNs lists every name with its cache state.
func (d *Daemon) FQDNs() ([]localapi.FQDNInfo, error) {
	names, err := d.fqdnNames()
	if err != nil {
		return nil, err
	}
	ids := map[string][]string{}
	err = d.db.View(func(tx store.Tx) error {
		es, err := tx.Entries()
		for _, e := range es {
			if e.Kind == store.KindFQDN {
				ids[e.Value] = append(ids[e.Value], e.ID)
			}
		}
		return err
	})
	now := d.now()
	out := make([]localapi.FQDNInfo, 0, len(names))
	for _, n := range names {
		fi := localapi.FQDNInfo{Name: n.name, Addrs: n.prev.Addrs, LastSuccess: n.prev.LastSuccess, LastAttempt: n.prev.LastAttempt,
			LastError: n.prev.LastError, Interval: n.interval, Entries: ids[n.name]}
		if !fi.LastSuccess.IsZero() {
			fi.Age = now.Sub(fi.LastSuccess).Round(time.Second)
		}
		out = append(out, fi)
	}
	return out, err
}
