package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dialgate/dialgate/etcdstore"
	"github.com/dialgate/dialgate/etcdtest"
	"github.com/dialgate/dialgate/store"
	"github.com/dialgate/dialgate/store/storetest"
)

var prefixes atomic.Int64

// newPrefix is a prefix of its own for each test database: one etcd
// serves many tests, as one serves several dialgate clusters.
func newPrefix() string { return fmt.Sprintf("/t%d/", prefixes.Add(1)) }

// seed pushes a fresh, empty dialgate database under cfg's prefix, as
// "dialgate init" does.
func seed(t testing.TB, cfg etcdstore.Config) {
	t.Helper()
	fresh, err := store.Open(filepath.Join(t.TempDir(), "fresh.db"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	var ops []store.Op
	if err := fresh.Ops(func(op store.Op) error { ops = append(ops, op); return nil }); err != nil {
		t.Fatal(err)
	}
	fresh.Close()
	if err := etcdstore.Push(context.Background(), cfg, ops, nil); err != nil {
		t.Fatal(err)
	}
}

func config(t testing.TB, endpoints []string, prefix, node string) etcdstore.Config {
	return etcdstore.Config{
		Endpoints: endpoints, Prefix: prefix, Node: node,
		Replica:        filepath.Join(t.TempDir(), node+".db"),
		DialTimeout:    time.Second,
		RequestTimeout: 700 * time.Millisecond,
	}
}

func open(t testing.TB, cfg etcdstore.Config) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	// The suite writes 500 audit records in one change: an etcd set up
	// for bulk changes, as the README advises.
	c := etcdtest.Start(t, etcdtest.Options{MaxTxnOps: 4096})
	storetest.Run(t, func(t *testing.T) store.Store {
		cfg := config(t, c.Endpoints(), newPrefix(), "n1")
		cfg.MaxTxnOps = 4096
		seed(t, cfg)
		return open(t, cfg)
	})
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func hasAccount(s store.Store, name string) bool {
	err := s.View(func(tx store.Tx) error { _, err := tx.Account(name); return err })
	return err == nil
}

func mustUpdate(t *testing.T, s store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := s.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// A change on one node reaches the other's replica, with a signal, and
// its audit record names the node that made it.
func TestTwoNodes(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	prefix := newPrefix()
	cfgA, cfgB := config(t, c.Endpoints(), prefix, "pbx-a"), config(t, c.Endpoints(), prefix, "pbx-b")
	seed(t, cfgA)
	a, b := open(t, cfgA), open(t, cfgB)

	mustUpdate(t, a, func(tx store.Tx) error {
		if err := tx.CreateAccount(store.Account{Name: "alice", Number: "100"}); err != nil {
			return err
		}
		return tx.Audit(store.AuditRecord{Action: "account.add", Actor: "cli", Account: "alice", Result: "ok"})
	})
	select {
	case <-b.Changed():
	case <-time.After(2 * time.Second):
		t.Fatal("b was not told of a's change")
	}
	if !hasAccount(b, "alice") {
		t.Fatal("a's account is not in b's replica")
	}
	err := b.View(func(tx store.Tx) error {
		acct, err := tx.AccountByNumber("100")
		if err != nil || acct.Name != "alice" {
			return fmt.Errorf("b's door index: %v %v", acct, err)
		}
		log, err := tx.AuditLog(time.Time{}, 10)
		if err != nil || len(log) != 1 || log[0].Node != "pbx-a" {
			return fmt.Errorf("audit on b: %+v %v", log, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A node's own commit is not news to it.
	select {
	case <-a.Changed():
		t.Error("a was told of its own change")
	case <-time.After(100 * time.Millisecond):
	}

	// Uniqueness holds across nodes: b cannot take a's number.
	err = b.Update(func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "bob", Number: "100"}) })
	if !errors.Is(err, store.ErrExists) {
		t.Errorf("b took a's door number: %v", err)
	}
}

// Read-modify-write from both nodes at once loses nothing: each change
// is one etcd transaction that fails if the other node committed first,
// and is then run again on the caught-up replica.
func TestConcurrentNodesLoseNothing(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	prefix := newPrefix()
	cfgA, cfgB := config(t, c.Endpoints(), prefix, "pbx-a"), config(t, c.Endpoints(), prefix, "pbx-b")
	cfgA.RequestTimeout, cfgB.RequestTimeout = 5*time.Second, 5*time.Second
	seed(t, cfgA)
	nodes := []*etcdstore.Store{open(t, cfgA), open(t, cfgB)}

	const perWorker, workers = 20, 3
	resyncs := []int{nodes[0].Health().Resyncs, nodes[1].Health().Resyncs}
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for _, n := range nodes {
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range perWorker {
					err := n.Update(func(tx store.Tx) error {
						v, err := tx.Setting("counter")
						if err != nil && !errors.Is(err, store.ErrNotFound) {
							return err
						}
						k, _ := strconv.Atoi(string(v))
						return tx.PutSetting("counter", []byte(strconv.Itoa(k+1)))
					})
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := strconv.Itoa(2 * workers * perWorker)
	for _, n := range nodes {
		waitFor(t, 2*time.Second, "counter converges", func() bool {
			var v []byte
			_ = n.View(func(tx store.Tx) (err error) { v, err = tx.Setting("counter"); return err })
			return string(v) == want
		})
	}
	// Busy as it was, neither node mistook the other's commits for etcd
	// going back in time.
	for i, n := range nodes {
		if got := n.Health().Resyncs; got != resyncs[i] {
			t.Errorf("node %d reloaded %d times under load", i, got-resyncs[i])
		}
	}
}

// A node cut off from etcd keeps its state, refuses changes with
// ErrUnreachable, says so in Health, and catches up once mended,
// including with a full reload when etcd compacted what it missed.
func TestPartitionAndCompaction(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 3})
	cable := c.Cable(t)
	prefix := newPrefix()
	cfgA, cfgB := config(t, c.Endpoints(), prefix, "pbx-a"), config(t, cable.Endpoints(), prefix, "pbx-b")
	seed(t, cfgA)
	a, b := open(t, cfgA), open(t, cfgB)
	mustUpdate(t, a, func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "alice"}) })
	waitFor(t, 2*time.Second, "b sees alice", func() bool { return hasAccount(b, "alice") })

	cable.Cut()
	start := time.Now()
	err := b.Update(func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "bob"}) })
	if !errors.Is(err, etcdstore.ErrUnreachable) {
		t.Fatalf("change on a cut node: %v, want ErrUnreachable", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("refusal took %s", took)
	}
	if hasAccount(b, "bob") {
		t.Error("a refused change stayed in the replica")
	}
	if !hasAccount(b, "alice") {
		t.Error("the cut node lost its state")
	}
	waitFor(t, 4*time.Second, "b reports etcd unreachable", func() bool { return !b.Health().Reachable })
	since := b.Health().Since

	// Meanwhile a carries on, and etcd compacts past what b has seen.
	mustUpdate(t, a, func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "carol"}) })
	mustUpdate(t, a, func(tx store.Tx) error { _, _, err := tx.DeleteAccount("alice"); return err })
	cli := c.Client(t)
	resp, err := cli.Get(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	c.Compact(t, resp.Header.Revision)
	if b.Health().Since != since {
		t.Error("Since moved while still cut")
	}

	cable.Mend()
	waitFor(t, 10*time.Second, "b catches up after the cut", func() bool {
		return hasAccount(b, "carol") && !hasAccount(b, "alice") && b.Health().Reachable
	})
	if b.Health().Resyncs < 1 {
		t.Errorf("resyncs %d: the compaction should have forced a reload", b.Health().Resyncs)
	}
	mustUpdate(t, b, func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "bob"}) })
	waitFor(t, 2*time.Second, "a sees b's change after the cut", func() bool { return hasAccount(a, "bob") })
}

