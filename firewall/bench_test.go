package firewall_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
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
//   - grant: one AddMember (the phone-grant path) vs one `ipset add`.
func BenchmarkApply1000(b *testing.B) { benchApply(b, 1000) }

// BenchmarkApply10000 is the same with 10 000 entries (one iptables -A
// per entry takes about 20 s here: run it with -benchtime 1x).
func BenchmarkApply10000(b *testing.B) { benchApply(b, 10000) }

func benchApply(b *testing.B, n int) {
	lab := fwtest.NewLab(b)
	prefixes := benchPrefixes(n)
	cfg := firewall.DefaultConfig()
	st := firewall.State{Config: cfg}
	for _, p := range prefixes {
		st.Add(firewall.CodeSIPUDP, p, 0)
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
	var tDialgate, tLoad, tRestore, tAppend, tIptRestore, tGrant, tIpsetAdd time.Duration
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

			grant := firewall.Member{Prefix: netip.MustParsePrefix("203.0.113.77/32"), Timeout: time.Hour}
			start = time.Now()
			if err := fw.AddMember(ctx, firewall.CodeSIPUDP, grant); err != nil {
				return err
			}
			tGrant += time.Since(start)
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
			return fw.Remove(ctx)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(per(tDialgate), "dialgate-ms")
	b.ReportMetric(per(tLoad), "dialgate-entries-only-ms")
	b.ReportMetric(float64(tLoad)/float64(tRestore), "dialgate-entries-only/ipset-restore")
	b.ReportMetric(per(tRestore), "ipset-restore-ms")
	b.ReportMetric(per(tAppend), "iptables-A-ms")
	b.ReportMetric(per(tIptRestore), "iptables-restore-ms")
	b.ReportMetric(float64(tDialgate)/float64(tIptRestore), "dialgate/iptables-restore")
	b.ReportMetric(float64(tDialgate)/float64(tRestore), "dialgate/ipset-restore")
	b.ReportMetric(float64(tAppend)/float64(tDialgate), "iptables-A/dialgate")
	b.ReportMetric(float64(tGrant.Microseconds())/float64(b.N), "grant-us")
	b.ReportMetric(float64(tIpsetAdd.Microseconds())/float64(b.N), "ipset-add-exec-us")
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
// at all, in one run.
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
	if err := fwtest.Do(lab.Server, func() (err error) {
		fw, err = firewall.NewIPTables(quietLog)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer fw.Close()
	const d = 3 * time.Second
	var with, chain, without float64
	for i := 0; i < b.N; i++ {
		if err := fwtest.Do(lab.Server, func() error { return fw.Remove(ctx) }); err != nil {
			b.Fatal(err)
		}
		without += connectRate(b, lab, fwtest.ClientV4, d)
		if err := fwtest.Do(lab.Server, func() error { return fw.Apply(ctx, empty) }); err != nil {
			b.Fatal(err)
		}
		chain += connectRate(b, lab, fwtest.ClientV4, d)
		if err := fwtest.Do(lab.Server, func() error { return fw.Apply(ctx, st) }); err != nil {
			b.Fatal(err)
		}
		with += connectRate(b, lab, fwtest.ClientV4, d)
	}
	b.ReportMetric(with/float64(b.N), "conn/s-10000-entries")
	b.ReportMetric(chain/float64(b.N), "conn/s-empty-chain")
	b.ReportMetric(without/float64(b.N), "conn/s-no-firewall")
	b.ReportMetric(100*(1-with/chain), "slowdown-vs-empty-chain-%")
}
