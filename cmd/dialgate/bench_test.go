package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dialgate/dialgate/agi/agitest"
	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/daemon"
	"github.com/dialgate/dialgate/firewall/fwtest"
	"github.com/dialgate/dialgate/localapi"
)

// benchSize is a benchmark's size: def, or the positive number in the
// environment variable env (at most limit, if limit > 0), for a quick run.
func benchSize(env string, def, limit int) int {
	n, err := strconv.Atoi(os.Getenv(env))
	if err != nil || n <= 0 {
		return def
	}
	if limit > 0 {
		n = min(n, limit)
	}
	return n
}

// benchCalls is how many calls each latency benchmark places
// (DIALGATE_BENCH_CALLS overrides).
func benchCalls() int { return benchSize("DIALGATE_BENCH_CALLS", 1000, 0) }

func (e *e2e) appendConfig(text string) {
	f, err := os.OpenFile(e.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		e.t.Fatal(err)
	}
}

// anyIP lets the client namespace send from any address of 198.18.0.0/16
// (a local route, no per-address setup) and the server route back to it,
// so every call can grant a fresh address.
func anyIP(tb testing.TB, lab *fwtest.Lab) {
	for _, c := range [][]string{
		{"ip", "-n", lab.Client, "route", "add", "local", "198.18.0.0/16", "dev", "lo"},
		{"ip", "-n", lab.Server, "route", "add", "198.18.0.0/16", "via", fwtest.ClientV4.String()},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			tb.Fatalf("%v: %v %s", c, err, out)
		}
	}
}

func benchAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte(i / 250), byte(i%250 + 1)})
}

// firstAccepted sends numbered datagrams from src to the server's UDP
// echo on 5060, one every 50 µs, and returns when the first echo
// arrives: the send time of the datagram that got through.
func firstAccepted(lab *fwtest.Lab, src netip.Addr, start <-chan time.Time, limit time.Duration) (time.Time, error) {
	var at time.Time
	err := fwtest.Do(lab.Client, func() error {
		d := net.Dialer{LocalAddr: net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		c, err := d.Dial("udp", netip.AddrPortFrom(fwtest.ServerV4, 5060).String())
		if err != nil {
			return err
		}
		defer c.Close()
		t0 := <-start
		var sent []time.Time
		buf := make([]byte, 16)
		for time.Since(t0) < limit {
			sent = append(sent, time.Now())
			if _, err := c.Write([]byte(strconv.Itoa(len(sent) - 1))); err != nil {
				return err
			}
			c.SetReadDeadline(time.Now().Add(50 * time.Microsecond))
			n, err := c.Read(buf)
			if err != nil {
				continue
			}
			if k, err := strconv.Atoi(string(buf[:n])); err == nil && k < len(sent) {
				at = sent[k]
				return nil
			}
		}
		return fmt.Errorf("%s never got through in %v", src, limit)
	})
	return at, err
}

func percentiles(b *testing.B, name string, ds []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(ds)
	p50, p99 = ds[len(ds)/2], ds[len(ds)*99/100]
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(p50), name+"-p50-ms")
	b.ReportMetric(ms(p99), name+"-p99-ms")
	return p50, p99
}

// BenchmarkDoorVsKnockd measures, in one run, the time from the caller's
// last digit reaching the FastAGI server to the kernel accepting a packet
// from the granted address, over many calls: once with the default
// argon2id cost (19 MiB, t=2) and once with the cheapest accepted (1 MiB,
// t=1), to show what the hash costs. Then the same for knockd (a 3-port
// knock whose command inserts an iptables ACCEPT), from the last knock to
// the first accepted packet. Each runs in its own namespace lab.
func BenchmarkDoorVsKnockd(b *testing.B) {
	if _, err := exec.LookPath("knockd"); err != nil {
		b.Fatal("knockd is not installed: apt-get install knockd")
	}
	calls := benchCalls() * b.N
	strong := benchDoor(b, "door", calls, "")
	cheap := benchDoor(b, "door-cheaphash", calls, "hash_memory_kib = 1024\nhash_time = 1\n")

	// The hash check alone, at the default cost, for the breakdown.
	hash, _ := auth.HashPasscode("48151623", auth.DefaultParams)
	t := time.Now()
	for i := 0; i < 20; i++ {
		auth.VerifyPasscode("48151623", hash)
	}
	b.ReportMetric(float64(time.Since(t).Microseconds())/20/1000, "argon2-default-verify-ms")

	lab := fwtest.NewLab(b)
	anyIP(b, lab)
	lab.Echo(b, "udp", 5060)
	// knockd's lab drops SIP unless knockd's ACCEPT, inserted first, says
	// otherwise.
	if _, err := lab.Exec(lab.Server, "iptables", "-A", "INPUT", "-p", "udp", "--dport", "5060", "-j", "DROP"); err != nil {
		b.Fatal(err)
	}
	k := knockdRun(b, lab, calls)
	b.ReportMetric(float64(k)/float64(strong), "knockd/door-p50")
	b.ReportMetric(float64(k)/float64(cheap), "knockd/door-cheaphash-p50")
}