// A node restarted while etcd is down starts from its replica; a node
// whose replica was never filled refuses to start.
func TestStartWithoutEtcd(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	prefix := newPrefix()
	cfg := config(t, c.Endpoints(), prefix, "pbx-a")
	seed(t, cfg)
	s, err := etcdstore.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "alice"}) })
	s.Close()

	c.StopAll()
	s = open(t, cfg)
	if !hasAccount(s, "alice") {
		t.Error("restart without etcd lost the replica's state")
	}
	if s.Health().Reachable {
		t.Error("Health says reachable with etcd down")
	}
	fresh := config(t, c.Endpoints(), prefix, "pbx-new")
	if _, err := etcdstore.Open(context.Background(), fresh); err == nil {
		t.Fatal("a node with an empty replica started without etcd")
	}
	c.RestartAll()
	waitFor(t, 15*time.Second, "reachable after etcd returns", func() bool { return s.Health().Reachable })
}

// Deleting the database from etcd behind dialgate's back empties no
// replica: the node keeps filtering with its last state and says why.
func TestDeletedDatabaseKeepsReplica(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	prefix := newPrefix()
	cfg := config(t, c.Endpoints(), prefix, "pbx-a")
	seed(t, cfg)
	s := open(t, cfg)
	mustUpdate(t, s, func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "alice"}) })
	if _, err := c.Client(t).Delete(context.Background(), prefix, clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "the deletion is reported", func() bool { return s.Health().LastError != "" })
	if !hasAccount(s, "alice") {
		t.Error("the replica followed the deletion")
	}
	if err := s.Update(func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "bob"}) }); !errors.Is(err, store.ErrNoDatabase) {
		t.Errorf("change after the deletion: %v, want ErrNoDatabase", err)
	}
}

