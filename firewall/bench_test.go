package firewall_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/firewall/fwtest"
)

func benchPrefixes(n int) []netip.Prefix {
	out := make([]netip.Prefix, n)
	for i := range out {
		out[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 32)
	}
	return out
}

func sh(stdin string, args ...string) error {
	cmd := exec.Command(args[0], args[1:]...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// BenchmarkApply1000 loads 1 000 static entries into an empty kernel
// several ways, in the same run and the same namespace, and reports each
// time and dialgate's ratio to the others:
//   - dialgate: Apply (chain + sets over netlink) from nothing;
//   - dialgate-entries-only: Apply of the entries into a firewall already
//     in place (chain and empty sets);
//   - iptables-restore: one rule per entry, one restore;
//   - ipset-restore: one `ipset restore` creating a set with the entries
//     (the fastest tool-based way, no rules);
//   - iptables-A: one `iptables -A` per entry, what Travelin' Man 3 does;
//   - grant: one AddMember (the phone-grant path) vs one `ipset add`;
//   - nft-*: the same for the nftables backend, after the iptables one
//     is removed (never both at once), plus the same number of /24
//     networks (its interval sets) from nothing, with ratios to the
//     iptables backend's numbers of the same run;
//   - noop-apply, rebuild and grant of both backends, measured as the
//     daemon runs them (see latencies).
func BenchmarkApply1000(b *testing.B) { benchApply(b, 1000) }

// BenchmarkApply10000 is the same with 10 000 entries (one iptables -A
// per entry takes about 20 s here: run it with -benchtime 1x).
func BenchmarkApply10000(b *testing.B) { benchApply(b, 10000) }

func benchApply(b *testing.B, n int) {
	lab := fwtest.NewLab(b)
	prefixes := benchPrefixes(n)
	cfg := firewall.DefaultConfig()
	st := benchState(n)
	nets := firewall.State{Config: cfg}
	for _, p := range prefixes {
		nets.Add(firewall.CodeSIPUDP, netip.PrefixFrom(p.Addr(), 24).Masked(), 0)
	}
	var restore strings.Builder
	restore.WriteString("create bench hash:net family inet timeout 0 maxelem 262144\n")
	for _, p := range prefixes {
		fmt.Fprintf(&restore, "add bench %s\n", p)
	}
	ctx := context.Background()
	var rules strings.Builder
	rules.WriteString("*filter\n:BENCH - [0:0]\n")
	for _, p := range prefixes {
		fmt.Fprintf(&rules, "-A BENCH -s %s -p udp --dport 5060 -j ACCEPT\n", p)
	}
	rules.WriteString("COMMIT\n")
	var tDialgate, tLoad, tRestore, tAppend, tIptRestore, tIpsetAdd time.Duration
	var nft nftTimes
	var lat [2]latency // iptables, nftables
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		err := fwtest.Do(lab.Server, func() error {
			fw, err := firewall.NewIPTables(quietLog)
			if err != nil {
				return err
			}
			defer fw.Close()
			if err := fw.Remove(ctx); err != nil {
				return err
			}
			start := time.Now()
			if err := fw.Apply(ctx, st); err != nil {
				return err
			}
			tDialgate += time.Since(start)

			// The same entries into a firewall already in place: the
			// common case of a daemon start or a big import.
			if err := fw.Apply(ctx, firewall.State{Config: cfg}); err != nil {
				return err
			}
			start = time.Now()
			if err := fw.Apply(ctx, st); err != nil {
				return err
			}
			tLoad += time.Since(start)

			start = time.Now()
			if err := sh("", "ipset", "add", "-exist", firewall.SetName(firewall.CodeSIPUDP, firewall.V4), "203.0.113.78", "timeout", "3600"); err != nil {
				return err
			}
			tIpsetAdd += time.Since(start)

			sh("", "ipset", "destroy", "bench")
			start = time.Now()
			if err := sh(restore.String(), "ipset", "restore"); err != nil {
				return err
			}
			tRestore += time.Since(start)

			if err := sh("", "iptables", "-N", "BENCH"); err != nil {
				return err
			}
			start = time.Now()
			for _, p := range prefixes {
				if err := sh("", "iptables", "-w", "-A", "BENCH", "-s", p.String(), "-p", "udp", "--dport", "5060", "-j", "ACCEPT"); err != nil {
					return err
				}
			}
			tAppend += time.Since(start)
			sh("", "iptables", "-F", "BENCH")
			sh("", "iptables", "-X", "BENCH")
			start = time.Now()
			if err := sh(rules.String(), "iptables-restore", "--noflush"); err != nil {
				return err
			}
			tIptRestore += time.Since(start)
			sh("", "iptables", "-F", "BENCH")
			sh("", "iptables", "-X", "BENCH")
			if err := fw.Remove(ctx); err != nil {
				return err
			}
			return nft.measure(ctx, st, nets)
		})
		if err != nil {
			b.Fatal(err)
		}
		l, err := latencies(lab, n)
		if err != nil {
			b.Fatal(err)
		}
		for k := range lat {
			lat[k].add(l[k])
		}
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 / float64(b.N) }
	ipt, nl := lat[0], lat[1]
	b.ReportMetric(per(tDialgate), "dialgate-ms")
	b.ReportMetric(per(tLoad), "dialgate-entries-only-ms")
	b.ReportMetric(float64(tLoad)/float64(tRestore), "dialgate-entries-only/ipset-restore")
	b.ReportMetric(per(tRestore), "ipset-restore-ms")
	b.ReportMetric(per(tAppend), "iptables-A-ms")
	b.ReportMetric(per(tIptRestore), "iptables-restore-ms")
	b.ReportMetric(float64(tDialgate)/float64(tIptRestore), "dialgate/iptables-restore")
	b.ReportMetric(float64(tDialgate)/float64(tRestore), "dialgate/ipset-restore")
	b.ReportMetric(float64(tAppend)/float64(tDialgate), "iptables-A/dialgate")
	b.ReportMetric(us(ipt.grant), "grant-us")
	b.ReportMetric(float64(tIpsetAdd.Microseconds())/float64(b.N), "ipset-add-exec-us")
	b.ReportMetric(per(ipt.noop), "dialgate-noop-apply-ms")
	b.ReportMetric(per(ipt.rebuild), "dialgate-rebuild-ms")

	b.ReportMetric(per(nft.apply), "nft-ms")
	b.ReportMetric(per(nft.load), "nft-entries-only-ms")
	b.ReportMetric(per(nft.nets), "nft-networks-ms")
	b.ReportMetric(per(nl.noop), "nft-noop-apply-ms")
	b.ReportMetric(per(nl.rebuild), "nft-rebuild-ms")
	b.ReportMetric(us(nl.grant), "nft-grant-us")
	b.ReportMetric(float64(nft.apply)/float64(tDialgate), "nft/dialgate")
	b.ReportMetric(float64(nft.load)/float64(tLoad), "nft-entries-only/dialgate-entries-only")
	b.ReportMetric(float64(nl.noop)/float64(ipt.noop), "nft-noop/dialgate-noop")
	b.ReportMetric(float64(nl.rebuild)/float64(ipt.rebuild), "nft-rebuild/dialgate-rebuild")
	b.ReportMetric(float64(nl.grant)/float64(ipt.grant), "nft-grant/grant")
}

// benchState whitelists n hosts for SIP.
func benchState(n int) firewall.State {
	st := firewall.State{Config: firewall.DefaultConfig()}
	for _, p := range benchPrefixes(n) {
		st.Add(firewall.CodeSIPUDP, p, 0)
	}
	return st
}

// nftTimes adds up the nftables backend's bulk loads in benchApply.
type nftTimes struct{ apply, load, nets time.Duration }

// measure runs on a thread in the lab's server namespace, where the
// backend binds itself (NFTablesOptions' zero value).
func (t *nftTimes) measure(ctx context.Context, st, nets firewall.State) error {
	fw, err := firewall.NewNFTables(quietLog, firewall.NFTablesOptions{})
	if err != nil {
		return err
	}
	defer fw.Close()
	empty := firewall.State{Config: st.Config}
	for _, step := range []struct {
		d  *time.Duration
		fn func() error
	}{
		{nil, func() error { return fw.Remove(ctx) }},
		{&t.apply, func() error { return fw.Apply(ctx, st) }},
		{nil, func() error { return fw.Apply(ctx, empty) }},
		{&t.load, func() error { return fw.Apply(ctx, st) }},
		{nil, func() error { return fw.Remove(ctx) }},
		{&t.nets, func() error { return fw.Apply(ctx, nets) }},
		{nil, func() error { return fw.Remove(ctx) }},
	} {
		start := time.Now()
		if err := step.fn(); err != nil {
			return err
		}
		if step.d != nil {
			*step.d += time.Since(start)
		}
	}
	return nil
}

// latency is what latencies measures of one backend: an Apply with
// nothing to do, a Rebuild, and one grant (the mean of grants).
type latency struct{ noop, rebuild, grant time.Duration }

func (l *latency) add(m latency) {
	l.noop += m.noop
	l.rebuild += m.rebuild
	l.grant += m.grant
}

// grants is how many grants a grant latency is the mean of: one alone is
// at the mercy of whatever the kernel does just then.
const grants = 100

// latencyHelperEnv makes the test binary run latencyHelper (see
// TestMain) instead of tests.
const latencyHelperEnv = "DIALGATE_BENCH_LATENCY_ENTRIES"

// latencies measures both backends, one after the other, with n entries
// loaded, in a process that `ip netns exec` runs in the lab's server
// namespace: the way the daemon runs. The bulk loads above call the
// kernel from a thread locked into the namespace (fwtest.Do), which is
// fine for them but not for these: the nftables library's socket and
// vishvananda/netlink's set listing wait in Go's poller, and every wait
// on a locked thread costs a thread handoff. Measured that way, a no-op
// Apply of 10 000 entries took the iptables backend 1.7 s instead of
// about 65 ms, and an nftables grant about 200 µs instead of 30-60.
func latencies(lab *fwtest.Lab, n int) ([2]latency, error) {
	var l [2]latency
	cmd := exec.Command("ip", "netns", "exec", lab.Server, os.Args[0])
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", latencyHelperEnv, n))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return l, fmt.Errorf("latency helper: %w: %s", err, out)
	}
	_, err = fmt.Sscanf(string(out), "latency %d %d %d %d %d %d",
		&l[0].noop, &l[0].rebuild, &l[0].grant, &l[1].noop, &l[1].rebuild, &l[1].grant)
	if err != nil {
		return l, fmt.Errorf("latency helper said %q: %w", out, err)
	}
	return l, nil
}