func benchDoor(b *testing.B, name string, calls int, doorConf string) time.Duration {
	e := newE2E(b)
	defer e.stop()
	e.appendConfig("[door]\nrate_per_minute = 1000000\nmax_checks_per_minute = 1000000\nmax_grants = 100\n" + doorConf)
	e.ok("init")
	e.startServe()
	p50, _, _ := doorGrantLatency(b, e, name, calls)
	return p50
}

// doorGrantLatency sets up account "bench" on e's running daemon and
// places calls keying its right passcode, each from a fresh address. It
// reports two latencies from the caller's last digit: to the kernel
// accepting the granted address (name-p50-ms, returned), and to the end
// of the call, after the door said "granted" (name-answer-p50-ms). The
// daemon changes the kernel before its transaction commits, so on etcd
// the first can precede the commit; the second cannot.
func doorGrantLatency(b *testing.B, e *e2e, name string, calls int) (p50, p99, answer50 time.Duration) {
	anyIP(b, e.lab)
	e.lab.Echo(b, "udp", 5060)
	e.ok("account", "add", "bench", "--perms", "1")
	e.ok("account", "set", "bench", "--number", aliceNumber) // what sipCall keys
	e.withStdin("48151623\n").ok("account", "passcode", "bench", "--stdin")
	lat, answer := doorLatencies(b, e, calls, 2, func(i int, src netip.Addr) agitest.Call {
		if i%100 == 99 {
			// Keep the store's grant list from growing with the run.
			e.ok("account", "set", "bench", "--disable")
			e.ok("account", "set", "bench", "--enable")
		}
		return sipCall("48151623", "900", src)
	})
	answer50, _ = percentiles(b, name+"-answer", answer)
	p50, p99 = percentiles(b, name, lat)
	return p50, p99, answer50
}

// doorLatencies places calls (call(i, src) builds the i-th, from src) and
// returns, for each, the time from the caller's last digit (the reply to
// GET DATA number passcodeAt, the passcode) reaching the FastAGI server
// to the kernel accepting a packet from src, and to the end of the call
// (the door has said "granted").
func doorLatencies(b *testing.B, e *e2e, calls, passcodeAt int, call func(i int, src netip.Addr) agitest.Call) (lat, answer []time.Duration) {
	for i := 0; i < calls; i++ {
		src := benchAddr(i % 30000)
		c := call(i, src)
		start := make(chan time.Time, 1)
		var wg sync.WaitGroup
		var got time.Time
		var perr error
		wg.Add(1)
		go func() { defer wg.Done(); got, perr = firstAccepted(e.lab, src, start, 5*time.Second) }()
		var t0 time.Time
		c.AfterDigits = func(n int) {
			if n == passcodeAt {
				t0 = time.Now()
				start <- t0
			}
		}
		tr, err := e.dial(c)
		ended := time.Now()
		wg.Wait()
		if err != nil || perr != nil || tr.Variables["DIALGATE_RESULT"] != "granted" {
			b.Fatalf("call %d: %v %v %v", i, err, perr, tr.Variables)
		}
		lat = append(lat, got.Sub(t0))
		answer = append(answer, ended.Sub(t0))
	}
	return lat, answer
}

