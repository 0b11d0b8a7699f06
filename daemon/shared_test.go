package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/etcdstore"
	"github.com/dialgate/dialgate/etcdtest"
	"github.com/dialgate/dialgate/firewall/fwfake"
	"github.com/dialgate/dialgate/localapi"
)

// newSharedDaemon is a Daemon on the shared database under prefix,
// reaching etcd through endpoints, with the in-memory kernel and its
// follower running as serve runs it.
func newSharedDaemon(t *testing.T, endpoints []string, prefix, node string, edit ...func(*Options)) (*Daemon, *fwfake.Backend) {
	t.Helper()
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.DB = filepath.Join(dir, "dialgate.db")
	cfg.AGI.Listen = ""
	cfg.Store.Backend = StoreEtcd
	cfg.Store.Endpoints = endpoints
	cfg.Store.Prefix = prefix
	cfg.Store.Node = node
	cfg.Store.RequestTimeout = Duration{700 * time.Millisecond}
	if err := cfg.Store.validate(cfg.DB); err != nil {
		t.Fatal(err)
	}
	if _, err := ensureShared(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	fw := fwfake.New()
	opts := Options{Config: cfg, Backend: fw, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, e := range edit {
		e(&opts)
	}
	if err := opts.Config.Store.validate(opts.Config.DB); err != nil {
		t.Fatal(err)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); d.Close() })
	if err := d.applyStored(ctx, false); err != nil {
		t.Fatal(err)
	}
	go d.followStore(ctx, d.db.(sharedDB))
	return d, fw
}

// TestSharedDaemonsFollowEachOther: an entry added through one daemon
// reaches the other's kernel; one cut off reports it, refuses changes
// and the door's precondition, and keeps its kernel.
func TestSharedDaemonsFollowEachOther(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	cable := c.Cable(t)
	a, _ := newSharedDaemon(t, c.Endpoints(), "/d/", "pbx-a")
	b, fwB := newSharedDaemon(t, cable.Endpoints(), "/d/", "pbx-b")
	ctx := context.Background()
	ip := netip.MustParseAddr("192.0.2.7")

	fwB.ResetCalls()
	if _, err := a.AddAccount(ctx, localapi.AddAccountRequest{Name: "alice", Perms: "8"}); err != nil {
		t.Fatal(err)
	}
	// An account may change anything: b applies everything once.
	eventually(t, 2*time.Second, "b applies a's account", func() bool { return fwB.Calls()["Apply"] >= 1 })
	fwB.ResetCalls()
	if _, err := a.AddEntry(ctx, localapi.AddEntryRequest{Account: "alice", Kind: "ip", Value: ip.String()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "b's kernel admits a's entry", func() bool { return fwB.Admits(ip, "tcp", 22) })
	// As a did: the entry's members only, not the whole firewall.
	if calls := fwB.Calls(); calls["SyncMembers"] == 0 || calls["Apply"] != 0 {
		t.Errorf("b followed an entry with %v, want SyncMembers alone", calls)
	}
	if st := b.storeInfo(); st == nil || !st.Reachable || st.Node != "pbx-b" {
		t.Fatalf("b's store info: %+v", st)
	}
	if err := b.storeAvailable(); err != nil {
		t.Fatal(err)
	}

	if v := storeMetric(t, b, "dialgate_store_reachable"); v != 1 {
		t.Errorf("dialgate_store_reachable = %v before the cut", v)
	}
	cable.Cut()
	_, err := b.AddEntry(ctx, localapi.AddEntryRequest{Account: "alice", Kind: "ip", Value: "192.0.2.8"})
	if !errors.Is(err, etcdstore.ErrUnreachable) {
		t.Fatalf("change on the cut node: %v, want ErrUnreachable", err)
	}
	eventually(t, 4*time.Second, "b reports the store unreachable", func() bool { return b.storeAvailable() != nil })
	if !strings.Contains(b.storeAvailable().Error(), "unreachable since") {
		t.Errorf("storeAvailable: %v", b.storeAvailable())
	}
	if v := storeMetric(t, b, "dialgate_store_reachable"); v != 0 {
		t.Errorf("dialgate_store_reachable = %v while cut", v)
	}
	if since := storeMetric(t, b, "dialgate_store_state_since_timestamp_seconds"); time.Since(time.UnixMilli(int64(since*1000))) > time.Minute {
		t.Errorf("dialgate_store_state_since_timestamp_seconds = %v", since)
	}
	if _, err := a.DeleteEntry(ctx, ip.String(), Guard{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if !fwB.Admits(ip, "tcp", 22) {
		t.Error("the cut node's kernel changed without the store")
	}
	cable.Mend()
	eventually(t, 10*time.Second, "b follows the deny after the mend", func() bool { return !fwB.Admits(ip, "tcp", 22) })
}

func TestStoreConfig(t *testing.T) {
	for _, tc := range []struct {
		name, table, wantErr, wantWarn string
	}{
		{"default is bbolt", "", "", ""},
		{"unknown backend", `backend = "redis"`, `store.backend: "redis"`, ""},
		{"etcd without endpoints", `backend = "etcd"`, "needs at least one endpoint", ""},
		{"bad scheme", `backend = "etcd"` + "\nendpoints = [\"ftp://10.0.0.1:2379\"]", `scheme "ftp"`, ""},
		{"cert without key", `backend = "etcd"` + "\nendpoints = [\"https://10.0.0.1:2379\"]\ncert = \"/etc/c.pem\"", "cert and store.key go together", ""},
		{"relative replica", `backend = "etcd"` + "\nendpoints = [\"https://10.0.0.1:2379\"]\nreplica = \"replica.db\"", "must be an absolute path", ""},
		{"replica is the db", `backend = "etcd"` + "\nendpoints = [\"https://10.0.0.1:2379\"]\nreplica = \"/var/lib/dialgate/dialgate.db\"", "the replica needs its own file", ""},
		{"relative prefix", `backend = "etcd"` + "\nendpoints = [\"https://10.0.0.1:2379\"]\nprefix = \"dialgate\"", "store.prefix", ""},
		{"tiny max_txn_ops", `backend = "etcd"` + "\nendpoints = [\"https://10.0.0.1:2379\"]\nmax_txn_ops = 3", "store.max_txn_ops: 3", ""},
		{"plain http warns", `backend = "etcd"` + "\nendpoints = [\"http://10.0.0.1:2379\"]", "", "plain http"},
		{"https is fine", `backend = "etcd"` + "\nendpoints = [\"https://10.0.0.1:2379\"]\nca = \"/etc/dialgate/ca.pem\"", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := "db = \"/var/lib/dialgate/dialgate.db\"\n[store]\n" + tc.table + "\n"
			c, err := parseConfig("t", []byte(text))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			warned := strings.Join(c.Warnings, "\n")
			if tc.wantWarn != "" && !strings.Contains(warned, tc.wantWarn) || tc.wantWarn == "" && strings.Contains(warned, "store") {
				t.Errorf("warnings %q, want %q", warned, tc.wantWarn)
			}
			if c.Store.Etcd() && c.Store.Replica != "/var/lib/dialgate/replica.db" {
				t.Errorf("default replica %q", c.Store.Replica)
			}
		})
	}
}

// A store password in a file others can read is a warning, and never
// appears in what a reload says about a changed [store].
func TestStorePasswordKeptSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dialgate.toml")
	text := "[store]\nbackend = \"etcd\"\nendpoints = [\"https://10.0.0.1:2379\"]\nusername = \"dialgate\"\npassword = \"s3cret-pw\"\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(c.Warnings, "\n"), "store.password") {
		t.Errorf("no warning for a readable password: %q", c.Warnings)
	}
	if d := c.Store.describe(); strings.Contains(d, "s3cret-pw") {
		t.Errorf("describe shows the password: %s", d)
	}
}

