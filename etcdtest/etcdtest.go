package etcdtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Options configures Start. The zero value is a single plain-text member.
type Options struct {
	// Members is the cluster size; 0 means 1. Use 3 to test losing a
	// member while keeping quorum.
	Members int
	// MaxTxnOps and MaxRequestBytes are passed to embed.Config when
	// non-zero, so tests can hit the server's limits cheaply.
	MaxTxnOps       uint
	MaxRequestBytes uint
	// TLS makes every client listener require a client certificate
	// signed by a throwaway CA; see Cluster.TLSFiles.
	TLS bool
	// LogLevel, if set ("debug", "info", "warn", "error", "panic"),
	// sends etcd's logs to stderr. By default they are discarded: even
	// at "error" every ordinary shutdown logs half a dozen errors with
	// stack traces ("http: Server closed", ...), burying the test's own
	// output.
	LogLevel string
}

const (
	// Short ticks keep leader elections after Stop/Restart well under a
	// second; 5x is the minimum ratio etcd accepts, 10x leaves room for
	// the race detector's slowdown without spurious elections.
	tickMs     = 25
	electionMs = 250

	// sockName is fixed so the one server certificate can name it; see
	// the package comment.
	sockName = "etcd.sock"

	startTimeout = 15 * time.Second
)

// Cluster is a running set of embedded etcd members.
type Cluster struct {
	t       testing.TB
	opts    Options
	token   string
	initial string // embed.Config.InitialCluster
	tls     *tlsFiles

	mu      sync.Mutex
	members []*member
}

type member struct {
	name     string
	dataDir  string
	sockDir  string
	peerPort int
	cliPort  int
	etcd     *embed.Etcd        // nil while stopped
	kill     context.CancelFunc // ends the running incarnation's streams
}

func (m *member) sockPath() string { return filepath.Join(m.sockDir, sockName) }

// Start launches opts.Members members and waits until they serve
// clients. Everything is torn down in t.Cleanup.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Members <= 0 {
		opts.Members = 1
	}
	c := &Cluster{t: t, opts: opts}
	t.Cleanup(c.close)
	if opts.TLS {
		files, err := writeTLSFiles(t.TempDir())
		if err != nil {
			t.Fatalf("etcdtest: generating certificates: %v", err)
		}
		c.tls = files
	}
	// Ports are probed free and then handed to etcd, so another process
	// can grab one in between; retrying with fresh ports and fresh data
	// dirs turns that rare race into a slower start instead of a flake.
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = c.startFresh(attempt); err == nil {
			return c
		}
		c.stopMembers()
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	t.Fatalf("etcdtest: starting cluster: %v", err)
	return nil
}

func (c *Cluster) startFresh(attempt int) error {
	t := c.t
	c.token = fmt.Sprintf("etcdtest-%d-%d", time.Now().UnixNano(), attempt)
	members := make([]*member, c.opts.Members)
	var initial []string
	for i := range members {
		peerPort, err := pickPort()
		if err != nil {
			return err
		}
		cliPort, err := pickPort()
		if err != nil {
			return err
		}
		sockDir, err := shortTempDir(t)
		if err != nil {
			return err
		}
		members[i] = &member{
			name:     fmt.Sprintf("m%d", i),
			dataDir:  filepath.Join(t.TempDir(), "data"),
			sockDir:  sockDir,
			peerPort: peerPort,
			cliPort:  cliPort,
		}
		initial = append(initial, fmt.Sprintf("%s=http://127.0.0.1:%d", members[i].name, peerPort))
	}
	c.initial = strings.Join(initial, ",")
	c.mu.Lock()
	c.members = members
	c.mu.Unlock()
	return c.startMembers(allIndexes(len(members)))
}

