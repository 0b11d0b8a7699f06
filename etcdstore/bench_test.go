package etcdstore_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dialgate/dialgate/etcdstore"
	"github.com/dialgate/dialgate/etcdtest"
	"github.com/dialgate/dialgate/store"
)

// benchChanges is how many changes the propagation benchmark makes
// (DIALGATE_BENCH_CHANGES overrides, for a quick run).
func benchChanges() int {
	if n, err := strconv.Atoi(os.Getenv("DIALGATE_BENCH_CHANGES")); err == nil && n > 0 {
		return n
	}
	return 200
}

func percentiles(b *testing.B, name string, ds []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(ds)
	p50, p99 = ds[len(ds)/2], ds[len(ds)*99/100]
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(p50), name+"-p50-ms")
	b.ReportMetric(ms(p99), name+"-p99-ms")
	return p50, p99
}

func benchEntry(i int) store.Entry {
	a := netip.AddrFrom4([4]byte{198, 18, byte(i / 250), byte(i%250 + 1)})
	return store.Entry{Account: "bench", Kind: store.KindIP, Value: a.String(), Created: time.Now()}
}

// BenchmarkStorePropagation is BenchmarkSharedPropagation of
// cmd/dialgate without the daemons and their kernels: three stores on a
// three-member etcd, each through its own cable (unix sockets, as the
// daemons in their namespaces), DIALGATE_BENCH_CHANGES (default 200)
// entries added one by one on A. It reports the commit on A (etcd)
// against the same change on a plain bbolt file in the same run
// (commit-etcd/bbolt), and the time from A's Update returning to the
// entry being readable in B's and C's replicas with their Changed
// signalled: the store's share of the end-to-end propagation.
func BenchmarkStorePropagation(b *testing.B) {
	changes := benchChanges() * b.N
	c := etcdtest.Start(b, etcdtest.Options{Members: 3})
	prefix := newPrefix()
	var nodes []*etcdstore.Store
	for _, name := range []string{"a", "b", "c"} {
		cfg := config(b, c.Cable(b).UnixEndpoints(), prefix, name)
		cfg.RequestTimeout = 5 * time.Second
		if name == "a" {
			seed(b, cfg)
		}
		nodes = append(nodes, open(b, cfg))
	}
	add := func(s store.Store, e store.Entry) error {
		return s.Update(func(tx store.Tx) error { _, err := tx.AddEntry(e); return err })
	}
	account := func(tx store.Tx) error {
		return tx.PutAccount(store.Account{Name: "bench", Perms: store.NewPermSet(1), Enabled: true})
	}
	if err := nodes[0].Update(account); err != nil {
		b.Fatal(err)
	}
	local, err := store.Open(filepath.Join(b.TempDir(), "local.db"), store.Options{Create: true})
	if err != nil {
		b.Fatal(err)
	}
	defer local.Close()
	if err := local.Update(account); err != nil {
		b.Fatal(err)
	}

	var commitEtcd, commitBolt []time.Duration
	seen := make([][]time.Duration, 2)
	b.ResetTimer()
	for i := 0; i < changes; i++ {
		e := benchEntry(i)
		t0 := time.Now()
		if err := add(local, e); err != nil {
			b.Fatal(err)
		}
		commitBolt = append(commitBolt, time.Since(t0))

		for _, s := range nodes[1:] {
			select { // a stale signal would end the wait early
			case <-s.Changed():
			default:
			}
		}
		t0 = time.Now()
		if err := add(nodes[0], e); err != nil {
			b.Fatalf("change %d on a: %v", i, err)
		}
		t1 := time.Now()
		commitEtcd = append(commitEtcd, t1.Sub(t0))
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for k, s := range nodes[1:] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				at, err := waitEntry(s, e.Value, 10*time.Second)
				if err == nil {
					seen[k] = append(seen[k], at.Sub(t1))
				}
				errs[k] = err
			}()
		}
		wg.Wait()
		for k, err := range errs {
			if err != nil {
				b.Fatalf("change %d on a, replica of %s: %v", i, []string{"b", "c"}[k], err)
			}
		}
	}
	b.StopTimer()
	ep50, ep99 := percentiles(b, "commit-etcd", commitEtcd)
	bp50, bp99 := percentiles(b, "commit-bbolt", commitBolt)
	b.ReportMetric(float64(ep50)/float64(bp50), "commit-etcd/bbolt-p50")
	b.ReportMetric(float64(ep99)/float64(bp99), "commit-etcd/bbolt-p99")
	percentiles(b, "replica-b", seen[0])
	percentiles(b, "replica-c", seen[1])
}

// waitEntry waits until s's replica holds an entry of value, each look
// after a Changed signal (or 5 ms), and returns when it found it.
func waitEntry(s *etcdstore.Store, value string, limit time.Duration) (time.Time, error) {
	timeout := time.After(limit)
	for {
		var found bool
		err := s.View(func(tx store.Tx) error {
			es, err := tx.Entries()
			found = slices.ContainsFunc(es, func(e store.Entry) bool { return e.Value == value })
			return err
		})
		if err != nil {
			return time.Time{}, err
		}
		if found {
			return time.Now(), nil
		}
		select {
		case <-s.Changed():
		case <-time.After(5 * time.Millisecond):
		case <-timeout:
			return time.Time{}, fmt.Errorf("entry %s not in the replica after %s", value, limit)
		}
	}
}
