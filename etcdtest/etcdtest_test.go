package etcdtest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func putGet(t *testing.T, cli *clientv3.Client, key, val string) {
	t.Helper()
	ctx := ctxT(t, 5*time.Second)
	if _, err := cli.Put(ctx, key, val); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != val {
		t.Fatalf("get %s = %v, want %q", key, resp.Kvs, val)
	}
}

func TestSingleMemberTCPAndUnix(t *testing.T) {
	t.Parallel()
	c := Start(t, Options{MaxTxnOps: 4, MaxRequestBytes: 1024})
	putGet(t, c.Client(t), "tcp", "1")

	for _, ep := range c.UnixEndpoints() {
		if ep[:len("unix:///")] != "unix:///" {
			t.Fatalf("unix endpoint %q not absolute", ep)
		}
	}
	unix := c.ClientAt(t, c.UnixEndpoints())
	putGet(t, unix, "unix", "2")

	// MaxTxnOps reached the server.
	ops := make([]clientv3.Op, 5)
	for i := range ops {
		ops[i] = clientv3.OpPut("k", "v")
	}
	_, err := unix.Txn(ctxT(t, 5*time.Second)).Then(ops...).Commit()
	if !errors.Is(err, rpctypes.ErrTooManyOps) {
		t.Fatalf("txn with 5 ops: err = %v, want ErrTooManyOps", err)
	}
	_, err = unix.Put(ctxT(t, 5*time.Second), "big", strings.Repeat("x", 2048))
	if !errors.Is(err, rpctypes.ErrRequestTooLarge) {
		t.Fatalf("2 KiB put: err = %v, want ErrRequestTooLarge", err)
	}
}

func TestThreeMembersStopRestart(t *testing.T) {
	t.Parallel()
	c := Start(t, Options{Members: 3})
	eps := c.Endpoints()
	cli := c.Client(t)
	putGet(t, cli, "a", "1")

	c.Stop(0)
	putGet(t, cli, "b", "2")

	c.Restart(0)
	// The restarted member alone must see the write made while it was
	// down, proving it rejoined and caught up.
	only0 := c.ClientAt(t, eps[:1])
	resp, err := only0.Get(ctxT(t, 5*time.Second), "b")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "2" {
		t.Fatalf("get b from restarted member: %v %v", resp, err)
	}
}

func TestStopAllFailsFast(t *testing.T) {
	t.Parallel()
	c := Start(t, Options{})
	cli := c.Client(t)
	putGet(t, cli, "a", "1")
	// An open watch must neither slow StopAll down nor be lost by it.
	wch := cli.Watch(ctxT(t, 15*time.Second), "w")

	stopStart := time.Now()
	c.StopAll()
	if d := time.Since(stopStart); d > 3*time.Second {
		t.Errorf("StopAll with an open watch took %v", d)
	}
	start := time.Now()
	if _, err := cli.Get(ctxT(t, 500*time.Millisecond), "a"); err == nil {
		t.Fatal("get with all members stopped succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("get took %v to fail", d)
	}

	c.RestartAll()
	resp, err := cli.Get(ctxT(t, 10*time.Second), "a")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get after RestartAll: %v %v", resp, err)
	}
	putGet(t, cli, "w", "1")
	wresp, ok := <-wch
	if !ok || wresp.Err() != nil || len(wresp.Events) != 1 {
		t.Fatalf("watch across restart: ok=%v err=%v events=%d", ok, wresp.Err(), len(wresp.Events))
	}
}

func TestCableCutMend(t *testing.T) {
	t.Parallel()
	c := Start(t, Options{})
	for _, name := range []string{"tcp", "unix"} {
		t.Run(name, func(t *testing.T) {
			cb := c.Cable(t)
			eps := cb.Endpoints()[:1]
			if name == "unix" {
				eps = cb.UnixEndpoints()
			}
			cli := c.ClientAt(t, eps)
			putGet(t, cli, name, "1")

			cb.Cut()
			if _, err := cli.Get(ctxT(t, 500*time.Millisecond), name); err == nil {
				t.Fatal("get through a cut cable succeeded")
			}
			// The store itself is still fine.
			putGet(t, c.Client(t), name+"-direct", "1")

			cb.Mend()
			resp, err := cli.Get(ctxT(t, 10*time.Second), name)
			if err != nil || len(resp.Kvs) != 1 {
				t.Fatalf("get after Mend: %v %v", resp, err)
			}
		})
	}
}

func TestCompactWatch(t *testing.T) {
	t.Parallel()
	c := Start(t, Options{LogLevel: "panic"})
	cli := c.Client(t)
	ctx := ctxT(t, 5*time.Second)
	first, err := cli.Put(ctx, "k", "1")
	if err != nil {
		t.Fatal(err)
	}
	last, err := cli.Put(ctx, "k", "2")
	if err != nil {
		t.Fatal(err)
	}
	c.Compact(t, last.Header.Revision)

	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wresp, ok := <-cli.Watch(wctx, "k", clientv3.WithRev(first.Header.Revision))
	if !ok {
		t.Fatal("watch channel closed without a response")
	}
	if err := wresp.Err(); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("watch from compacted rev: err = %v, want ErrCompacted", err)
	}
	if wresp.CompactRevision != last.Header.Revision {
		t.Fatalf("CompactRevision = %d, want %d", wresp.CompactRevision, last.Header.Revision)
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	c := Start(t, Options{TLS: true})
	ca, cert, key := c.TLSFiles()
	for _, f := range []string{ca, cert, key} {
		if f == "" {
			t.Fatal("empty TLS file path")
		}
	}
	if got := c.Endpoints()[0][:8]; got != "https://" {
		t.Fatalf("TLS endpoint scheme %q", got)
	}
	putGet(t, c.Client(t), "tcp", "1")
	putGet(t, c.ClientAt(t, c.UnixEndpoints()), "unix", "1")
	cb := c.Cable(t)
	putGet(t, c.ClientAt(t, cb.Endpoints()), "cable", "1")

	// Trusting the CA but presenting no certificate must be refused.
	for _, eps := range [][]string{c.Endpoints(), c.UnixEndpoints()} {
		cfg := c.ClientConfig(eps)
		tc, err := c.tls.clientTLS(false)
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLS = tc
		cfg.DialTimeout = time.Second
		cli, err := clientv3.New(cfg)
		if err != nil {
			continue // refused at dial: fine
		}
		_, err = cli.Get(ctxT(t, time.Second), "tcp")
		_ = cli.Close()
		if err == nil {
			t.Fatalf("%v: client without certificate was served", eps)
		}
	}
}
