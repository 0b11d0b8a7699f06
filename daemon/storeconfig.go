package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dialgate/dialgate/etcdstore"
	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// Store backends.
const (
	StoreBBolt = "bbolt"
	StoreEtcd  = "etcd"
)

// StoreConfig is the [store] table: where the whitelist, accounts,
// passcodes and grants live. bbolt (the default) is the file at db; etcd
// shares them between several PBXes, each keeping a local replica.
type StoreConfig struct {
	Backend   string   `toml:"backend"`
	Endpoints []string `toml:"endpoints"`
	Prefix    string   `toml:"prefix"`
	CA        string   `toml:"ca"`
	Cert      string   `toml:"cert"`
	Key       string   `toml:"key"`
	Username  string   `toml:"username"`
	Password  string   `toml:"password"`
	// Replica is this node's local copy of the shared store.
	Replica        string   `toml:"replica"`
	Node           string   `toml:"node"`
	DialTimeout    Duration `toml:"dial_timeout"`
	RequestTimeout Duration `toml:"request_timeout"`
	MaxTxnOps      int      `toml:"max_txn_ops"`
}

func defaultStore() StoreConfig {
	return StoreConfig{Backend: StoreBBolt, Prefix: etcdstore.DefaultPrefix,
		DialTimeout: Duration{etcdstore.DefaultDialTimeout}, RequestTimeout: Duration{etcdstore.DefaultRequestTimeout},
		MaxTxnOps: etcdstore.DefaultMaxTxnOps}
}

// Etcd reports whether the store is shared on etcd.
func (s StoreConfig) Etcd() bool { return s.Backend == StoreEtcd }

func (s *StoreConfig) validate(db string) error {
	switch s.Backend {
	case StoreBBolt:
		return nil
	case StoreEtcd:
	default:
		return fmt.Errorf("store.backend: %q, want %q or %q", s.Backend, StoreBBolt, StoreEtcd)
	}
	if len(s.Endpoints) == 0 {
		return errors.New(`store.endpoints: backend "etcd" needs at least one endpoint, e.g. ["https://10.0.0.11:2379"]`)
	}
	for _, e := range s.Endpoints {
		u, err := url.Parse(e)
		if err != nil || u.Host == "" && u.Path == "" {
			return fmt.Errorf("store.endpoints: %q is not an etcd URL such as https://10.0.0.11:2379", e)
		}
		switch u.Scheme {
		case "http", "https", "unix", "unixs":
		default:
			return fmt.Errorf("store.endpoints: %q: scheme %q, want https (or http, unix)", e, u.Scheme)
		}
	}
	if !strings.HasPrefix(s.Prefix, "/") || strings.Contains(s.Prefix, "//") {
		return fmt.Errorf("store.prefix: %q: an absolute key prefix such as %q", s.Prefix, etcdstore.DefaultPrefix)
	}
	if (s.Cert == "") != (s.Key == "") {
		return errors.New("store.cert and store.key go together")
	}
	if s.Replica == "" {
		s.Replica = filepath.Join(filepath.Dir(db), "replica.db")
	}
	for key, p := range map[string]string{"store.replica": s.Replica, "store.ca": s.CA, "store.cert": s.Cert, "store.key": s.Key} {
		if p != "" && !filepath.IsAbs(p) {
			return fmt.Errorf("store: %s: %q must be an absolute path", key, p)
		}
	}
	if filepath.Clean(s.Replica) == filepath.Clean(db) {
		return fmt.Errorf("store.replica: %q is the db file: the replica needs its own file", s.Replica)
	}
	if s.DialTimeout.Duration < 100*time.Millisecond || s.RequestTimeout.Duration < 100*time.Millisecond {
		return errors.New("store.dial_timeout and store.request_timeout: at least 100ms")
	}
	if s.MaxTxnOps < 16 {
		return fmt.Errorf("store.max_txn_ops: %d: at least 16 (etcd's default --max-txn-ops is 128)", s.MaxTxnOps)
	}
	if s.Node == "" {
		s.Node, _ = os.Hostname()
	}
	return nil
}

func (s StoreConfig) warnings() []string {
	if !s.Etcd() {
		return nil
	}
	var w []string
	for _, e := range s.Endpoints {
		if strings.HasPrefix(e, "http://") {
			w = append(w, fmt.Sprintf("store.endpoints %q is plain http: passcode hashes and the whitelist cross the network unencrypted and unauthenticated; use https with ca, cert and key", e))
		}
	}
	return w
}

// describe is s for messages, the password left out.
func (s StoreConfig) describe() string {
	c := s
	if c.Password != "" {
		c.Password = "(set)"
	}
	return fmt.Sprintf("%+v", c)
}