func knockdRun(b *testing.B, lab *fwtest.Lab, calls int) time.Duration {
	dir := b.TempDir()
	conf := filepath.Join(dir, "knockd.conf")
	os.WriteFile(conf, []byte(`[options]
	LogFile = `+filepath.Join(dir, "knockd.log")+`
[door]
	sequence    = 7000,8000,9000
	seq_timeout = 5
	tcpflags    = syn
	command     = /usr/sbin/iptables -I INPUT 1 -s %IP% -p udp --dport 5060 -j ACCEPT
`), 0o600)
	k := exec.Command("ip", "netns", "exec", lab.Server, "knockd", "-c", conf, "-i", "veth-s")
	if err := k.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { k.Process.Kill(); k.Wait() }()
	time.Sleep(500 * time.Millisecond) // pcap open
	var lat []time.Duration
	misses := 0
	for i := 0; i < calls; i++ {
		src := benchAddr(30000 + i)
		// knockd sometimes misses a knock (pcap); knock again, as a user
		// would, and time from the knock that worked.
		for attempt := 1; ; attempt++ {
			d, err := knockOnce(lab, src)
			if err == nil {
				lat = append(lat, d)
				break
			}
			if attempt == 3 {
				b.Fatalf("knock %d: %v", i, err)
			}
			misses++
		}
		if _, err := lab.Exec(lab.Server, "iptables", "-D", "INPUT", "-s", src.String(), "-p", "udp", "--dport", "5060", "-j", "ACCEPT"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(misses), "knockd-missed-knocks")
	p50, _ := percentiles(b, "knockd", lat)
	return p50
}

// BenchmarkConcurrentSessions opens many FastAGI sessions at once, each
// keying the right passcode from its own address, and reports the
// throughput and the daemon's peak resident memory.
func BenchmarkConcurrentSessions(b *testing.B) {
	calls := benchCalls()
	e := newE2E(b)
	e.appendConfig("[door]\nrate_per_minute = 1000000\nmax_checks_per_minute = 1000000\nmax_grants = 100\nmax_failures = 100\n" + os.Getenv("DIALGATE_BENCH_DOOR") + "[agi]\nmax_sessions = 2000\n")
	e.ok("init")
	e.startServe()
	// An account has max_failures (100 here) tries in flight at once; the
	// rest wait up to digit_timeout for one. 1 000 calls to one account
	// would outwait that, so they are spread over accounts 1000, 1001, ...
	accounts := (calls + 99) / 100
	for a := 0; a < accounts; a++ {
		name := fmt.Sprintf("bench%d", a)
		e.ok("account", "add", name, "--perms", "1")
		e.ok("account", "set", name, "--number", strconv.Itoa(1000+a))
		e.withStdin("48151623\n").ok("account", "passcode", name, "--stdin")
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for i := 0; i < calls; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			call := sipCall("48151623", strconv.Itoa(i), benchAddr(i))
			call.Digits[0] = strconv.Itoa(1000+i%accounts) + "#"
			tr, err := e.dial(call)
			if err != nil || tr.Variables["DIALGATE_RESULT"] != "granted" {
				mu.Lock()
				if failed == 0 {
					b.Logf("first failure: %v %v", err, tr.Variables["DIALGATE_RESULT"])
				}
				failed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.serve.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	var hwm float64
	for _, l := range strings.Split(string(status), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			hwm = kb / 1024
		}
	}
	b.ReportMetric(float64(calls)/el.Seconds(), "calls/s")
	b.ReportMetric(hwm, "peak-RSS-MiB")
	b.ReportMetric(float64(failed), "failed")
	if failed > 0 {
		b.Errorf("%d of %d concurrent calls failed", failed, calls)
	}
}

func knockOnce(lab *fwtest.Lab, src netip.Addr) (time.Duration, error) {
	start := make(chan time.Time, 1)
	var got time.Time
	var perr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); got, perr = firstAccepted(lab, src, start, 2*time.Second) }()
	var t0 time.Time
	err := fwtest.Do(lab.Client, func() error {
		for _, port := range []int{7000, 8000, 9000} {
			d := net.Dialer{Timeout: 2 * time.Millisecond, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
			t0 = time.Now()
			if c, err := d.DialContext(context.Background(), "tcp", fmt.Sprintf("%s:%d", fwtest.ServerV4, port)); err == nil {
				c.Close()
			}
		}
		return nil
	})
	start <- t0
	wg.Wait()
	if err != nil {
		return 0, err
	}
	if perr != nil {
		return 0, perr
	}
	return got.Sub(t0), nil
}

// BenchmarkFQDNRefresh refreshes 1 000 names, 5% of which never answer,
// through a real name server: once with the default worker pool and once
// with a single worker (serial resolution), in one run, each within a
// 500 ms per-name timeout.
func BenchmarkFQDNRefresh(b *testing.B) {
	const names = 1000
	run := func(workers int) time.Duration {
		e, ns := fqdnSetup(b, fmt.Sprintf("timeout = \"500ms\"\ninterval = \"1h\"\nworkers = %d\n", workers))
		defer e.stop()
		for i := 0; i < names; i++ {
			ns.Set(fmt.Sprintf("n%d.dyn.example", i), netip.AddrFrom4([4]byte{198, 51, byte(i / 250), byte(i%250 + 1)}))
		}
		cfg, err := daemon.LoadConfig(e.cfg, true)
		if err != nil {
			b.Fatal(err)
		}
		c := localapi.NewClient(cfg.Socket)
		req := localapi.ImportRequest{Source: "bench", Accounts: []localapi.ImportAccount{{Name: "many", Perms: []int{1}}}}
		for i := 0; i < names; i++ {
			req.Accounts[0].Entries = append(req.Accounts[0].Entries, localapi.ImportEntry{Kind: "fqdn", Value: fmt.Sprintf("n%d.dyn.example", i)})
		}
		if _, err := c.Import(context.Background(), req); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < names; i += 20 {
			ns.Kill(fmt.Sprintf("n%d.dyn.example", i))
		}
		var total time.Duration
		for i := 0; i < b.N; i++ {
			start := time.Now()
			if _, err := c.RefreshFQDNs(context.Background()); err != nil {
				b.Fatal(err)
			}
			total += time.Since(start)
		}
		return total / time.Duration(b.N)
	}
	concurrent := run(64)
	serial := run(1)
	b.ReportMetric(float64(concurrent.Milliseconds()), "concurrent-ms")
	b.ReportMetric(float64(serial.Milliseconds()), "serial-ms")
	b.ReportMetric(float64(serial)/float64(concurrent), "serial/concurrent")
}