// A change larger than one etcd transaction is refused whole.
func TestTooLargeRefusedWhole(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	cfg := config(t, c.Endpoints(), newPrefix(), "pbx-a")
	cfg.MaxTxnOps = 32
	seed(t, cfg)
	s := open(t, cfg)
	mustUpdate(t, s, func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "alice"}) })
	err := s.Update(addEntries("alice", 40))
	if !errors.Is(err, etcdstore.ErrTooLarge) {
		t.Fatalf("40 entries in one change with max_txn_ops 32: %v", err)
	}
	// Configured above what the server takes: etcd's refusal says the same.
	s.Close()
	cfg.MaxTxnOps = 1000
	s = open(t, cfg)
	err = s.Update(addEntries("alice", 100))
	if !errors.Is(err, etcdstore.ErrTooLarge) {
		t.Fatalf("300 keys against etcd's default --max-txn-ops: %v", err)
	}
	_ = s.View(func(tx store.Tx) error {
		if es, _ := tx.Entries(); len(es) != 0 {
			t.Errorf("%d entries of a refused change kept", len(es))
		}
		return nil
	})
}

// addEntries is a change adding n address entries to account.
func addEntries(account string, n int) func(store.Tx) error {
	return func(tx store.Tx) error {
		for i := range n {
			if _, err := tx.AddEntry(store.Entry{Account: account, Kind: store.KindIP, Value: fmt.Sprintf("192.0.2.%d", i+1)}); err != nil {
				return err
			}
		}
		return nil
	}
}

// TLS: client certificates against a server that requires them.
func TestTLS(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{TLS: true})
	cfg := config(t, c.Endpoints(), newPrefix(), "pbx-a")
	cfg.CA, cfg.Cert, cfg.Key = c.TLSFiles()
	seed(t, cfg)
	s := open(t, cfg)
	mustUpdate(t, s, func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "alice"}) })

	bad := cfg
	bad.Cert, bad.Key = "", ""
	bad.Replica = filepath.Join(t.TempDir(), "bad.db")
	if _, err := etcdstore.Open(context.Background(), bad); err == nil {
		t.Error("a node without a client certificate got in")
	}
}

