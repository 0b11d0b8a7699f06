package etcdstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/dialgate/dialgate/store"
)

// DefaultPrefix is where a dialgate database lives in etcd unless
// Config.Prefix says otherwise; several dialgate clusters share one etcd
// with one prefix each.
const DefaultPrefix = "/dialgate/"

// Defaults for Config's zero values.
const (
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 5 * time.Second
	// DefaultMaxTxnOps is etcd's own default for --max-txn-ops: a change
	// that writes more keys than the server takes in one transaction is
	// refused whole, never split.
	DefaultMaxTxnOps = 128
)

// Sentinel errors; test with errors.Is.
var (
	// ErrUnreachable reports that the shared store did not answer: the
	// change was not made, or (ErrUncertain) may have been.
	ErrUnreachable = errors.New("shared store unreachable")
	// ErrUncertain reports a commit whose answer was lost: etcd may have
	// made it. The watch brings it into the replica if it did.
	ErrUncertain = errors.New("outcome unknown")
	// ErrTooLarge reports a change that writes more keys than one etcd
	// transaction takes.
	ErrTooLarge = errors.New("change too large for one etcd transaction")
)

// Config says where the shared store is and how to reach it.
type Config struct {
	Endpoints []string
	// Prefix is the key prefix of this dialgate cluster (DefaultPrefix).
	Prefix string
	// CA, Cert and Key are PEM files: the CA that signed the etcd
	// servers' certificates, and this node's client certificate and key.
	// With CA set, https endpoints are verified against it.
	CA, Cert, Key string
	// Username and Password for etcd's own authentication, if enabled.
	Username, Password string
	DialTimeout        time.Duration
	RequestTimeout     time.Duration
	// MaxTxnOps must not exceed the etcd servers' --max-txn-ops.
	MaxTxnOps int
	// Replica is the path of this node's local copy.
	Replica string
	// Node names this node in audit records and in the mark it leaves.
	Node string
	Log  *slog.Logger
}

