package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// bulkAddr is the i-th address of a bulk whitelist: public unicast
// addresses (11.0.0.0/8) that no test sends from.
func bulkAddr(i int) string {
	return fmt.Sprintf("11.%d.%d.%d", i>>16&255, i>>8&255, i&255)
}

// writeTM3 writes a Travelin' Man 3 firewall file that admits n
// addresses to SSH, one rule each.
func writeTM3(t testing.TB, dir string, n, from int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("*filter\n:INPUT DROP [0:0]\n")
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, "-A INPUT -p tcp -m tcp -s %s --dport 22 -j ACCEPT\n", bulkAddr(i))
	}
	b.WriteString("COMMIT\n")
	path := filepath.Join(dir, fmt.Sprintf("tm3-%d-%d", from, n))
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// BenchmarkImport10000 imports 10 000 Travelin' Man 3 entries end to end
// (the CLI parses, the daemon validates, stores and loads the kernel sets)
// into a running daemon, beside `ipset restore` of the same 10 000
// members into one fresh set in the same namespace. Then it times one
// `allow` and one `deny` with 10 000 entries in place, as the CLI sees
// them (wall time of the command; the daemon's share alone is
// daemon.BenchmarkAllowDeny).
func BenchmarkImport10000(b *testing.B) {
	const n = 10000
	e := newE2E(b)
	e.ok("init")
	e.startServe()
	file := writeTM3(b, e.dir, n, 0)

	start := time.Now()
	out := e.ok("import", "tm3", file)
	imp := time.Since(start)
	if !strings.Contains(out, fmt.Sprintf("%d entries added", n)) {
		b.Fatalf("import:\n%.2000s", out)
	}
	var restore strings.Builder
	restore.WriteString("create bench-restore hash:net family inet timeout 0 maxelem 131072\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&restore, "add bench-restore %s/32\n", bulkAddr(i))
	}
	cmd := exec.Command("ip", "netns", "exec", e.lab.Server, "ipset", "restore")
	cmd.Stdin = strings.NewReader(restore.String())
	start = time.Now()
	if o, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("ipset restore: %v\n%s", err, o)
	}
	ipsetTime := time.Since(start)
	b.ReportMetric(float64(imp.Microseconds())/1000, "import-ms")
	b.ReportMetric(float64(ipsetTime.Microseconds())/1000, "ipset-restore-ms")
	b.ReportMetric(float64(imp)/float64(ipsetTime), "x-ipset-restore")
	b.Logf("import tm3 of %d entries, CLI to kernel: %v; ipset restore of the same members: %v (%.1fx)", n, imp, ipsetTime, float64(imp)/float64(ipsetTime))

	// One allow and one deny on top of 10 000 entries: the command's wall
	// time (process start, LocalAPI, daemon), beside `status --check`'s.
	var allow, deny, noop time.Duration
	const rounds = 20
	for i := 0; i < rounds; i++ {
		ip := bulkAddr(n + i)
		start = time.Now()
		e.ok("allow", "ip", "tm3-import", ip)
		allow += time.Since(start)
		start = time.Now()
		e.ok("deny", ip)
		deny += time.Since(start)
		start = time.Now()
		e.ok("status", "--check")
		noop += time.Since(start)
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / rounds }
	b.ReportMetric(per(allow), "allow-ms")
	b.ReportMetric(per(deny), "deny-ms")
	b.ReportMetric(per(noop), "status-check-ms")
	b.Logf("with %d entries: allow %.1f ms, deny %.1f ms, status --check %.1f ms (CLI wall time, mean of %d)", n, per(allow), per(deny), per(noop), rounds)
}