// etcdConfig is the etcdstore configuration of s.
func (s StoreConfig) etcdConfig() etcdstore.Config {
	return etcdstore.Config{
		Endpoints: s.Endpoints, Prefix: s.Prefix,
		CA: s.CA, Cert: s.Cert, Key: s.Key, Username: s.Username, Password: s.Password,
		DialTimeout: s.DialTimeout.Duration, RequestTimeout: s.RequestTimeout.Duration,
		MaxTxnOps: s.MaxTxnOps, Replica: s.Replica, Node: s.Node,
	}
}

// database is what the daemon needs of its store: the transactions, and
// the file-level operations of a database (a replica's, with etcd).
type database interface {
	store.Store
	Path() string
	Backup(w io.Writer) (int64, error)
	CheckCopy() (store.CheckReport, error)
}

// sharedDB is the etcd store seen as a database: reads and writes through
// etcdstore, file operations on its replica.
type sharedDB struct {
	*etcdstore.Store
}

func (s sharedDB) Path() string                          { return s.Replica().Path() }
func (s sharedDB) Backup(w io.Writer) (int64, error)     { return s.Replica().Backup(w) }
func (s sharedDB) CheckCopy() (store.CheckReport, error) { return s.Replica().CheckCopy() }

// openStore opens the configured store for serve.
func openStore(ctx context.Context, cfg Config, log *slog.Logger) (database, error) {
	if !cfg.Store.Etcd() {
		return openDB(cfg.DB)
	}
	ec := cfg.Store.etcdConfig()
	ec.Log = log
	s, err := etcdstore.Open(ctx, ec)
	if err != nil {
		return nil, fmt.Errorf("%w. The firewall in the kernel was left as it is", err)
	}
	return sharedDB{s}, nil
}

// storeOutage reports whether err is the shared store being out of reach,
// logging that what was tried is put off: a node that cannot reach etcd
// still starts and filters with its replica.
func (d *Daemon) storeOutage(err error, what string) bool {
	if !errors.Is(err, etcdstore.ErrUnreachable) {
		return false
	}
	d.log.Warn(what+" put off: the shared store is unreachable", "err", err)
	return true
}

// followStore applies to the kernel the changes other nodes made, as the
// replica receives them: the addresses they moved only, as the node that
// made them did (a full apply when they may have moved anything). A
// burst of changes is one apply: the channel holds at most one signal,
// and what they moved accumulates until taken.
func (d *Daemon) followStore(ctx context.Context, s sharedDB) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.Changed():
		}
		t := s.TakeTouched()
		if !t.Any() {
			continue
		}
		d.mu.Lock()
		err := d.applyTouched(ctx, t)
		d.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			d.log.Error("apply of the shared store's changes", "err", err)
			d.metrics.storeApplyFailed()
		}
	}
}

// applyTouched brings the kernel along for what changes moved.
func (d *Daemon) applyTouched(ctx context.Context, t store.Touched) error {
	if t.Full {
		return d.applyStored(ctx, false)
	}
	var ps []netip.Prefix
	for _, v := range t.Values {
		if p, err := parsePrefix(v); err == nil {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return nil
	}
	cfg := d.config().FirewallRules()
	var after firewall.State
	err := d.db.View(func(tx store.Tx) (err error) {
		after, err = desiredFor(tx, cfg, d.now(), ps)
		return err
	})
	if err != nil {
		return err
	}
	defer d.metrics.timeApply("sync", time.Now())
	if err := d.fw.SyncMembers(ctx, after, ps); err != nil {
		return err
	}
	d.guard.release(ctx, ps)
	return nil
}

// storeInfo is the shared store's link for status; nil with bbolt.
func (d *Daemon) storeInfo() *localapi.StoreInfo {
	s, ok := d.db.(sharedDB)
	if !ok {
		return nil
	}
	h := s.Health()
	return &localapi.StoreInfo{Backend: StoreEtcd, Endpoints: h.Endpoints, Prefix: h.Prefix, Node: h.Node,
		Reachable: h.Reachable, Since: h.Since, LastError: h.LastError, Revision: h.Revision, Resyncs: h.Resyncs}
}

// storeAvailable is nil when changes can be made: always with bbolt; with
// etcd, while etcd answers. The phone door asks it before collecting a
// passcode, so a caller is told at once rather than after the tries.
func (d *Daemon) storeAvailable() error {
	s, ok := d.db.(sharedDB)
	if !ok {
		return nil
	}
	if h := s.Health(); !h.Reachable {
		return fmt.Errorf("%w since %s (%s)", etcdstore.ErrUnreachable, h.Since.Format(time.RFC3339), h.LastError)
	}
	return nil
}