func allIndexes(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// startMembers starts the given members and only then waits for them,
// because a multi-member cluster cannot become ready until a quorum of
// them has been started. The lock is not held while waiting so that
// Cables keep reaching the running members meanwhile.
func (c *Cluster) startMembers(idx []int) error {
	started := make([]*embed.Etcd, 0, len(idx))
	c.mu.Lock()
	for _, i := range idx {
		m := c.members[i]
		if m.etcd == nil {
			cfg, kill := c.config(m)
			e, err := embed.StartEtcd(cfg)
			if err != nil {
				kill()
				c.mu.Unlock()
				return fmt.Errorf("member %s: %w", m.name, err)
			}
			m.etcd, m.kill = e, kill
		}
		started = append(started, m.etcd)
	}
	c.mu.Unlock()

	deadline := time.After(startTimeout)
	for _, e := range started {
		select {
		case <-e.Server.ReadyNotify():
		case err := <-e.Err():
			return fmt.Errorf("member %s: %w", e.Config().Name, err)
		case <-deadline:
			return fmt.Errorf("member %s: not ready after %v", e.Config().Name, startTimeout)
		}
	}
	return nil
}

func (c *Cluster) config(m *member) (*embed.Config, context.CancelFunc) {
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dataDir
	cfg.InitialCluster = c.initial
	cfg.InitialClusterToken = c.token
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.TickMs = tickMs
	cfg.ElectionMs = electionMs
	if c.opts.MaxTxnOps > 0 {
		cfg.MaxTxnOps = c.opts.MaxTxnOps
	}
	if c.opts.MaxRequestBytes > 0 {
		cfg.MaxRequestBytes = c.opts.MaxRequestBytes
	}

	peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", m.peerPort)}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}

	tcpScheme, unixScheme := "http", "unix"
	if c.tls != nil {
		tcpScheme, unixScheme = "https", "unixs"
		cfg.ClientTLSInfo = transport.TLSInfo{
			CertFile:       c.tls.serverCert,
			KeyFile:        c.tls.serverKey,
			TrustedCAFile:  c.tls.ca,
			ClientCertAuth: true,
		}
	}
	cli := url.URL{Scheme: tcpScheme, Host: fmt.Sprintf("127.0.0.1:%d", m.cliPort)}
	cfg.ListenClientUrls = []url.URL{cli, {Scheme: unixScheme, Path: m.sockPath()}}
	cfg.AdvertiseClientUrls = []url.URL{cli}

	// No metrics listener: it would need yet another port.
	cfg.ListenMetricsUrls = nil

	if c.opts.LogLevel == "" {
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	} else {
		cfg.LogLevel = c.opts.LogLevel
		cfg.LogOutputs = []string{"stderr"}
	}

	// embed.Etcd.Close drains gRPC gracefully, and an open watch or
	// lease keepalive stream never drains, so each listener would wait
	// out the full request timeout (5.5 s, twice over with the unix
	// listener). Stop instead ends streams the way etcd itself does when
	// a member loses its leader, with Unavailable, so clients fail over
	// and retry exactly as if the member had died.
	killed, kill := context.WithCancel(context.Background())
	cfg.GRPCAdditionalServerOptions = append(cfg.GRPCAdditionalServerOptions,
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			ctx, cancel := context.WithCancel(ss.Context())
			defer cancel()
			defer context.AfterFunc(killed, cancel)()
			err := handler(srv, ctxStream{ss, ctx})
			if killed.Err() != nil {
				return status.Error(codes.Unavailable, "etcdtest: member stopped")
			}
			return err
		}))
	return cfg, kill
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s ctxStream) Context() context.Context { return s.ctx }

func (c *Cluster) scheme(tcp bool) string {
	switch {
	case tcp && c.tls != nil:
		return "https"
	case tcp:
		return "http"
	case c.tls != nil:
		return "unixs"
	default:
		return "unix"
	}
}

// Endpoints returns the members' TCP client URLs, in member order.
// They stay valid across Stop/Restart.
func (c *Cluster) Endpoints() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = fmt.Sprintf("%s://127.0.0.1:%d", c.scheme(true), m.cliPort)
	}
	return eps
}

// UnixEndpoints returns the members' unix socket client URLs, in member
// order, usable from other network namespaces.
func (c *Cluster) UnixEndpoints() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = c.scheme(false) + "://" + m.sockPath()
	}
	return eps
}

// unixPaths is what a Cable dials: raw sockets reach every member
// regardless of TLS, since the Cable only copies bytes.
func (c *Cluster) unixPaths() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	paths := make([]string, len(c.members))
	for i, m := range c.members {
		paths[i] = m.sockPath()
	}
	return paths
}