func (c *Config) defaults() {
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxTxnOps <= 0 {
		c.MaxTxnOps = DefaultMaxTxnOps
	}
	if c.Node == "" {
		c.Node, _ = os.Hostname()
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Client connects to the etcd of cfg without reading anything: the
// connection is made on first use.
func Client(cfg Config) (*clientv3.Client, error) {
	cfg.defaults()
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints configured ([store] endpoints)")
	}
	var tlsCfg *tls.Config
	if cfg.CA != "" || cfg.Cert != "" || cfg.Key != "" {
		if (cfg.Cert == "") != (cfg.Key == "") {
			return nil, errors.New("etcd TLS: cert and key go together ([store] cert, key)")
		}
		info := transport.TLSInfo{TrustedCAFile: cfg.CA, CertFile: cfg.Cert, KeyFile: cfg.Key}
		var err error
		if tlsCfg, err = info.ClientConfig(); err != nil {
			return nil, fmt.Errorf("etcd TLS: %w", err)
		}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		TLS:         tlsCfg,
		Username:    cfg.Username,
		Password:    cfg.Password,
		// The client's own retry chatter is not the administrator's
		// business: the store reports the link's state through Health
		// and the daemon's log.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	return cli, nil
}

// Store is a store.Store on etcd: reads from the local replica, writes
// committed to etcd first, other nodes' changes applied to the replica as
// etcd reports them.
//
// Update's fn may run more than once: when another node committed since
// the revision it ran on, the change is run again on the caught-up
// replica (etcd's STM does the same). fn must therefore not accumulate
// state outside the transaction.
type Store struct {
	cfg    Config
	lay    layout
	cli    *clientv3.Client
	db     *store.DB
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	changed chan struct{}

	mu     sync.Mutex
	health Health
	// touched is what the changes applied since the last TakeTouched
	// can have moved in the firewall.
	touched store.Touched
	// caught is closed and replaced whenever the replica's revision
	// advances, waking the writers waiting to retry.
	caught chan struct{}
}

var _ store.Store = (*Store)(nil)

// Health is the state of the link to the shared store.
type Health struct {
	Endpoints []string
	Prefix    string
	Node      string
	// Reachable is false once a request or the watch failed, until one
	// succeeds again; Since is when it last changed.
	Reachable bool
	Since     time.Time
	LastError string
	// Revision is the etcd revision the replica holds.
	Revision int64
	// Resyncs counts full reloads (a compacted watch, a replica behind).
	Resyncs int
}

// Open opens the replica at cfg.Replica and starts following the shared
// store. With etcd reachable the replica is brought up to date before
// Open returns. Without it Open still succeeds if the replica holds a
// database (a node keeps its last state through an outage, and across a
// restart in one), reporting the store unreachable; a replica never
// filled is refused (ErrNoDatabase): there is nothing safe to filter
// with.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg.defaults()
	lay := newLayout(cfg.Prefix)
	if cfg.Replica == "" {
		return nil, errors.New("etcd store: no replica path ([store] replica)")
	}
	cli, err := Client(cfg)
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg: cfg, lay: lay, cli: cli, log: cfg.Log,
		changed: make(chan struct{}, 1),
		caught:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	s.health = Health{Endpoints: cfg.Endpoints, Prefix: lay.prefix, Node: cfg.Node, Since: time.Now()}
	s.db, err = store.OpenReplica(cfg.Replica, store.ReplicaOptions{
		Source: "etcd prefix " + lay.prefix,
		Commit: s.commit,
		Node:   cfg.Node,
		MaxOps: cfg.MaxTxnOps,
	})
	if errors.Is(err, store.ErrDamaged) {
		err = fmt.Errorf("%w. The replica is only a copy: remove %s and dialgate fetches the shared store again (with etcd reachable)", err, cfg.Replica)
	}
	if err != nil {
		_ = cli.Close()
		return nil, err
	}
	rev, _, err := s.db.ReplicaState()
	if err != nil {
		s.closeAll()
		return nil, err
	}
	if err := s.catchUp(ctx); err != nil {
		if rev == 0 {
			s.closeAll()
			if errors.Is(err, store.ErrNoDatabase) || errors.Is(err, store.ErrSchema) {
				return nil, err
			}
			return nil, fmt.Errorf("etcd store: the local replica %s was never filled and the shared store cannot be read: %w", cfg.Replica, err)
		}
		// A replica that holds a database is kept whatever happened to
		// the shared one (unreachable, deleted, a newer schema): the node
		// filters with its last state and status says why.
		s.setError(err)
		s.log.Warn("shared store unreachable at start; filtering with the local replica", "replica", cfg.Replica, "revision", rev, "err", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(runCtx)
	return s, nil
}

func (s *Store) closeAll() {
	_ = s.db.Close()
	_ = s.cli.Close()
}

// Close stops following the shared store and closes the replica.
func (s *Store) Close() error {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	err := s.db.Close()
	if cerr := s.cli.Close(); err == nil && cerr != nil && !errors.Is(cerr, context.Canceled) {
		err = cerr
	}
	return err
}

// Replica is the local copy (for backups and checks).
func (s *Store) Replica() *store.DB { return s.db }

// Node is the name this node commits under.
func (s *Store) Node() string { return s.cfg.Node }

// Changed receives a value after changes made by other nodes (or by a
// resync) reached the replica: the daemon re-applies the kernel.
func (s *Store) Changed() <-chan struct{} { return s.changed }

// TakeTouched returns what the other nodes' changes applied since the
// last call can have moved in the firewall, and forgets it: what the
// daemon must bring the kernel along for when Changed fires.
func (s *Store) TakeTouched() store.Touched {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.touched
	s.touched = store.Touched{}
	return t
}

func (s *Store) touch(t store.Touched) {
	s.mu.Lock()
	s.touched.Merge(t)
	s.mu.Unlock()
}

// Health returns the state of the link to etcd.
func (s *Store) Health() Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.health
	h.Endpoints = append([]string(nil), h.Endpoints...)
	return h
}

// View implements store.Store on the replica: it never waits on etcd.
func (s *Store) View(fn func(store.Tx) error) error { return s.db.View(fn) }

// maxAttempts bounds the retries of a change that keeps losing to other
// nodes' commits; from the third on, a random pause of up to a few
// milliseconds per attempt lets the nodes stop colliding.
const maxAttempts = 32

// Update implements store.Store: fn runs on the replica and its writes
// are committed to etcd in one transaction, which succeeds only if no
// other node committed since; otherwise the replica catches up and fn
// runs again.
func (s *Store) Update(fn func(store.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.db.Update(fn)
		var c *conflictError
		if !errors.As(err, &c) || attempt == maxAttempts {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
		werr := s.waitMark(ctx, c.mark)
		cancel()
		if werr != nil {
			return fmt.Errorf("%w (and the replica did not catch up: %v)", err, werr)
		}
		if attempt >= 3 {
			time.Sleep(time.Duration(rand.Int64N(int64(attempt) * int64(2*time.Millisecond))))
		}
	}
}

type conflictError struct{ mark int64 }

func (e *conflictError) Error() string {
	return fmt.Sprintf("another node committed to the shared store at revision %d", e.mark)
}
func (e *conflictError) Unwrap() error { return store.ErrConflict }

// commit is the replica's commit function: one etcd transaction that
// writes ops and the mark if the mark is still where the replica saw it.
func (s *Store) commit(mark int64, ops []store.Op) (int64, error) {
	if len(ops)+1 > s.cfg.MaxTxnOps {
		return 0, fmt.Errorf("%w: it writes %d keys and etcd takes at most %d in one transaction (etcd --max-txn-ops, [store] max_txn_ops): split it into smaller changes, or raise both", ErrTooLarge, len(ops)+1, s.cfg.MaxTxnOps)
	}
	puts := make([]clientv3.Op, 0, len(ops)+1)
	for _, op := range ops {
		k, err := s.lay.key(op)
		if err != nil {
			return 0, err
		}
		if op.Delete {
			puts = append(puts, clientv3.OpDelete(k))
		} else {
			puts = append(puts, clientv3.OpPut(k, string(op.Value)))
		}
	}
	puts = append(puts, clientv3.OpPut(s.lay.mark(), s.cfg.Node))
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	resp, err := s.cli.Txn(clientv3.WithRequireLeader(ctx)).
		If(clientv3.Compare(clientv3.ModRevision(s.lay.mark()), "=", mark)).
		Then(puts...).
		Else(clientv3.OpGet(s.lay.mark())).
		Commit()
	if errors.Is(err, rpctypes.ErrTooManyOps) || errors.Is(err, rpctypes.ErrRequestTooLarge) {
		return 0, fmt.Errorf("%w: etcd refused it (%v): raise etcd's --max-txn-ops and --max-request-bytes, or split the change", ErrTooLarge, err)
	}
	if err != nil {
		s.unreachable(err)
		if ctx.Err() != nil {
			return 0, fmt.Errorf("%w: %w: etcd did not answer within %s; the change may have been made and will show once the store is reachable (%v)", ErrUnreachable, ErrUncertain, s.cfg.RequestTimeout, err)
		}
		return 0, fmt.Errorf("%w: change not made: %w", ErrUnreachable, err)
	}
	s.reachable()
	if !resp.Succeeded {
		var now int64
		if rr := resp.Responses[0].GetResponseRange(); rr != nil && len(rr.Kvs) == 1 {
			now = rr.Kvs[0].ModRevision
		}
		if now == 0 {
			return 0, fmt.Errorf("etcd prefix %s holds no dialgate database any more (its mark is gone): %w", s.lay.prefix, store.ErrNoDatabase)
		}
		return 0, &conflictError{mark: now}
	}
	return resp.Header.Revision, nil
}

func (s *Store) unreachable(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.health.LastError = err.Error()
	if s.health.Reachable {
		s.health.Reachable = false
		s.health.Since = time.Now()
		s.log.Warn("shared store unreachable; filtering with the local replica", "endpoints", strings.Join(s.cfg.Endpoints, ","), "err", err)
	}
}

func (s *Store) reachable() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.health.Reachable {
		if !s.health.Since.IsZero() && s.health.LastError != "" {
			s.log.Info("shared store reachable again", "after", time.Since(s.health.Since).Round(time.Millisecond))
		}
		s.health.Reachable = true
		s.health.Since = time.Now()
	}
}

// advanced wakes the writers waiting for the replica to catch up.
func (s *Store) advanced(rev int64) {
	s.mu.Lock()
	s.health.Revision = rev
	close(s.caught)
	s.caught = make(chan struct{})
	s.mu.Unlock()
}

// waitMark waits until the replica's mark is at least mark.
func (s *Store) waitMark(ctx context.Context, mark int64) error {
	for {
		s.mu.Lock()
		ch := s.caught
		s.mu.Unlock()
		_, have, err := s.db.ReplicaState()
		if err != nil {
			return err
		}
		if have >= mark {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("replica at mark %d, waiting for %d: %w", have, mark, ctx.Err())
		}
	}
}

func (s *Store) notifyChanged() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// ErrOffline is returned by a replica opened with OpenOffline when
// something tries to change it.
var ErrOffline = errors.New("replica opened without the shared store: read only")

// OpenOffline opens cfg's replica alone, read only, without contacting
// etcd: what a boot restores the firewall from before the network is up.
func OpenOffline(cfg Config) (*store.DB, error) {
	cfg.defaults()
	lay := newLayout(cfg.Prefix)
	return store.OpenReplica(cfg.Replica, store.ReplicaOptions{
		Source: "etcd prefix " + lay.prefix,
		Node:   cfg.Node,
		Commit: func(int64, []store.Op) (int64, error) { return 0, ErrOffline },
	})
}