// fixedResolver answers every name with one address.
type fixedResolver map[string]netip.Addr

func (r fixedResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok && (network == "ip" || (network == "ip4") == a.Is4()) {
		return []netip.Addr{a}, nil
	}
	return nil, nil
}

// A refresh of more names than one etcd transaction takes is stored in
// batches, every name on every node.
func TestSharedFQDNRefreshInBatches(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{MaxTxnOps: 64})
	names := fixedResolver{}
	for i := range 100 {
		names[fmt.Sprintf("h%d.dyndns.example", i)] = netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})
	}
	small := func(o *Options) { o.Config.Store.MaxTxnOps = 64; o.Resolver = names }
	a, _ := newSharedDaemon(t, c.Endpoints(), "/f/", "pbx-a", small)
	b, fwB := newSharedDaemon(t, c.Endpoints(), "/f/", "pbx-b", small)
	ctx := context.Background()
	if _, err := a.AddAccount(ctx, localapi.AddAccountRequest{Name: "alice", Perms: "8"}); err != nil {
		t.Fatal(err)
	}
	// One entry per change: each fits.
	for name := range names {
		if _, err := a.AddEntry(ctx, localapi.AddEntryRequest{Account: "alice", Kind: "fqdn", Value: name}); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := a.RefreshFQDNs(ctx, nil, false)
	if err != nil {
		t.Fatalf("refresh of %d names on max_txn_ops 64: %v", len(names), err)
	}
	if len(recs) != len(names) {
		t.Fatalf("%d records, want %d", len(recs), len(names))
	}
	eventually(t, 3*time.Second, "b's kernel admits every name's address", func() bool {
		for _, addr := range names {
			if !fwB.Admits(addr, "tcp", 22) {
				return false
			}
		}
		return true
	})
	_ = b
}

// storeMetric is the value of one of the daemon's store series.
func storeMetric(t *testing.T, d *Daemon, name string) float64 {
	t.Helper()
	mfs, err := d.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