// latencyHelper is the process latencies starts: with each backend in
// turn it loads n entries, measures, removes, and prints the numbers.
func latencyHelper(n int) error {
	ctx := context.Background()
	st := benchState(n)
	fmt.Print("latency")
	for _, open := range []func() (firewall.Backend, error){
		func() (firewall.Backend, error) { return firewall.NewIPTables(quietLog) },
		func() (firewall.Backend, error) { return firewall.NewNFTables(quietLog, firewall.NFTablesOptions{}) },
	} {
		fw, err := open()
		if err != nil {
			return err
		}
		defer fw.Close()
		var l latency
		for _, step := range []struct {
			d  *time.Duration
			fn func() error
		}{
			{nil, func() error { return fw.Apply(ctx, st) }},
			{&l.noop, func() error { return fw.Apply(ctx, st) }},
			{&l.rebuild, func() error { return fw.Rebuild(ctx, st) }},
			{&l.grant, func() error {
				for i := range grants {
					m := firewall.Member{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 32), Timeout: time.Hour}
					if err := fw.AddMember(ctx, firewall.CodeSIPUDP, m); err != nil {
						return err
					}
				}
				return nil
			}},
			{nil, func() error { return fw.Remove(ctx) }},
		} {
			start := time.Now()
			if err := step.fn(); err != nil {
				return err
			}
			if step.d != nil {
				*step.d += time.Since(start)
			}
		}
		fmt.Printf(" %d %d %d", l.noop, l.rebuild, l.grant/grants)
	}
	fmt.Println()
	return nil
}

