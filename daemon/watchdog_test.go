package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/vishvananda/netns"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/firewall/fwfake"
	"github.com/dialgate/dialgate/firewall/fwtest"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// syncBuf is a log sink tests read while the daemon writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// wdTest is a daemon whose store admits alice's 203.0.113.10 (fwtest's
// client) to SSH, on a backend of the given kind.
type wdTest struct {
	t    testing.TB
	d    *Daemon
	fw   firewall.Backend
	kind string // "iptables", "nftables", "fake"
	lab  *fwtest.Lab
	logs *syncBuf
	w    *watchdog
}

var backendKinds = []string{"iptables", "nftables"}

// newWDTest builds the daemon; for a kernel kind the backend is bound to
// a new lab's server namespace, and the daemon's goroutines (the
// watchdog's included) may run on any thread: both backends switch to
// that namespace themselves.
func newWDTest(t testing.TB, kind string) *wdTest { return newWDTestFrom(t, kind, "") }

// newWDTestFrom starts from a copy of the database at template, if any.
func newWDTestFrom(t testing.TB, kind, template string) *wdTest {
	t.Helper()
	wt := &wdTest{t: t, kind: kind, logs: &syncBuf{}}
	switch kind {
	case "fake":
		wt.fw = fwfake.New()
	case "iptables":
		wt.lab = fwtest.NewLab(t)
		err := fwtest.Do(wt.lab.Server, func() (err error) {
			wt.fw, err = firewall.NewIPTables(quietLog())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	case "nftables":
		wt.lab = fwtest.NewLab(t)
		err := fwtest.Do(wt.lab.Server, func() error {
			ns, err := netns.GetFromName(wt.lab.Server)
			if err != nil {
				return err
			}
			defer ns.Close()
			wt.fw, err = firewall.NewNFTables(quietLog(), firewall.NFTablesOptions{NetNS: int(ns)})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { wt.fw.Close() })
	cfg := DefaultConfig()
	cfg.DB = filepath.Join(t.TempDir(), "dialgate.db")
	if template == "" {
		createDB(t, cfg.DB) // New never creates one (only init does)
	} else {
		raw, err := os.ReadFile(template)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfg.DB, raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d, err := New(Options{Config: cfg, Backend: wt.fw, Logger: slog.New(slog.NewTextHandler(wt.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	wt.d = d
	ctx := context.Background()
	// As Run starts: the stored state into the kernel.
	d.mu.Lock()
	err = d.applyStored(ctx, false)
	d.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddAccount(ctx, localapi.AddAccountRequest{Name: "alice", Perms: "8"}); err != nil && template == "" {
		t.Fatal(err)
	}
	if _, err := d.AddEntry(ctx, localapi.AddEntryRequest{Account: "alice", Kind: store.KindIP, Value: fwtest.ClientV4.String()}); err != nil {
		t.Fatal(err)
	}
	if wt.lab != nil {
		wt.lab.Echo(t, "tcp", 22)
	}
	return wt
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// start runs a watchdog until the test ends.
func (wt *wdTest) start(interval time.Duration) {
	wt.w = wt.d.newWatchdog(interval)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { wt.w.run(ctx); close(done) }()
	wt.t.Cleanup(func() { cancel(); <-done })
	// Let it subscribe to notifications before anything is tampered with.
	time.Sleep(50 * time.Millisecond)
}

// sh runs a command in the lab's server namespace.
func (wt *wdTest) sh(args ...string) {
	wt.t.Helper()
	if _, err := wt.lab.Exec(wt.lab.Server, args...); err != nil {
		wt.t.Fatal(err)
	}
}

func (wt *wdTest) repairs() []store.AuditRecord {
	wt.t.Helper()
	rs, err := wt.d.Audit(localapi.AuditFilter{Action: "firewall.repair"})
	if err != nil {
		wt.t.Fatal(err)
	}
	return rs
}

// reaches sends one SYN to port 22 from src.
func (wt *wdTest) reaches(src netip.Addr) bool {
	wt.t.Helper()
	ok, err := wt.lab.Reach("tcp", src, fwtest.ServerV4, 22, 300*time.Millisecond)
	if err != nil {
		wt.t.Fatal(err)
	}
	return ok
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// repairedKind reports whether a repair of kind was audited.
func (wt *wdTest) repairedKind(kind firewall.DriftKind) bool {
	return slices.ContainsFunc(wt.repairs(), func(r store.AuditRecord) bool {
		return r.Result == "ok" && strings.Contains(r.Subject, string(kind))
	})
}

// Tampering, per backend, with the backend's own tools.
var (
	flushChain = map[string][]string{
		"iptables": {"iptables", "-F", firewall.Chain},
		"nftables": {"nft", "flush", "chain", "inet", firewall.NFTTable, firewall.NFTChain},
	}
	acceptAhead = map[string][]string{
		"iptables": {"iptables", "-I", "INPUT", "1", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"},
		"nftables": {"nft", "insert", "rule", "inet", firewall.NFTTable, firewall.NFTChain, "tcp", "dport", "22", "accept"},
	}
	flushSSHSet = map[string][]string{
		"iptables": {"ipset", "flush", firewall.SetName(firewall.CodeSSH, firewall.V4)},
		"nftables": {"nft", "flush", "set", "inet", firewall.NFTTable, "c8v4h"},
	}
	leaveLeftover = map[string][]string{
		"iptables": {"ipset", "create", firewall.SetName(firewall.CodeSSH, firewall.V4) + "-t", "hash:net", "timeout", "0"},
		"nftables": {"nft", "add", "table", "inet", firewall.NFTTable + "-probe"},
	}
	leftoverGone = map[string]func(wt *wdTest) bool{
		"iptables": func(wt *wdTest) bool {
			out, _ := wt.lab.Exec(wt.lab.Server, "ipset", "list", "-n")
			return !strings.Contains(out, "-t\n")
		},
		"nftables": func(wt *wdTest) bool {
			out, _ := wt.lab.Exec(wt.lab.Server, "nft", "list", "tables")
			return !strings.Contains(out, "probe")
		},
	}
)

// TestWatchdogRepairsKernel tampers with a running daemon's kernel
// firewall, on both backends, and waits (with a deadline) until real
// packets show it repaired and the audit log and the WARN log say so.
func TestWatchdogRepairsKernel(t *testing.T) {
	for _, kind := range backendKinds {
		t.Run(kind, func(t *testing.T) {
			t.Run("flush chain", func(t *testing.T) {
				wt := newWDTest(t, kind)
				wt.start(WatchdogInterval)
				if wt.reaches(fwtest.OtherV4) {
					t.Fatal("stranger reaches SSH before any tampering")
				}
				wt.sh(flushChain[kind]...)
				eventually(t, 5*time.Second, "stranger's SYN to 22 dropped again and the repair audited", func() bool {
					return wt.repairedKind(firewall.DriftChain) && !wt.reaches(fwtest.OtherV4)
				})
				if !wt.reaches(fwtest.ClientV4) {
					t.Error("the whitelisted client lost SSH")
				}
				if l := wt.logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "repaired") {
					t.Errorf("no WARN log of the repair:\n%s", l)
				}
				if n := counterValue(wt.w.repairs.WithLabelValues("chain")); n < 1 {
					t.Errorf("dialgate_firewall_repairs_total{kind=chain} = %v", n)
				}
				t.Logf("audit: %+v", wt.repairs())
			})
			t.Run("accept ahead", func(t *testing.T) {
				wt := newWDTest(t, kind)
				wt.start(WatchdogInterval)
				wt.sh(acceptAhead[kind]...)
				eventually(t, 5*time.Second, "foreign ACCEPT ahead of dialgate neutralised", func() bool {
					return len(wt.repairs()) > 0 && !wt.reaches(fwtest.OtherV4)
				})
				if kind == "iptables" {
					out, _ := wt.lab.Exec(wt.lab.Server, "iptables", "-S", "INPUT")
					if !strings.Contains(out, "-A INPUT -j DIALGATE\n-A INPUT -p tcp") {
						t.Errorf("jump not moved first:\n%s", out)
					}
				}
			})
			t.Run("flush set", func(t *testing.T) {
				wt := newWDTest(t, kind)
				wt.start(WatchdogInterval)
				wt.sh(flushSSHSet[kind]...)
				eventually(t, 5*time.Second, "members back: the client reaches SSH again", func() bool {
					return wt.repairedKind(firewall.DriftMembers) && wt.reaches(fwtest.ClientV4)
				})
			})
			t.Run("leftover", func(t *testing.T) {
				wt := newWDTest(t, kind)
				wt.start(WatchdogInterval)
				wt.sh(leaveLeftover[kind]...)
				eventually(t, 5*time.Second, "leftover removed", func() bool {
					return wt.repairedKind(firewall.DriftLeftover) && leftoverGone[kind](wt)
				})
			})
			t.Run("fail2ban ahead", func(t *testing.T) {
				wt := newWDTest(t, kind)
				wt.start(WatchdogInterval)
				if kind == "iptables" {
					wt.sh("iptables", "-N", "f2b-sshd")
					wt.sh("iptables", "-A", "f2b-sshd", "-s", "192.0.2.7/32", "-j", "REJECT", "--reject-with", "icmp-port-unreachable")
					wt.sh("iptables", "-A", "f2b-sshd", "-j", "RETURN")
					wt.sh("iptables", "-I", "INPUT", "1", "-p", "tcp", "-m", "multiport", "--dports", "22", "-j", "f2b-sshd")
				} else {
					wt.sh("nft", "add", "table", "inet", "f2b-table")
					wt.sh("nft", "add", "chain", "inet", "f2b-table", "f2b-chain", "{ type filter hook input priority -100; policy accept; }")
					wt.sh("nft", "add", "rule", "inet", "f2b-table", "f2b-chain", "tcp", "dport", "22", "ip", "saddr", "192.0.2.7", "reject")
				}
				time.Sleep(2*WatchdogInterval + 500*time.Millisecond)
				if rs := wt.repairs(); len(rs) > 0 {
					t.Errorf("fail2ban's harmless chain was 'repaired': %+v", rs)
				}
				if wt.reaches(fwtest.OtherV4) || !wt.reaches(fwtest.ClientV4) {
					t.Error("filtering changed")
				}
				st, err := wt.d.Status(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if !st.Firewall.Loaded() {
					t.Errorf("status not protected: %+v", st.Firewall.Families)
				}
				if kind == "iptables" {
					out, _ := wt.lab.Exec(wt.lab.Server, "iptables", "-S", "INPUT")
					if !strings.Contains(out, "-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd\n-A INPUT -j DIALGATE") {
						t.Errorf("fail2ban's jump moved:\n%s", out)
					}
				}
			})
		})
	}
}

// TestLeftoverRemovedAtStart leaves what a rebuild killed half-way
// leaves (the iptables backend's temporary set; the nftables backend's
// probe table) and starts the daemon's firewall as Run does.
func TestLeftoverRemovedAtStart(t *testing.T) {
	for _, kind := range backendKinds {
		t.Run(kind, func(t *testing.T) {
			wt := newWDTest(t, kind)
			wt.sh(leaveLeftover[kind]...)
			wt.d.mu.Lock()
			err := wt.d.applyStored(context.Background(), false)
			wt.d.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			if !leftoverGone[kind](wt) {
				t.Error("leftover still there after the start's apply")
			}
		})
	}
}

// TestPurgeTakesGrantsOutOfKernel jumps the wall clock past a grant's
// expiry while the kernel, on its own clock, still holds it for hours:
// the purge loop must take it out of the kernel as it deletes the record,
// or nothing (not even `grants revoke`) could.
func TestPurgeTakesGrantsOutOfKernel(t *testing.T) {
	for _, kind := range backendKinds {
		t.Run(kind, func(t *testing.T) {
			wt := newWDTest(t, kind)
			ctx := context.Background()
			// A second grant for the client, whose entry must keep it in.
			for _, ip := range []netip.Addr{fwtest.OtherV4, fwtest.ClientV4} {
				if _, err := wt.d.Grant(ctx, GrantRequest{Account: "alice", IP: ip, Source: "test"}); err != nil {
					t.Fatal(err)
				}
			}
			wt.lab.Check(t, 400*time.Millisecond,
				fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: true})
			wt.d.now = func() time.Time { return time.Now().Add(9 * time.Hour) } // past the 8 h lifetime
			if err := wt.d.purgeGrants(ctx); err != nil {
				t.Fatal(err)
			}
			if gs, _ := wt.d.Grants(); len(gs) != 0 {
				t.Errorf("grants left in the store: %+v", gs)
			}
			wt.lab.Check(t, 400*time.Millisecond,
				fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: false},
				fwtest.Probe{Proto: "tcp", Src: fwtest.ClientV4, Dst: fwtest.ServerV4, Port: 22, Want: true})
			st, err := wt.fw.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range st.Sets {
				for _, e := range s.Entries {
					if e.Prefix.Addr() == fwtest.OtherV4 {
						t.Errorf("purged grant still in kernel set %s", s.Name)
					}
					if e.Prefix.Addr() == fwtest.ClientV4 && e.Timeout != 0 {
						t.Errorf("client's entry in %s kept the grant's timeout %v", s.Name, e.Timeout)
					}
				}
			}
			if rs, _ := wt.d.Audit(localapi.AuditFilter{Action: "grant.expire"}); len(rs) != 2 {
				t.Errorf("grant.expire records: %+v", rs)
			}
		})
	}
}

// TestWatchdogFake drives the watchdog on the in-memory backend: a
// notified change is checked at once, a silent one at the next tick;
// repeated repairs are counted but reported once a minute; a repair
// that fails is audited as an error.
func TestWatchdogFake(t *testing.T) {
	t.Run("notified", func(t *testing.T) {
		wt := newWDTest(t, "fake")
		fw := wt.fw.(*fwfake.Backend)
		wt.start(time.Hour) // only the notification can trigger a check
		fw.FlushChain()
		if fw.Admits(fwtest.OtherV4, "tcp", 22) == false {
			t.Fatal("the fake's flushed chain should admit everyone")
		}
		eventually(t, 2*time.Second, "repaired on notification", func() bool { return !fw.Admits(fwtest.OtherV4, "tcp", 22) })
		eventually(t, time.Second, "audited", func() bool { return len(wt.repairs()) == 1 })
		if r := wt.repairs()[0]; r.Subject != "chain" || r.Actor != "watchdog" || !strings.Contains(r.Detail, "changed by iptables[1]") {
			t.Errorf("audit record: %+v", r)
		}
	})
	t.Run("silent", func(t *testing.T) {
		wt := newWDTest(t, "fake")
		fw := wt.fw.(*fwfake.Backend)
		fw.QuietTamper(true)
		wt.start(50 * time.Millisecond)
		fw.FlushSet(firewall.CodeSSH)
		eventually(t, 2*time.Second, "members back at the next tick", func() bool { return fw.Admits(fwtest.ClientV4, "tcp", 22) })
	})
	t.Run("harmless ahead", func(t *testing.T) {
		wt := newWDTest(t, "fake")
		fw := wt.fw.(*fwfake.Backend)
		fw.InsertAhead("-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd", true)
		if d, err := wt.d.newWatchdog(time.Hour).check(context.Background(), ""); err != nil || !d.OK() {
			t.Fatalf("harmless rule reported: %v %v", d, err)
		}
		fw.InsertAhead("-A INPUT -j fpbxfirewall", false)
		if !fw.Admits(fwtest.OtherV4, "tcp", 22) {
			t.Fatal("an accepting rule ahead should admit everyone")
		}
		d, err := wt.d.newWatchdog(time.Hour).check(context.Background(), "")
		if err != nil || !slices.Contains(d.Kinds(), firewall.DriftJump) {
			t.Fatalf("accepting rule ahead: %v %v", d, err)
		}
		st, _ := fw.Status(context.Background())
		if !st.Loaded() || len(st.Families[0].Ahead) != 1 || !st.Families[0].Ahead[0].Harmless {
			t.Errorf("after repair: %+v", st.Families[0])
		}
	})
	t.Run("rate limited", func(t *testing.T) {
		wt := newWDTest(t, "fake")
		fw := wt.fw.(*fwfake.Backend)
		w := wt.d.newWatchdog(time.Hour)
		for i := 0; i < 5; i++ {
			fw.FlushChain()
			if _, err := w.check(context.Background(), ""); err != nil {
				t.Fatal(err)
			}
		}
		if v := gaugeValue(w.inSync); v != 1 {
			t.Errorf("dialgate_firewall_in_sync = %v after repairs, want 1", v)
		}
		if n := counterValue(w.repairs.WithLabelValues("chain")); n != 5 {
			t.Errorf("repairs counted: %v, want 5", n)
		}
		if rs := wt.repairs(); len(rs) != 1 {
			t.Errorf("audited %d repairs within a minute, want 1: %+v", len(rs), rs)
		}
		if n := strings.Count(wt.logs.String(), "repaired"); n != 1 {
			t.Errorf("logged %d repairs within a minute, want 1", n)
		}
		// A minute later the next repair is reported, with the count.
		w.mu.Lock()
		w.reported["chain"] = time.Now().Add(-2 * repairQuiet)
		w.mu.Unlock()
		fw.FlushChain()
		w.check(context.Background(), "")
		if rs := wt.repairs(); len(rs) != 2 || !strings.Contains(rs[1].Detail, "and 4 such repairs") {
			t.Errorf("second report: %+v", rs)
		}
	})
	t.Run("repair fails", func(t *testing.T) {
		wt := newWDTest(t, "fake")
		fw := wt.fw.(*fwfake.Backend)
		fw.FlushChain()
		fw.FailAlways(fwfake.MethodApply, errors.New("kernel says no"))
		w := wt.d.newWatchdog(time.Hour)
		if _, err := w.check(context.Background(), ""); err != nil {
			t.Fatal(err)
		}
		if v := gaugeValue(w.inSync); v != 0 {
			t.Errorf("dialgate_firewall_in_sync = %v after a failed repair, want 0", v)
		}
		rs := wt.repairs()
		if len(rs) != 1 || rs[0].Result != "error" || !strings.Contains(rs[0].Detail, "kernel says no") {
			t.Errorf("audit: %+v", rs)
		}
		if !strings.Contains(wt.logs.String(), "level=ERROR") {
			t.Error("no ERROR log")
		}
	})
	t.Run("purge", func(t *testing.T) {
		wt := newWDTest(t, "fake")
		fw := wt.fw.(*fwfake.Backend)
		clock := fwfake.NewClock(time.Now())
		fw.Now = clock.Now // the kernel's clock does not jump
		ctx := context.Background()
		if _, err := wt.d.Grant(ctx, GrantRequest{Account: "alice", IP: fwtest.OtherV4, Source: "test"}); err != nil {
			t.Fatal(err)
		}
		wt.d.now = func() time.Time { return time.Now().Add(9 * time.Hour) }
		if err := wt.d.purgeGrants(ctx); err != nil {
			t.Fatal(err)
		}
		if fw.Admits(fwtest.OtherV4, "tcp", 22) {
			t.Error("purged grant still admitted by the kernel")
		}
	})
}

// BenchmarkWatchdogExposure measures how long a stranger could get in
// after the firewall is tampered with: from the moment the tampering
// command starts until the watchdog's repair is done, 20 tries each,
// p50 and max, for each backend and three kinds of tampering: a flushed
// chain and an ACCEPT put ahead of dialgate's rules (both announced by
// the kernel: iptables-nft and nftables send notifications), and a
// flushed set (ipset announces nothing, so the 1 s
// poll finds it; nftables announces it).
func BenchmarkWatchdogExposure(b *testing.B) {
	const tries = 20
	for _, kind := range backendKinds {
		for _, tc := range []struct {
			name string
			cmd  map[string][]string
		}{{"flushchain", flushChain}, {"acceptahead", acceptAhead}, {"flushset", flushSSHSet}} {
			b.Run(kind+"/"+tc.name, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					wt := newWDTest(b, kind)
					repaired := make(chan time.Time, 1)
					wt.start(WatchdogInterval)
					wt.w.onRepair = func(firewall.Drift) { repaired <- time.Now() }
					var ds []time.Duration
					for try := 0; try < tries; try++ {
						// At a random moment of the watchdog's second.
						time.Sleep(100*time.Millisecond + time.Duration(rand.Int64N(int64(WatchdogInterval))))
						start := time.Now()
						wt.sh(tc.cmd[kind]...)
						select {
						case at := <-repaired:
							ds = append(ds, at.Sub(start))
						case <-time.After(5 * time.Second):
							b.Fatalf("try %d: not repaired within 5 s", try)
						}
					}
					sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
					p50, worst := ds[len(ds)/2], ds[len(ds)-1]
					b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
					b.Logf("%s %s: exposure p50 %v, max %v over %d tries", kind, tc.name, p50, worst, tries)
				}
			})
		}
	}
}

// BenchmarkWatchdogCheck10000 measures one watchdog check (store read,
// kernel read, comparison) with 10 000 entries, as wall time and as CPU
// (the daemon's and the iptables commands' it runs), per backend. The
// store's share is measured apart.
func BenchmarkWatchdogCheck10000(b *testing.B) {
	for _, kind := range backendKinds {
		b.Run(kind, func(b *testing.B) {
			wt := newWDTestFrom(b, kind, db10000(b))
			ctx := context.Background()
			wt.d.mu.Lock()
			err := wt.d.applyStored(ctx, false)
			wt.d.mu.Unlock()
			if err != nil {
				b.Fatal(err)
			}
			w := wt.d.newWatchdog(time.Hour)
			if d, err := w.check(ctx, ""); err != nil || !d.OK() {
				b.Fatalf("first check: %v %v", d, err)
			}
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if d, err := w.check(ctx, ""); err != nil || !d.OK() {
					b.Fatalf("check: %v %v", d, err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/check")
			start, n := time.Now(), 0
			for ; n < 20; n++ {
				wt.d.db.View(func(tx store.Tx) error {
					_, err := desiredState(tx, wt.d.config().FirewallRules(), time.Now())
					return err
				})
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(n), "store-ms/check")
		})
	}
}

var (
	db10000Once sync.Once
	db10000Path string
	db10000Err  error
)

// db10000 returns a database with account alice and 10 000 address
// entries, built once and kept in the temporary directory for later runs
// (store.AddEntry scans every entry for duplicates, so building it takes
// minutes).
func db10000(b *testing.B) string {
	db10000Once.Do(func() {
		db10000Path = filepath.Join(os.TempDir(), "dialgate-bench-10000.db")
		if _, err := os.Stat(db10000Path); err == nil {
			return
		}
		tmp := db10000Path + ".new"
		os.Remove(tmp)
		db, err := store.Open(tmp, store.Options{Create: true})
		if err != nil {
			db10000Err = err
			return
		}
		db10000Err = db.Update(func(tx store.Tx) error {
			if err := tx.CreateAccount(store.Account{Name: "alice", Perms: store.NewPermSet(8), Enabled: true}); err != nil {
				return err
			}
			for i := 0; i < 10000; i++ {
				ip := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
				if _, err := tx.AddEntry(store.Entry{Account: "alice", Kind: store.KindIP, Value: ip.String()}); err != nil {
					return err
				}
			}
			return nil
		})
		if err := db.Close(); db10000Err == nil {
			db10000Err = err
		}
		if db10000Err == nil {
			db10000Err = os.Rename(tmp, db10000Path)
		}
	})
	if db10000Err != nil {
		b.Fatal(db10000Err)
	}
	return db10000Path
}

// cpuTime is the CPU the process and its waited-for children have used.
func cpuTime() time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return total
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		return -1
	}
	return m.GetGauge().GetValue()
}
