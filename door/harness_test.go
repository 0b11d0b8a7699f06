package door

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dialgate/dialgate/agi"
	"github.com/dialgate/dialgate/agi/agitest"
	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/firewall/fwfake"
	"github.com/dialgate/dialgate/store"
)

// testParams keep the tests fast; the door's logic does not depend on
// the cost.
var testParams = auth.Params{Memory: 1024, Time: 1, Threads: 1}

var (
	hashMu    sync.Mutex
	hashCache = map[string]string{}
)

func hashOf(t testing.TB, code string) string {
	t.Helper()
	hashMu.Lock()
	defer hashMu.Unlock()
	if h, ok := hashCache[code]; ok {
		return h
	}
	h, err := auth.HashPasscode(code, testParams)
	if err != nil {
		t.Fatal(err)
	}
	hashCache[code] = h
	return h
}

// harness is a door on a real store and a real FastAGI server on
// loopback, with a recording GrantFunc instead of the daemon.
type harness struct {
	t      testing.TB
	db     *store.DB
	door   *Door
	addr   string
	clock  *fwfake.Clock
	checks atomic.Int64 // argon2id checks made

	mu       sync.Mutex
	cfg      Config
	grants   []GrantRequest
	audits   []store.AuditRecord
	grantErr func(GrantRequest) error
	// unavailable is what Deps.Available answers (nil: available).
	unavailable error
	ended       map[string]int // CallEnded by result
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "dialgate.db"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := &harness{t: t, db: db, clock: fwfake.NewClock(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)), cfg: DefaultConfig(), ended: map[string]int{}}
	h.cfg.DigitTimeout = time.Second
	d, err := New(Deps{
		Store: db,
		Grant: h.grant,
		Config: func() Config {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.cfg
		},
		Audit: func(r store.AuditRecord) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.audits = append(h.audits, r)
		},
		Available: func() error {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.unavailable
		},
		Now:     h.clock.Now,
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics: h,
		Hash:    testParams,
	})
	if err != nil {
		t.Fatal(err)
	}
	verify := d.verify
	d.verify = func(code, phc string) (bool, error) {
		h.checks.Add(1)
		return verify(code, phc)
	}
	h.door = d
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &agi.Server{Handler: d, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
		<-done
	})
	h.addr = ln.Addr().String()
	return h
}

func (h *harness) CallStarted() {}
func (h *harness) CallEnded(result string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ended[result]++
}

func (h *harness) setConfig(fn func(*Config)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fn(&h.cfg)
}

func (h *harness) grant(_ context.Context, req GrantRequest) (store.Grant, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.grantErr != nil {
		if err := h.grantErr(req); err != nil {
			return store.Grant{}, err
		}
	}
	h.grants = append(h.grants, req)
	now := h.clock.Now()
	return store.Grant{ID: fmt.Sprintf("g%d", len(h.grants)), Account: req.Account, IP: req.IP.String(), Created: now, Expires: now.Add(8 * time.Hour)}, nil
}

func (h *harness) granted() []GrantRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]GrantRequest(nil), h.grants...)
}

func (h *harness) auditText() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, r := range h.audits {
		fmt.Fprintf(&b, "%s %s %s %s %s\n", r.Action, r.Account, r.Subject, r.Result, r.Detail)
	}
	return b.String()
}

// account stores an enabled account with a passcode and a number.
func (h *harness) account(name, number, passcode string, mod ...func(*store.Account)) {
	h.t.Helper()
	a := store.Account{Name: name, Perms: store.NewPermSet(1, 2), Enabled: true, Number: number}
	if passcode != "" {
		a.PasscodeHash = hashOf(h.t, passcode)
	}
	for _, m := range mod {
		m(&a)
	}
	if err := h.db.Update(func(tx store.Tx) error { return tx.PutAccount(a) }); err != nil {
		h.t.Fatal(err)
	}
}

// sip is a call from a SIP phone at from, keying digits in order.
func sip(channel, callerID, from string, digits ...string) agitest.Call {
	return agitest.Call{
		Script: "authorize",
		Env:    map[string]string{"channel": channel, "callerid": callerID},
		Digits: digits,
		Variables: map[string]string{
			"CHANNEL(recvip)": from, "CHANNEL(peerip)": from, "CHANNEL(pjsip,remote_addr)": from + ":5062",
		},
		WaitDigits: []rune{'#'},
	}
}

// call places a call and returns its transcript; the result and reason
// are in its Variables.
func (h *harness) call(c agitest.Call) agitest.Transcript {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr, err := agitest.Dial(ctx, h.addr, c)
	if err != nil && !errors.Is(err, io.EOF) {
		// Errorf, not Fatalf: parallel calls run off the test goroutine.
		h.t.Errorf("call: %v\n%s", err, strings.Join(tr.Commands, "\n"))
	}
	return tr
}

// parallel places n calls at once and returns their outcomes.
func (h *harness) parallel(n int, call func(i int) agitest.Call) []string {
	out := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { out[i] = outcome(h.call(call(i))) })
	}
	wg.Wait()
	return out
}

func outcome(tr agitest.Transcript) string {
	return tr.Variables["DIALGATE_RESULT"] + "/" + tr.Variables["DIALGATE_REASON"]
}

// lock stores a lock on key until the harness clock plus d.
func (h *harness) lock(key string, d time.Duration) {
	h.t.Helper()
	err := h.db.Update(func(tx store.Tx) error {
		return tx.PutLockout(store.Lockout{Key: key, LockedUntil: h.clock.Now().Add(d)})
	})
	if err != nil {
		h.t.Fatal(err)
	}
}