// TLSFiles returns the CA certificate and a client certificate and key
// that the members accept. It fails the test if Options.TLS was false.
func (c *Cluster) TLSFiles() (ca, cert, key string) {
	c.t.Helper()
	if c.tls == nil {
		c.t.Fatal("etcdtest: TLSFiles called on a cluster started without Options.TLS")
	}
	return c.tls.ca, c.tls.clientCert, c.tls.clientKey
}

// Stop closes member i; its data and ports are kept for Restart.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	m := c.members[i]
	e, kill := m.etcd, m.kill
	m.etcd, m.kill = nil, nil
	c.mu.Unlock()
	if e != nil {
		kill()
		e.Close()
	}
}

// Restart starts a stopped member i again from its data dir, so it
// rejoins the cluster under its old identity, and waits until it is
// ready. That needs a quorum of members running.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if err := c.startMembers([]int{i}); err != nil {
		c.t.Fatalf("etcdtest: restarting member %d: %v", i, err)
	}
}

// StopAll stops every member.
func (c *Cluster) StopAll() { c.stopMembers() }

func (c *Cluster) stopMembers() {
	c.mu.Lock()
	var followers []int
	leader := -1
	for i, m := range c.members {
		if m.etcd == nil {
			continue
		}
		if s := m.etcd.Server; s.Leader() == s.MemberID() {
			leader = i
		} else {
			followers = append(followers, i)
		}
	}
	c.mu.Unlock()
	// Followers first and the leader last: a stopping leader hands off
	// leadership to a connected peer and, if that peer is itself
	// stopping, waits out the full request timeout (over 5 s). With the
	// followers gone it finds no peer and stops at once.
	var wg sync.WaitGroup
	for _, i := range followers {
		wg.Go(func() { c.Stop(i) })
	}
	wg.Wait()
	if leader >= 0 {
		c.Stop(leader)
	}
}

// RestartAll starts every stopped member and waits for all of them.
func (c *Cluster) RestartAll() {
	c.t.Helper()
	c.mu.Lock()
	n := len(c.members)
	c.mu.Unlock()
	if err := c.startMembers(allIndexes(n)); err != nil {
		c.t.Fatalf("etcdtest: restarting members: %v", err)
	}
}

func (c *Cluster) close() {
	c.stopMembers()
}

// ClientConfig returns a clientv3 configuration for the given endpoints
// (any of Endpoints, UnixEndpoints or a Cable's), with the TLS client
// certificate filled in when the cluster uses TLS.
func (c *Cluster) ClientConfig(endpoints []string) clientv3.Config {
	c.t.Helper()
	cfg := clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	}
	if c.tls != nil {
		tc, err := c.tls.clientTLS(true)
		if err != nil {
			c.t.Fatalf("etcdtest: client TLS: %v", err)
		}
		cfg.TLS = tc
	}
	return cfg
}

// Client returns a client connected to every member's TCP endpoint,
// closed at cleanup.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return c.ClientAt(t, c.Endpoints())
}

// ClientAt is Client for chosen endpoints, e.g. a Cable's.
func (c *Cluster) ClientAt(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(c.ClientConfig(endpoints))
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// Compact compacts the keyspace up to rev and waits for the physical
// compaction, so later reads and watches below rev fail deterministically.
func (c *Cluster) Compact(t testing.TB, rev int64) {
	t.Helper()
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("etcdtest: compact to %d: %v", rev, err)
	}
}

// shortTempDir makes a directory for one socket under os.TempDir rather
// than t.TempDir, whose long paths can exceed the unix socket limit.
func shortTempDir(t testing.TB) (string, error) {
	dir, err := os.MkdirTemp("", "etcd")
	if err != nil {
		return "", err
	}
	if n := len(filepath.Join(dir, sockName)); n >= 108 {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("socket path under %s is %d bytes, over the unix limit", os.TempDir(), n)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir, nil
}

// clientTLS builds the client side of the throwaway PKI; withCert false
// gives a client that trusts the server but cannot prove itself, for
// testing that the server insists.
func (f *tlsFiles) clientTLS(withCert bool) (*tls.Config, error) {
	info := transport.TLSInfo{TrustedCAFile: f.ca}
	if withCert {
		info.CertFile, info.KeyFile = f.clientCert, f.clientKey
	}
	return info.ClientConfig()
}