func TestMain(m *testing.M) {
	if v := os.Getenv(latencyHelperEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err == nil {
			err = latencyHelper(n)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// connectRate opens TCP connections from src to the server's port 22 for
// d, from several goroutines, and returns connections per second.
func connectRate(b *testing.B, lab *fwtest.Lab, src netip.Addr, d time.Duration) float64 {
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fwtest.Do(lab.Client, func() error {
				dialer := net.Dialer{Timeout: time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
				for time.Now().Before(stop) {
					c, err := dialer.Dial("tcp", netip.AddrPortFrom(fwtest.ServerV4, 22).String())
					if err != nil {
						b.Error(err)
						return nil
					}
					// RST rather than FIN: no TIME_WAIT, so the client's ports
					// last the whole run.
					c.(*net.TCPConn).SetLinger(0)
					c.Close()
					n.Add(1)
				}
				return nil
			})
		}()
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds()
}

// BenchmarkPerPacket10000 measures what 10 000 whitelist entries cost a
// new connection: the TCP connect rate from a whitelisted client through
// dialgate's chain with 10 000 other entries in the SSH set, against the
// same chain with only the client in it, and (for reference) no firewall
// at all, in one run; then the same through the nftables backend's
// table (the iptables firewall removed first), with the ratio of the two
// backends at 10 000 entries.
func BenchmarkPerPacket10000(b *testing.B) {
	lab := fwtest.NewLab(b)
	lab.Echo(b, "tcp", 22)
	st := firewall.State{Config: firewall.DefaultConfig()}
	for _, p := range benchPrefixes(10000) {
		st.Add(firewall.CodeSSH, p, 0)
	}
	st.Add(firewall.CodeSSH, netip.PrefixFrom(fwtest.ClientV4, 32), 0)
	empty := firewall.State{Config: st.Config}
	empty.Add(firewall.CodeSSH, netip.PrefixFrom(fwtest.ClientV4, 32), 0)
	ctx := context.Background()
	var fw *firewall.IPTables
	var nft *firewall.NFTables
	if err := fwtest.Do(lab.Server, func() (err error) {
		if fw, err = firewall.NewIPTables(quietLog); err != nil {
			return err
		}
		nft, err = firewall.NewNFTables(quietLog, firewall.NFTablesOptions{})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer fw.Close()
	defer nft.Close()
	do := func(fn func() error) {
		if err := fwtest.Do(lab.Server, fn); err != nil {
			b.Fatal(err)
		}
	}
	const d = 3 * time.Second
	var with, chain, without, nftWith, nftChain float64
	for i := 0; i < b.N; i++ {
		do(func() error { return fw.Remove(ctx) })
		without += connectRate(b, lab, fwtest.ClientV4, d)
		do(func() error { return fw.Apply(ctx, empty) })
		chain += connectRate(b, lab, fwtest.ClientV4, d)
		do(func() error { return fw.Apply(ctx, st) })
		with += connectRate(b, lab, fwtest.ClientV4, d)
		do(func() error { return fw.Remove(ctx) })

		do(func() error { return nft.Apply(ctx, empty) })
		nftChain += connectRate(b, lab, fwtest.ClientV4, d)
		do(func() error { return nft.Apply(ctx, st) })
		nftWith += connectRate(b, lab, fwtest.ClientV4, d)
		do(func() error { return nft.Remove(ctx) })
	}
	b.ReportMetric(with/float64(b.N), "conn/s-10000-entries")
	b.ReportMetric(chain/float64(b.N), "conn/s-empty-chain")
	b.ReportMetric(without/float64(b.N), "conn/s-no-firewall")
	b.ReportMetric(100*(1-with/chain), "slowdown-vs-empty-chain-%")
	b.ReportMetric(nftWith/float64(b.N), "nft-conn/s-10000-entries")
	b.ReportMetric(nftChain/float64(b.N), "nft-conn/s-empty-table")
	b.ReportMetric(100*(1-nftWith/nftChain), "nft-slowdown-vs-empty-table-%")
	b.ReportMetric(nftWith/with, "nft/iptables-conn-rate")
}

// BenchmarkVerify10000 measures one Verify of a firewall holding 10 000
// members, per backend: wall time per op, and CPU per op (the process's
// and the iptables commands' it runs).
func BenchmarkVerify10000(b *testing.B) {
	for _, bk := range backends {
		b.Run(bk.name, func(b *testing.B) {
			lab := fwtest.NewLab(b)
			fw := bk.new(b, lab)
			st := benchState(10000)
			ctx := context.Background()
			err := fwtest.Do(lab.Server, func() error {
				if err := fw.Apply(ctx, st); err != nil {
					return err
				}
				cpu0 := cpuTime()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					d, err := fw.Verify(ctx, st)
					if err != nil {
						return err
					}
					if !d.OK() {
						return fmt.Errorf("drift: %s", d)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
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

// sendRate is how many UDP datagrams per second four senders in the
// client namespace push from src to the server's port. On a veth pair the
// receive side (netfilter included) runs in the sender's system call, so
// the rate follows the cost of dropping a packet.
func sendRate(b *testing.B, lab *fwtest.Lab, src netip.Addr, port uint16, d time.Duration) float64 {
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fwtest.Do(lab.Client, func() error {
				c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)),
					net.UDPAddrFromAddrPort(netip.AddrPortFrom(fwtest.ServerV4, port)))
				if err != nil {
					b.Error(err)
					return nil
				}
				defer c.Close()
				msg := make([]byte, 64)
				for time.Now().Before(stop) {
					for range 64 {
						if _, err := c.Write(msg); err == nil {
							n.Add(1)
						}
					}
				}
				return nil
			})
		}()
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds()
}

// BenchmarkDropAccounting10000 measures what drop accounting costs,
// per backend, with 10 000 entries in the SSH set: the TCP connect rate
// of a whitelisted client (accepted traffic, which never reaches the
// accounting rules) and the rate at which a stranger's UDP datagrams to
// 5060 can be dropped (each one counted), with the accounting rules in
// place and with them deleted by hand, alternating, in one run. The
// ratios are on/off: 1 means no cost.
func BenchmarkDropAccounting10000(b *testing.B) {
	lab := fwtest.NewLab(b)
	lab.Echo(b, "tcp", 22)
	st := firewall.State{Config: firewall.DefaultConfig()}
	st.Config.LAN = nil
	for _, p := range benchPrefixes(10000) {
		st.Add(firewall.CodeSSH, p, 0)
	}
	st.Add(firewall.CodeSSH, netip.PrefixFrom(fwtest.ClientV4, 32), 0)
	ctx := context.Background()
	do := func(fn func() error) {
		if err := fwtest.Do(lab.Server, fn); err != nil {
			b.Fatal(err)
		}
	}
	// strip deletes the accounting rules, as if dialgate made none.
	strip := map[string]func() error{
		"iptables": func() error {
			for _, f := range []firewall.Family{firewall.V4, firewall.V6} {
				bin := map[firewall.Family]string{firewall.V4: "iptables", firewall.V6: "ip6tables"}[f]
				for _, r := range [][]string{
					{"-m", "set", "!", "--match-set", firewall.DropsSetName(f), "src,dst", "-j", "SET", "--add-set", firewall.DropsSetName(f), "src,dst"},
					{"-j", "SET", "--add-set", firewall.SeenSetName(f), "src,dst", "--exist"},
				} {
					if out, err := exec.Command(bin, append([]string{"-w", "-D", firewall.Chain}, r...)...).CombinedOutput(); err != nil {
						return fmt.Errorf("%s: %w: %s", bin, err, out)
					}
				}
			}
			return nil
		},
		"nftables": func() error {
			out, err := exec.Command("nft", "-a", "list", "chain", "inet", firewall.NFTTable, firewall.NFTChain).Output()
			if err != nil {
				return err
			}
			for _, l := range strings.Split(string(out), "\n") {
				if !strings.Contains(l, "update @drops-") {
					continue
				}
				_, h, _ := strings.Cut(l, "# handle ")
				if err := exec.Command("nft", "delete", "rule", "inet", firewall.NFTTable, firewall.NFTChain, "handle", strings.TrimSpace(h)).Run(); err != nil {
					return err
				}
			}
			return nil
		},
	}
	const d = 2 * time.Second
	for _, bk := range backends {
		fw := bk.new(b, lab)
		var accOn, accOff, dropOn, dropOff float64
		for i := 0; i < b.N; i++ {
			for round := 0; round < 2; round++ {
				do(func() error { return fw.Apply(ctx, st) })
				accOn += connectRate(b, lab, fwtest.ClientV4, d)
				dropOn += sendRate(b, lab, fwtest.OtherV4, 5060, d)
				do(strip[bk.name])
				accOff += connectRate(b, lab, fwtest.ClientV4, d)
				dropOff += sendRate(b, lab, fwtest.OtherV4, 5060, d)
			}
		}
		var ds []firewall.Drop
		do(func() error { return fw.Apply(ctx, st) })
		do(func() (err error) { ds, err = fw.Drops(ctx); return err })
		if len(ds) == 0 {
			b.Errorf("%s: no drops counted", bk.name)
		}
		do(func() error { return fw.Remove(ctx) })
		runs := float64(2 * b.N)
		b.ReportMetric(accOn/runs, bk.name+"-accepted-conn/s-accounting")
		b.ReportMetric(accOff/runs, bk.name+"-accepted-conn/s-no-accounting")
		b.ReportMetric(accOn/accOff, bk.name+"-accepted-on/off")
		b.ReportMetric(dropOn/runs, bk.name+"-dropped-pkt/s-accounting")
		b.ReportMetric(dropOff/runs, bk.name+"-dropped-pkt/s-no-accounting")
		b.ReportMetric(dropOn/dropOff, bk.name+"-dropped-on/off")
	}
}

// BenchmarkDropsFull measures, per backend, with 10 000 entries loaded
// and the v4 drop accounting full (65 536 sources): one Drops (what
// `dialgate drops`, status and a metrics scrape read) and one Verify
// (the watchdog's check, which lists the sets), against Verify with the
// accounting empty.
func BenchmarkDropsFull(b *testing.B) {
	for _, bk := range backends {
		b.Run(bk.name, func(b *testing.B) {
			lab := fwtest.NewLab(b)
			fw := bk.new(b, lab)
			st := benchState(10000)
			ctx := context.Background()
			do := func(fn func() error) {
				if err := fwtest.Do(lab.Server, fn); err != nil {
					b.Fatal(err)
				}
			}
			verify := func() time.Duration {
				start := time.Now()
				for range 5 {
					do(func() error {
						d, err := fw.Verify(ctx, st)
						if err == nil && !d.OK() {
							err = fmt.Errorf("drift: %s", d)
						}
						return err
					})
				}
				return time.Since(start) / 5
			}
			do(func() error { return fw.Apply(ctx, st) })
			empty := verify()
			var sb strings.Builder
			fill := []string{"nft", "-f", "-"}
			if bk.name == "iptables" {
				fill = []string{"ipset", "restore"}
				for i := range firewall.DropsMaxElem {
					fmt.Fprintf(&sb, "add %s 10.%d.%d.1,tcp:22\nadd %s 10.%d.%d.1,tcp:22\n",
						firewall.DropsSetName(firewall.V4), i/256, i%256, firewall.SeenSetName(firewall.V4), i/256, i%256)
				}
			} else {
				// One short of the bound, as the sets fill up to it.
				sb.WriteString("add element inet dialgate drops-v4 {")
				for i := range firewall.DropsMaxElem - 1 {
					if i > 0 {
						sb.WriteString(",")
					}
					fmt.Fprintf(&sb, "10.%d.%d.1 . tcp . 22", i/256, i%256)
				}
				sb.WriteString("}\n")
			}
			do(func() error { return sh(sb.String(), fill...) })
			full := verify()
			var n int
			var drops time.Duration
			for i := 0; i < b.N; i++ {
				start := time.Now()
				do(func() error {
					ds, err := fw.Drops(ctx)
					n = len(ds)
					return err
				})
				drops += time.Since(start)
			}
			b.ReportMetric(float64(n), "sources")
			b.ReportMetric(float64(drops.Milliseconds())/float64(b.N), "ms/Drops")
			b.ReportMetric(float64(empty.Microseconds())/1000, "ms/Verify-empty")
			b.ReportMetric(float64(full.Microseconds())/1000, "ms/Verify-full")
		})
	}
}

// BenchmarkBlock10000 measures what Config.Block costs accepted traffic,
// per backend, with 10 000 entries in the SSH set and 1 000 sources
// blocked: the TCP connect rate of a whitelisted client with the block
// rule in place (every packet, established ones included, is looked up
// in the block set first) and without it (Config.Block off, the members
// kept), alternating, in one run. The ratio is on/off: 1 means no cost.
func BenchmarkBlock10000(b *testing.B) {
	lab := fwtest.NewLab(b)
	lab.Echo(b, "tcp", 22)
	on := firewall.State{Config: firewall.DefaultConfig()}
	on.Config.LAN = nil
	on.Config.Block = true
	for _, p := range benchPrefixes(10000) {
		on.Add(firewall.CodeSSH, p, 0)
	}
	on.Add(firewall.CodeSSH, netip.PrefixFrom(fwtest.ClientV4, 32), 0)
	off := on
	off.Config.Block = false
	ctx := context.Background()
	do := func(fn func() error) {
		if err := fwtest.Do(lab.Server, fn); err != nil {
			b.Fatal(err)
		}
	}
	const d = 2 * time.Second
	for _, bk := range backends {
		fw := bk.new(b, lab)
		bl := fw.(firewall.Blocker)
		do(func() error {
			if err := fw.Apply(ctx, on); err != nil {
				return err
			}
			for i := range 1000 {
				if err := bl.Block(ctx, netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)}), time.Hour); err != nil {
					return err
				}
			}
			return nil
		})
		var rOn, rOff float64
		for i := 0; i < b.N; i++ {
			for round := 0; round < 2; round++ {
				do(func() error { return fw.Apply(ctx, on) })
				rOn += connectRate(b, lab, fwtest.ClientV4, d)
				do(func() error { return fw.Apply(ctx, off) })
				rOff += connectRate(b, lab, fwtest.ClientV4, d)
			}
		}
		var bs []firewall.Blocked
		do(func() (err error) { bs, err = bl.Blocked(ctx); return err })
		if len(bs) != 1000 {
			b.Errorf("%s: %d sources blocked, want 1000", bk.name, len(bs))
		}
		do(func() error { return fw.Remove(ctx) })
		runs := float64(2 * b.N)
		b.ReportMetric(rOn/runs, bk.name+"-accepted-conn/s-block-on")
		b.ReportMetric(rOff/runs, bk.name+"-accepted-conn/s-block-off")
		b.ReportMetric(rOn/rOff, bk.name+"-accepted-on/off")
	}
}

// BenchmarkResponsive10000 measures responsive SIP, per backend, with
// 10 000 entries in the SSH set: the TCP connect rate of a whitelisted
// client (accepted traffic: the established accept checks the connmark
// bit, the responsive rules are never reached) with responsive SIP on
// and off, alternating, and a REGISTER flood of 10 000 datagrams from
// one stranger as fast as one socket sends them, counting how many reach
// the server's socket (at most burst + rate * duration should).
func BenchmarkResponsive10000(b *testing.B) {
	lab := fwtest.NewLab(b)
	lab.Echo(b, "tcp", 22)
	var got atomic.Int64
	err := fwtest.Do(lab.Server, func() error {
		pc, err := net.ListenPacket("udp", "[::]:5060")
		if err != nil {
			return err
		}
		b.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 2048)
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil {
					return
				}
				got.Add(1)
			}
		}()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	on := firewall.State{Config: firewall.DefaultConfig()}
	on.Config.LAN = nil
	on.Config.Responsive = firewall.ResponsiveConfig{Enabled: true, PerMinute: 6, Burst: 3}
	for _, p := range benchPrefixes(10000) {
		on.Add(firewall.CodeSSH, p, 0)
	}
	on.Add(firewall.CodeSSH, netip.PrefixFrom(fwtest.ClientV4, 32), 0)
	off := on
	off.Config.Responsive.Enabled = false
	ctx := context.Background()
	do := func(fn func() error) {
		if err := fwtest.Do(lab.Server, fn); err != nil {
			b.Fatal(err)
		}
	}
	const d = 2 * time.Second
	msg := sipMessage("REGISTER", "pbx.example.org")
	for _, bk := range backends {
		fw := bk.new(b, lab)
		var rOn, rOff float64
		for i := 0; i < b.N; i++ {
			for round := 0; round < 2; round++ {
				do(func() error { return fw.Apply(ctx, on) })
				rOn += connectRate(b, lab, fwtest.ClientV4, d)
				do(func() error { return fw.Apply(ctx, off) })
				rOff += connectRate(b, lab, fwtest.ClientV4, d)
			}
		}
		// The flood: a fresh rate table (Remove, then Apply).
		do(func() error { return fw.Remove(ctx) })
		do(func() error { return fw.Apply(ctx, on) })
		got.Store(0)
		var took time.Duration
		err := fwtest.Do(lab.Client, func() error {
			c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(fwtest.OtherV4, 0)),
				net.UDPAddrFromAddrPort(netip.AddrPortFrom(fwtest.ServerV4, 5060)))
			if err != nil {
				return err
			}
			defer c.Close()
			start := time.Now()
			for range 10000 {
				if _, err := c.Write(msg); err != nil {
					return err
				}
			}
			took = time.Since(start)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		reached := got.Load()
		limit := 3 + 6*took.Minutes()
		if float64(reached) > limit+1 {
			b.Errorf("%s: %d of 10000 REGISTERs reached the server in %v, want at most %.1f", bk.name, reached, took, limit)
		}
		do(func() error { return fw.Remove(ctx) })
		runs := float64(2 * b.N)
		b.ReportMetric(rOn/runs, bk.name+"-accepted-conn/s-resp-on")
		b.ReportMetric(rOff/runs, bk.name+"-accepted-conn/s-resp-off")
		b.ReportMetric(rOn/rOff, bk.name+"-accepted-on/off")
		b.ReportMetric(float64(reached), bk.name+"-flood-reached-of-10000")
		b.ReportMetric(took.Seconds()*1000, bk.name+"-flood-ms")
	}
}

// floodSources are n addresses per family outside the lab's subnets
// (198.19.0.0/22, 2001:db8:f::/64), added to the client's veth, with
// routes back on the server side so that nothing filters them as
// martians.
func floodSources(b *testing.B, lab *fwtest.Lab, n int) (v4, v6 []netip.Addr) {
	b.Helper()
	var batch strings.Builder
	for i := range n {
		a4 := netip.AddrFrom4([4]byte{198, 19, byte((i + 1) >> 8), byte(i + 1)})
		a6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x0f, 14: byte((i + 1) >> 8), 15: byte(i + 1)})
		v4, v6 = append(v4, a4), append(v6, a6)
		fmt.Fprintf(&batch, "addr add %s/32 dev veth-c\naddr add %s/128 dev veth-c nodad\n", a4, a6)
	}
	if err := sh(batch.String(), "ip", "-n", lab.Client, "-batch", "-"); err != nil {
		b.Fatal(err)
	}
	for _, r := range []string{"198.19.0.0/22", "2001:db8:f::/64"} {
		if err := sh("", "ip", "-n", lab.Server, "route", "add", r, "dev", "veth-s"); err != nil {
			b.Fatal(err)
		}
	}
	return v4, v6
}

// BenchmarkResponsiveFlood measures, per backend and family, how many
// of a REGISTER flood from many sources at once reach the server's
// socket with responsive SIP on (6 a minute, burst 3): 1 000 sources
// send 10 each, round robin, every source from its own socket (one
// flow). Each source has its own bucket, so at most 1 000 x 3 should
// pass (plus what the rate refills while the flood lasts); the single
// source flood of BenchmarkResponsive10000 is the comparison.
func BenchmarkResponsiveFlood(b *testing.B) {
	const sources, each, burst, perMinute = 1000, 10, 3, 6
	lab := fwtest.NewLab(b)
	v4, v6 := floodSources(b, lab, sources)
	var got atomic.Int64
	err := fwtest.Do(lab.Server, func() error {
		pc, err := net.ListenPacket("udp", "[::]:5060")
		if err != nil {
			return err
		}
		b.Cleanup(func() { pc.Close() })
		// A receive buffer large enough for the whole flood, so that what
		// reaches the socket is counted, not lost to a full buffer.
		rc, err := pc.(*net.UDPConn).SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 64<<20)
		}); err != nil {
			return err
		}
		if serr != nil {
			return serr
		}
		go func() {
			buf := make([]byte, 2048)
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil {
					return
				}
				got.Add(1)
			}
		}()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	st := firewall.State{Config: firewall.DefaultConfig()}
	st.Config.LAN = nil
	st.Config.Responsive = firewall.ResponsiveConfig{Enabled: true, PerMinute: perMinute, Burst: burst}
	st.Add(firewall.CodeSSH, netip.PrefixFrom(fwtest.ClientV4, 32), 0)
	ctx := context.Background()
	do := func(fn func() error) {
		if err := fwtest.Do(lab.Server, fn); err != nil {
			b.Fatal(err)
		}
	}
	msg := sipMessage("REGISTER", "pbx.example.org")
	for _, bk := range backends {
		fw := bk.new(b, lab)
		for _, fam := range []struct {
			name   string
			server netip.Addr
			srcs   []netip.Addr
		}{{"v4", fwtest.ServerV4, v4}, {"v6", fwtest.ServerV6, v6}} {
			var reached int64
			var took time.Duration
			for i := 0; i < b.N; i++ {
				// A fresh rate table (Remove, then Apply).
				do(func() error { return fw.Remove(ctx) })
				do(func() error { return fw.Apply(ctx, st) })
				got.Store(0)
				err := fwtest.Do(lab.Client, func() error {
					conns := make([]*net.UDPConn, len(fam.srcs))
					for j, src := range fam.srcs {
						c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)),
							net.UDPAddrFromAddrPort(netip.AddrPortFrom(fam.server, 5060)))
						if err != nil {
							return err
						}
						defer c.Close()
						conns[j] = c
					}
					start := time.Now()
					for range each {
						for _, c := range conns {
							if _, err := c.Write(msg); err != nil {
								return err
							}
						}
					}
					took = time.Since(start)
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				time.Sleep(500 * time.Millisecond)
				reached = got.Load()
				limit := float64(sources) * (burst + perMinute*took.Minutes())
				if float64(reached) > limit+1 {
					b.Errorf("%s %s: %d of %d REGISTERs from %d sources reached the server in %v, want at most %.0f",
						bk.name, fam.name, reached, sources*each, sources, took, limit)
				}
				if reached < sources*burst*9/10 {
					b.Errorf("%s %s: only %d of %d REGISTERs from %d sources reached the server, want about %d",
						bk.name, fam.name, reached, sources*each, sources, sources*burst)
				}
			}
			do(func() error { return fw.Remove(ctx) })
			b.ReportMetric(float64(reached), fmt.Sprintf("%s-%s-reached-of-%d", bk.name, fam.name, sources*each))
			b.ReportMetric(took.Seconds()*1000, bk.name+"-"+fam.name+"-flood-ms")
		}
	}
}
