package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dialgate/dialgate/daemon"
	"github.com/dialgate/dialgate/etcdstore"
	"github.com/dialgate/dialgate/etcdtest"
	"github.com/dialgate/dialgate/firewall/fwtest"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// benchChanges is how many allows BenchmarkSharedPropagation makes
// (DIALGATE_BENCH_CHANGES overrides, for a quick run).
func benchChanges() int { return benchSize("DIALGATE_BENCH_CHANGES", 200, 0) }

// benchEntries is how many entries BenchmarkSharedInitialSync10k's
// database holds (DIALGATE_BENCH_ENTRIES overrides, for a quick run).
func benchEntries() int { return benchSize("DIALGATE_BENCH_ENTRIES", 10000, 30000) }

// apiClient is a LocalAPI client of e's daemon: its socket is a file, so
// the test process reaches it from outside the lab's namespace.
func (e *e2e) apiClient(tb testing.TB) *localapi.Client {
	cfg, err := daemon.LoadConfig(e.cfg, true)
	if err != nil {
		tb.Fatal(err)
	}
	return localapi.NewClient(cfg.Socket)
}

// BenchmarkSharedPropagation: three daemons on one three-member etcd. Each
// of DIALGATE_BENCH_CHANGES allows (default 200), each for a fresh
// address, is made on node A through its LocalAPI; from the allow
// returning, the client namespaces of B and C (and of A itself, the
// baseline without etcd's fan-out) send datagrams from that address and
// the first one accepted ends the measurement (A applies its own kernel
// before the allow returns, so its figure is the probe's floor). It also
// reports how long the allow call itself took. The goal is p50 <
// 100 ms and p99 < 1 s on B and C; it is reported, not asserted.
func BenchmarkSharedPropagation(b *testing.B) {
	changes := benchChanges() * b.N
	c := etcdtest.Start(b, etcdtest.Options{Members: 3})
	nodes := newSharedNodes(b, c, 3, "/dialgate-bench/", "")
	for _, n := range nodes {
		anyIP(b, n.lab)
		n.lab.Echo(b, "udp", 5060)
	}
	a := nodes[0]
	a.ok("account", "add", "bench", "--perms", "1")
	api := a.apiClient(b)

	lat := make([][]time.Duration, len(nodes))
	var allowCalls []time.Duration
	b.ResetTimer()
	for i := 0; i < changes; i++ {
		src := benchAddr(i % 30000)
		starts := make([]chan time.Time, len(nodes))
		got := make([]time.Time, len(nodes))
		errs := make([]error, len(nodes))
		var wg sync.WaitGroup
		for k, n := range nodes {
			starts[k] = make(chan time.Time, 1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[k], errs[k] = firstAccepted(n.lab, src, starts[k], 10*time.Second)
			}()
		}
		before := time.Now()
		_, err := api.AddEntry(context.Background(), localapi.AddEntryRequest{Account: "bench", Kind: store.KindIP, Value: src.String()})
		t0 := time.Now()
		allowCalls = append(allowCalls, t0.Sub(before))
		for _, s := range starts {
			s <- t0
		}
		wg.Wait()
		if err != nil {
			b.Fatalf("allow %d on %s: %v", i, a.name, err)
		}
		for k := range nodes {
			if errs[k] != nil {
				b.Fatalf("allow %d on %s, packet on %s: %v", i, a.name, nodes[k].name, errs[k])
			}
			lat[k] = append(lat[k], got[k].Sub(t0))
		}
	}
	b.StopTimer()
	for k, n := range nodes {
		name := n.name
		if k == 0 {
			name += "-local"
		}
		percentiles(b, name, lat[k])
	}
	// What the allow itself took on A: the etcd commit and A's own
	// kernel apply, which is done when it returns.
	percentiles(b, "allow-call-on-a", allowCalls)
}