// Migration both ways keeps every key; a prefix holding a database is
// never overwritten.
func TestPushPull(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	cfg := config(t, c.Endpoints(), newPrefix(), "pbx-a")
	cfg.MaxTxnOps = 16 // many batches
	src, err := store.Open(filepath.Join(t.TempDir(), "src.db"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	mustUpdate(t, src, func(tx store.Tx) error {
		if err := tx.CreateAccount(store.Account{Name: "alice", Number: "100"}); err != nil {
			return err
		}
		for i := range 50 {
			if _, err := tx.AddEntry(store.Entry{Account: "alice", Kind: store.KindIP, Value: fmt.Sprintf("192.0.2.%d", i+1)}); err != nil {
				return err
			}
		}
		return nil
	})
	var ops []store.Op
	if err := src.Ops(func(op store.Op) error { ops = append(ops, op); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := etcdstore.Push(context.Background(), cfg, ops, nil); err != nil {
		t.Fatal(err)
	}
	if err := etcdstore.Push(context.Background(), cfg, ops, nil); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second push: %v, want ErrExists", err)
	}
	back, _, err := etcdstore.Pull(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(ops) {
		t.Fatalf("pulled %d keys, pushed %d", len(back), len(ops))
	}
	out := filepath.Join(t.TempDir(), "out.db")
	if err := store.CreateFromOps(out, back); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(out, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx store.Tx) error {
		es, err := tx.EntriesByValue("192.0.2.50")
		if err != nil || len(es) != 1 {
			t.Errorf("round trip: %v %v", es, err)
		}
		// The next ID continues the sequence.
		return nil
	})
	mustUpdate(t, db, func(tx store.Tx) error {
		e, err := tx.AddEntry(store.Entry{Account: "alice", Kind: store.KindIP, Value: "198.51.100.1"})
		if err == nil && e.ID != "e51" {
			t.Errorf("next ID after the round trip %s, want e51", e.ID)
		}
		return err
	})
}

// A damaged replica is refused with the remedy: it is only a copy.
func TestDamagedReplica(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	cfg := config(t, c.Endpoints(), newPrefix(), "pbx-a")
	seed(t, cfg)
	s := open(t, cfg)
	s.Close()
	if err := os.WriteFile(cfg.Replica, []byte(strings.Repeat("not bbolt ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := etcdstore.Open(context.Background(), cfg)
	if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), "remove "+cfg.Replica) {
		t.Fatalf("damaged replica: %v", err)
	}
	if err := os.Remove(cfg.Replica); err != nil {
		t.Fatal(err)
	}
	s = open(t, cfg) // fetched again
	if err := s.View(func(tx store.Tx) error { _, err := tx.Accounts(); return err }); err != nil {
		t.Fatal(err)
	}
}

// etcd behind the replica (restored from an older snapshot, a new
// cluster at the same prefix): its content wins.
func TestStoreBehindReplicaReloads(t *testing.T) {
	c1 := etcdtest.Start(t, etcdtest.Options{})
	prefix := newPrefix()
	cfg := config(t, c1.Endpoints(), prefix, "pbx-a")
	seed(t, cfg)
	s := open(t, cfg)
	for i := range 20 {
		mustUpdate(t, s, func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: fmt.Sprintf("a%d", i)}) })
	}
	s.Close()
	// A new cluster at a lower revision, holding another database.
	c2 := etcdtest.Start(t, etcdtest.Options{})
	cfg2 := cfg
	cfg2.Endpoints = c2.Endpoints()
	seed(t, cfg2)
	s = open(t, cfg2)
	if hasAccount(s, "a0") {
		t.Error("the replica's old content survived a new store")
	}
}

// A node that was down (or killed between etcd's commit and its own)
// finds, when it opens again, the shared store's mark moved and reloads:
// what was committed while it was away, its own lost commit included.
func TestReopenCatchesUp(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	prefix := newPrefix()
	cfgA, cfgB := config(t, c.Endpoints(), prefix, "pbx-a"), config(t, c.Endpoints(), prefix, "pbx-b")
	seed(t, cfgA)
	a := open(t, cfgA)
	a.Close()
	b := open(t, cfgB)
	mustUpdate(t, b, func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "bob"}) })
	a = open(t, cfgA)
	if !hasAccount(a, "bob") {
		t.Fatal("a reopened without what b committed while it was away")
	}
	mustUpdate(t, a, func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "alice"}) })
}

// A record this dialgate cannot read, written into etcd behind its back,
// is refused whole: the replica keeps its last state and says why, and
// follows again once the record is gone.
func TestUnreadableRecordRefused(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	prefix := newPrefix()
	cfgA, cfgB := config(t, c.Endpoints(), prefix, "pbx-a"), config(t, c.Endpoints(), prefix, "pbx-b")
	seed(t, cfgA)
	a, b := open(t, cfgA), open(t, cfgB)
	mustUpdate(t, a, func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "alice"}) })
	waitFor(t, 2*time.Second, "b sees alice", func() bool { return hasAccount(b, "alice") })

	cli := c.Client(t)
	bad := prefix + "b/entries/\x00\x00\x00\x00\x00\x00\x00\x63"
	if _, err := cli.Put(context.Background(), bad, "not a record"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "b reports the unreadable record", func() bool {
		return strings.Contains(b.Health().LastError, `bucket "entries"`)
	})
	if !hasAccount(b, "alice") {
		t.Fatal("b lost its state over an unreadable record")
	}
	_ = b.View(func(tx store.Tx) error {
		if _, err := tx.Entries(); err != nil {
			t.Errorf("b's entries unreadable: %v", err)
		}
		return nil
	})
	if _, err := cli.Delete(context.Background(), bad); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, a, func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "bob"}) })
	waitFor(t, 8*time.Second, "b follows again once the record is gone", func() bool { return hasAccount(b, "bob") })
}

