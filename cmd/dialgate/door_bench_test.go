package main

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dialgate/dialgate/agi/agitest"
	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/store"
)

// seedAccounts writes n accounts straight into the database before the
// daemon starts (hashing 10 000 passcodes through the CLI would take
// minutes and measure nothing about the door). Each has a number
// (10000+i), a bound caller ID and the same passcode hash; the door
// checks exactly one of them per try whatever n is.
func (e *e2e) seedAccounts(tb testing.TB, n int, passcode string) {
	tb.Helper()
	hash, err := auth.HashPasscode(passcode, auth.DefaultParams)
	if err != nil {
		tb.Fatal(err)
	}
	db, err := store.Open(filepath.Join(e.dir, "db", "dialgate.db"), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx store.Tx) error {
		for i := 0; i < n; i++ {
			a := store.Account{Name: fmt.Sprintf("u%05d", i), Perms: store.NewPermSet(1), Enabled: true,
				Number: strconv.Itoa(10000 + i), CallerIDs: []string{fmt.Sprintf("+4930%07d", i)}, PasscodeHash: hash}
			if err := tx.PutAccount(a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// doorCall is a call over a provider trunk: the caller keys the account
// number (unless number is "") and then the passcode.
func doorCall(number, passcode, callerID, from string) agitest.Call {
	digits := []string{passcode + "#"}
	if number != "" {
		digits = append([]string{number + "#"}, digits...)
	}
	return agitest.Call{
		Script:    "authorize",
		Env:       map[string]string{"callerid": callerID, "channel": "PJSIP/trunk-0000002a"},
		Digits:    digits,
		Variables: map[string]string{"CHANNEL(pjsip,remote_addr)": from + ":5062"},
	}
}

// cpuSeconds reads the user+system CPU time of a process.
func cpuSeconds(tb testing.TB, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// BenchmarkDoorAccounts measures, at the default argon2id cost, the time
// from the caller's last digit to the kernel accepting a packet from the
// granted address with 1, 100 and 10 000 accounts, side by side in one
// run (each in its own namespace lab), and the ratio of the 10 000-account
// p50 to the 1-account one (the door identifies, then checks one hash, so
// it should stay near 1). It also reports the daemon's CPU time per wrong
// guess at 10 000 accounts against one argon2id verification measured in
// the same process.
func BenchmarkDoorAccounts(b *testing.B) {
	calls := benchCalls() * b.N
	p50 := map[int]time.Duration{}
	for _, n := range []int{1, 100, 10000} {
		e := newE2E(b)
		e.appendConfig("[door]\nrate_per_minute = 1000000\nidentity_rate_per_minute = 1000000\nmax_checks_per_minute = 1000000\nmax_grants = 100\nmax_failures = 100\n")
		anyIP(b, e.lab)
		e.lab.Echo(b, "udp", 5060)
		e.ok("init")
		e.seedAccounts(b, n, "48151623")
		e.startServe()
		number := strconv.Itoa(10000 + n - 1) // the last account
		lat, _ := doorLatencies(b, e, calls, 2, func(i int, src netip.Addr) agitest.Call {
			return doorCall(number, "48151623", fmt.Sprintf("+1555%07d", i), src.String())
		})
		p50[n], _ = percentiles(b, fmt.Sprintf("accounts-%d", n), lat)
		if n == 10000 {
			// CPU per wrong guess: each call keys one wrong passcode.
			const wrong = 50
			before := cpuSeconds(b, e.serve.Process.Pid)
			for i := 0; i < wrong; i++ {
				e.dial(doorCall(strconv.Itoa(10000+i), "11110000", fmt.Sprintf("+1666%07d", i), "203.0.113.9"))
			}
			perGuess := (cpuSeconds(b, e.serve.Process.Pid) - before) / wrong
			hash, _ := auth.HashPasscode("48151623", auth.DefaultParams)
			t0 := time.Now()
			for i := 0; i < 20; i++ {
				auth.VerifyPasscode("11110000", hash)
			}
			one := time.Since(t0).Seconds() / 20
			b.ReportMetric(perGuess*1000, "cpu-ms/wrong-guess-10000")
			b.ReportMetric(one*1000, "argon2-verify-wall-ms")
		}
		e.stop()
	}
	b.ReportMetric(float64(p50[10000])/float64(p50[1]), "p50-10000/1")
	b.ReportMetric(float64(p50[100])/float64(p50[1]), "p50-100/1")
}

// BenchmarkDoorFlood places wrong calls from random caller IDs at 1 000 a
// minute and, meanwhile, one call a second from a bound caller ID with the
// right passcode, for DIALGATE_BENCH_FLOOD (default 30s), and reports the
// share of bound callers granted (goal: >= 99%) with the default rate
// limits.
func BenchmarkDoorFlood(b *testing.B) {
	dur := 30 * time.Second
	if d, err := time.ParseDuration(os.Getenv("DIALGATE_BENCH_FLOOD")); err == nil && d > 0 {
		dur = d
	}
	e := newE2E(b)
	e.appendConfig("[door]\nmax_grants = 100\n")
	e.ok("init")
	const bound = 20
	e.seedAccounts(b, 1000, "48151623")
	e.startServe()
	stop := time.Now().Add(dur)
	var wg sync.WaitGroup
	var flood atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Minute / 1000)
		defer tick.Stop()
		var inflight sync.WaitGroup
		for time.Now().Before(stop) {
			<-tick.C
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				n := rand.IntN(1000)
				e.dial(doorCall(strconv.Itoa(10000+n), fmt.Sprintf("%08d", rand.IntN(1e8)), fmt.Sprintf("+1666%07d", rand.IntN(1e7)), "203.0.113.9"))
				flood.Add(1)
			}()
		}
		inflight.Wait()
	}()
	granted, total := 0, 0
	for i := 0; time.Now().Before(stop); i++ {
		t0 := time.Now()
		k := i % bound
		tr, err := e.dial(doorCall("", "48151623", fmt.Sprintf("+4930%07d", k), benchAddr(i).String()))
		total++
		if err == nil && tr.Variables["DIALGATE_RESULT"] == "granted" {
			granted++
		} else {
			b.Logf("bound call %d: %v %v", i, err, tr.Variables)
		}
		time.Sleep(time.Second - time.Since(t0))
	}
	wg.Wait()
	b.ReportMetric(float64(flood.Load())/dur.Minutes(), "wrong-calls/min")
	b.ReportMetric(100*float64(granted)/float64(total), "bound-granted-%")
	if granted*100 < total*99 {
		b.Errorf("%d of %d bound callers granted during the flood", granted, total)
	}
}