// seedEntries writes n ip entries (benchAddr(0) .. benchAddr(n-1)) of an
// account "bench" (SIP) straight into the bbolt database at path, in one
// transaction: the CLI would take minutes and measure nothing of the
// store being benchmarked.
func seedEntries(tb testing.TB, path string, n int) {
	tb.Helper()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx store.Tx) error {
		if err := tx.PutAccount(store.Account{Name: "bench", Perms: store.NewPermSet(1), Enabled: true}); err != nil {
			return err
		}
		now := time.Now()
		for i := 0; i < n; i++ {
			if _, err := tx.AddEntry(store.Entry{Account: "bench", Kind: store.KindIP, Value: benchAddr(i).String(), Created: now}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkSharedInitialSync10k: a database of 10 000 entries
// (DIALGATE_BENCH_ENTRIES overrides) made by `dialgate init` and filled
// in one bbolt transaction, then, in seconds:
//
//   - migrate: the whole database read from the file and pushed to a
//     three-member etcd (what `dialgate store migrate --to etcd` does),
//     against a plain copy of the file (store Backup) in the same run
//     (migrate/backup);
//   - initial-sync: etcdstore.Open of a new node with an empty replica,
//     until it returns with the replica filled, at the default request
//     timeout;
//   - daemon-start-to-firewall: a new node's `dialgate serve` (empty
//     replica, the e2e tests' 1 s request timeout) from its start to its
//     kernel accepting the database's last address and dropping one it
//     does not hold.
func BenchmarkSharedInitialSync10k(b *testing.B) {
	n := benchEntries()
	c := etcdtest.Start(b, etcdtest.Options{Members: 3})

	src := newE2E(b)
	src.ok("init")
	seedEntries(b, src.dbPath(), n)

	var migrate, backup, initial, start time.Duration
	for i := 0; i < b.N; i++ {
		prefix := fmt.Sprintf("/bench10k-%d/", i)

		// The alternative: a plain copy of the file.
		t0 := time.Now()
		db, err := store.Open(src.dbPath(), store.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Create(filepath.Join(b.TempDir(), "backup.db"))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.Backup(f); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		backup += time.Since(t0)

		// The migration: read every key, push them in batches.
		t0 = time.Now()
		var ops []store.Op
		if err := db.Ops(func(op store.Op) error { ops = append(ops, op); return nil }); err != nil {
			b.Fatal(err)
		}
		db.Close()
		cfg := etcdstore.Config{Endpoints: c.Endpoints(), Prefix: prefix, Node: "migrate"}
		if err := etcdstore.Push(context.Background(), cfg, ops, nil); err != nil {
			b.Fatal(err)
		}
		migrate += time.Since(t0)
		if i == 0 {
			b.ReportMetric(float64(len(ops)), "keys")
		}

		// A new node's initial sync, library alone.
		cfg.Node = "pbx-new"
		cfg.Replica = filepath.Join(b.TempDir(), "replica.db")
		t0 = time.Now()
		s, err := etcdstore.Open(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		initial += time.Since(t0)
		var replicaOps int
		s.Replica().Ops(func(store.Op) error { replicaOps++; return nil })
		s.Close()
		if replicaOps != len(ops) {
			b.Fatalf("replica after the initial sync holds %d keys, want the %d pushed", replicaOps, len(ops))
		}

		// A new node's daemon, from start to firewall in place.
		start += daemonStartToFirewall(b, c, prefix, n)
	}
	per := func(d time.Duration) float64 { return d.Seconds() / float64(b.N) }
	b.ReportMetric(per(migrate), "migrate-s")
	b.ReportMetric(per(backup), "backup-s")
	b.ReportMetric(float64(migrate)/float64(backup), "migrate/backup")
	b.ReportMetric(per(initial), "initial-sync-s")
	b.ReportMetric(per(start), "daemon-start-to-firewall-s")
}

// daemonStartToFirewall starts `dialgate serve` on a new node of the
// database under prefix (n entries, an empty replica, no init) and
// returns the time from the start to the first moment after which the
// node's kernel, probed every 2 ms, always accepted benchAddr(n-1) and
// always dropped benchAddr(n) (an address the database lacks).
func daemonStartToFirewall(b *testing.B, c *etcdtest.Cluster, prefix string, n int) time.Duration {
	e := newE2E(b)
	defer e.stop()
	cable := c.Cable(b)
	e.appendConfig(storeConf(e, cable, prefix, "pbx-new"))
	anyIP(b, e.lab)
	e.lab.Echo(b, "udp", 5060)

	allowed, stranger := benchAddr(n-1), benchAddr(n)
	const every = 2 * time.Millisecond
	stop := make(chan struct{})
	var samples []fwSample
	var serr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		samples, serr = sampleFirewall(e.lab, allowed, stranger, every, stop)
	}()
	time.Sleep(50 * time.Millisecond) // the sampler is sending
	t0 := time.Now()
	cmd := e.command("serve")
	logf, err := os.Create(filepath.Join(e.dir, "serve-new.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	e.serve = cmd
	// Wait for the daemon to answer, then give the kernel a second more
	// of samples to show it stays in place.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, _, code := e.run("status"); code == 0 {
			break
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			close(stop)
			wg.Wait()
			log, _ := os.ReadFile(logf.Name())
			b.Fatalf("the new node's daemon did not come up:\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if serr != nil {
		b.Fatal(serr)
	}
	// The first sample after the last one that was wrong.
	last := -1
	for k, s := range samples {
		if !s.allowed || s.stranger {
			last = k
		}
	}
	if last == len(samples)-1 {
		log, _ := os.ReadFile(logf.Name())
		b.Fatalf("the new node's firewall was not in place a second after the daemon answered (last sample: allowed %v, stranger %v):\n%s",
			samples[last].allowed, samples[last].stranger, log)
	}
	return samples[last+1].at.Sub(t0)
}

type fwSample struct {
	at                time.Time
	allowed, stranger bool // echoed
}

// sampleFirewall sends a numbered datagram from allowed and from
// stranger to the server's UDP echo every interval until stop, then
// waits for late echoes and returns, for each round, whether each was
// echoed.
func sampleFirewall(lab *fwtest.Lab, allowed, stranger netip.Addr, every time.Duration, stop <-chan struct{}) ([]fwSample, error) {
	var samples []fwSample
	err := fwtest.Do(lab.Client, func() error {
		conns := make([]net.Conn, 2)
		for k, src := range []netip.Addr{allowed, stranger} {
			d := net.Dialer{LocalAddr: net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
			c, err := d.Dial("udp", netip.AddrPortFrom(fwtest.ServerV4, 5060).String())
			if err != nil {
				return err
			}
			defer c.Close()
			conns[k] = c
		}
		var mu sync.Mutex
		echoed := [2]map[int]bool{{}, {}}
		var readers sync.WaitGroup
		for k, c := range conns {
			readers.Add(1)
			go func() {
				defer readers.Done()
				buf := make([]byte, 16)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if seq, err := strconv.Atoi(string(buf[:n])); err == nil {
						mu.Lock()
						echoed[k][seq] = true
						mu.Unlock()
					}
				}
			}()
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		var sent []time.Time
	loop:
		for {
			select {
			case <-stop:
				break loop
			case <-tick.C:
			}
			seq := strconv.Itoa(len(sent))
			sent = append(sent, time.Now())
			for _, c := range conns {
				c.Write([]byte(seq))
			}
		}
		time.Sleep(100 * time.Millisecond) // late echoes
		for _, c := range conns {
			c.SetReadDeadline(time.Now())
		}
		readers.Wait()
		for k, at := range sent {
			samples = append(samples, fwSample{at: at, allowed: echoed[0][k], stranger: echoed[1][k]})
		}
		return nil
	})
	return samples, err
}

// BenchmarkDoorLatencyEtcdVsBBolt measures the phone door's grant
// latency (from the caller's last digit reaching the FastAGI server to
// the kernel accepting a packet from the granted address, as
// BenchmarkDoorVsKnockd does) with the database in a bbolt file and in a
// three-member etcd, side by side in one run, and reports the ratio of
// the p50s and p99s (etcd/bbolt). On etcd the grant and the door's
// counters are commits to etcd; the daemon changes the kernel before it
// commits, so the time to the door's answer (-answer-) is reported too,
// with its ratio. At the default argon2id cost the hash
// dominates; the same pair with the cheapest accepted cost (1 MiB, t=1)
// shows the store's own share.
func BenchmarkDoorLatencyEtcdVsBBolt(b *testing.B) {
	calls := benchCalls() * b.N
	const doorConf = "[door]\nrate_per_minute = 1000000\nmax_checks_per_minute = 1000000\nmax_grants = 100\n"
	c := etcdtest.Start(b, etcdtest.Options{Members: 3})
	for k, cost := range []struct{ name, conf string }{
		{"", ""},
		{"cheaphash-", "hash_memory_kib = 1024\nhash_time = 1\n"},
	} {
		e := newE2E(b)
		e.appendConfig(doorConf + cost.conf)
		e.ok("init")
		e.startServe()
		bp50, bp99, ba50 := doorGrantLatency(b, e, cost.name+"bbolt", calls)
		e.stop()

		node := newSharedNodes(b, c, 1, fmt.Sprintf("/dialgate-door-bench-%d/", k), doorConf+cost.conf)[0]
		ep50, ep99, ea50 := doorGrantLatency(b, node.e2e, cost.name+"etcd", calls)
		node.stop()

		b.ReportMetric(float64(ep50)/float64(bp50), cost.name+"etcd/bbolt-p50")
		b.ReportMetric(float64(ep99)/float64(bp99), cost.name+"etcd/bbolt-p99")
		b.ReportMetric(float64(ea50)/float64(ba50), cost.name+"etcd/bbolt-answer-p50")
	}
}