// A replica taken to another etcd cluster is reloaded even when that
// cluster's mark is at the very revision the replica saw: two clusters
// seeded alike count revisions alike, so only the cluster ID tells them
// apart.
func TestOtherClusterSameRevision(t *testing.T) {
	prefix := newPrefix()
	var stores []*etcdstore.Store
	var cfgs []etcdstore.Config
	for i, name := range []string{"a0", "b0"} {
		c := etcdtest.Start(t, etcdtest.Options{})
		cfg := config(t, c.Endpoints(), prefix, fmt.Sprintf("pbx-%d", i))
		seed(t, cfg)
		s := open(t, cfg)
		mustUpdate(t, s, func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: name}) })
		stores, cfgs = append(stores, s), append(cfgs, cfg)
	}
	_, markA, _ := stores[0].Replica().ReplicaState()
	_, markB, _ := stores[1].Replica().ReplicaState()
	if markA != markB {
		t.Fatalf("precondition: the two clusters' marks differ (%d, %d); the case under test needs them equal", markA, markB)
	}
	stores[0].Close()
	moved := cfgs[0]
	moved.Endpoints = cfgs[1].Endpoints
	s := open(t, moved)
	if hasAccount(s, "a0") || !hasAccount(s, "b0") {
		t.Fatalf("replica of one cluster taken for the other's: a0 %v, b0 %v", hasAccount(s, "a0"), hasAccount(s, "b0"))
	}
}

// A prefix holding no database is refused, naming the remedy: a node
// never starts from an empty whitelist.
func TestEmptyPrefixRefused(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	cfg := config(t, c.Endpoints(), newPrefix(), "pbx-a")
	_, err := etcdstore.Open(context.Background(), cfg)
	if !errors.Is(err, store.ErrNoDatabase) || !strings.Contains(err.Error(), "dialgate init") {
		t.Fatalf("empty prefix: %v", err)
	}
}

// etcd's own users: a dialgate user whose role may read and write its
// prefix only works; a wrong password does not get in.
func TestEtcdUserAuth(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	ctx := context.Background()
	admin := c.Client(t)
	prefix := newPrefix()
	steps := []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "root-pw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "dialgate"); return err },
		func() error {
			_, err := admin.RoleGrantPermission(ctx, "dialgate", prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := admin.UserAdd(ctx, "pbx", "pbx-pw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "pbx", "dialgate"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("auth setup step %d: %v", i, err)
		}
	}
	cfg := config(t, c.Endpoints(), prefix, "pbx-a")
	cfg.Username, cfg.Password = "pbx", "pbx-pw"
	seed(t, cfg)
	s := open(t, cfg)
	mustUpdate(t, s, func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "alice"}) })

	wrong := cfg
	wrong.Password = "guess"
	wrong.Replica = filepath.Join(t.TempDir(), "wrong.db")
	if _, err := etcdstore.Open(ctx, wrong); err == nil {
		t.Fatal("a wrong etcd password got in")
	}
}

// A running node whose etcd is replaced by another cluster at a lower
// revision (rebuilt, restored from an older snapshot) reloads from it: a
// watch from the replica's revision would wait for a revision that
// cluster has not reached and miss everything it has.
func TestEtcdReplacedWhileRunning(t *testing.T) {
	c1 := etcdtest.Start(t, etcdtest.Options{})
	cable := c1.Cable(t)
	prefix := newPrefix()
	cfg := config(t, cable.Endpoints(), prefix, "pbx-a")
	seed(t, cfg)
	s := open(t, cfg)
	for i := range 30 {
		mustUpdate(t, s, func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: fmt.Sprintf("a%d", i)}) })
	}

	c2 := etcdtest.Start(t, etcdtest.Options{})
	other := config(t, c2.Endpoints(), prefix, "pbx-b")
	seed(t, other)
	mustUpdate(t, open(t, other), func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "rebuilt"}) })

	cable.Cut()
	cable.Retarget(c2)
	cable.Mend()
	waitFor(t, 10*time.Second, "the node reloads from the replacing cluster", func() bool {
		return hasAccount(s, "rebuilt") && !hasAccount(s, "a0")
	})
	// And follows it from there.
	mustUpdate(t, s, func(tx store.Tx) error { return tx.CreateAccount(store.Account{Name: "after"}) })
}
