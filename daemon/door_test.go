package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/agi"
	"github.com/dialgate/dialgate/agi/agitest"
	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/door"
	"github.com/dialgate/dialgate/firewall/fwfake"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// doorTest is a daemon on the in-memory kernel with its door served over
// loopback FastAGI: the door and the change engine, in process.
type doorTest struct {
	t    *testing.T
	d    *Daemon
	fw   *fwfake.Backend
	addr string
}

func newDoorTest(t *testing.T) *doorTest {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DB = filepath.Join(t.TempDir(), "dialgate.db")
	createDB(t, cfg.DB)
	cfg.Door.HashMemoryKiB, cfg.Door.HashTime, cfg.Door.HashThreads = 1024, 1, 1
	fw := fwfake.New()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	d, err := New(Options{Config: cfg, Backend: fw, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.applyStored(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &agi.Server{Handler: d.door, Logger: quiet}
	ctx, cancel := context.WithCancel(context.Background())
	go srv.Serve(ctx, ln)
	t.Cleanup(func() {
		cancel()
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		srv.Shutdown(sctx)
	})
	return &doorTest{t: t, d: d, fw: fw, addr: ln.Addr().String()}
}

func (dt *doorTest) account(name, perms, passcode string) string {
	dt.t.Helper()
	ctx := context.Background()
	if _, err := dt.d.AddAccount(ctx, localapi.AddAccountRequest{Name: name, Perms: perms}); err != nil {
		dt.t.Fatal(err)
	}
	res, err := dt.d.SetPasscode(ctx, name, passcode)
	if err != nil {
		dt.t.Fatal(err)
	}
	return res.Number
}

func (dt *doorTest) call(number, passcode, from string) string {
	dt.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := agitest.Dial(ctx, dt.addr, agitest.Call{
		Script: "authorize", Env: map[string]string{"channel": "SIP/trunk-00000012", "callerid": "+15550001"},
		Digits:    []string{number + "#", passcode + "#"},
		Variables: map[string]string{"CHANNEL(recvip)": from},
	})
	if err != nil {
		dt.t.Fatalf("call: %v", err)
	}
	return tr.Variables["DIALGATE_RESULT"] + "/" + tr.Variables["DIALGATE_REASON"]
}

func TestDoorGrantReachesTheKernel(t *testing.T) {
	dt := newDoorTest(t)
	num := dt.account("alice", "1,2", "48151623")
	if len(num) != 6 {
		t.Errorf("account number %q, want six digits", num)
	}
	from := netip.MustParseAddr("203.0.113.7")
	if dt.fw.Admits(from, "udp", 5060) {
		t.Fatal("admitted before the call")
	}
	if got := dt.call(num, "48151623", from.String()); got != "granted/granted" {
		t.Fatalf("call: %s", got)
	}
	if !dt.fw.Admits(from, "udp", 5060) || !dt.fw.Admits(from, "tcp", 5061) {
		t.Error("SIP not admitted after the grant")
	}
	if dt.fw.Admits(from, "tcp", 22) {
		t.Error("SSH admitted: the grant is wider than the account")
	}
	gs, _ := dt.d.Grants()
	if len(gs) != 1 || gs[0].Source != "phone:channel" {
		t.Errorf("grants %+v", gs)
	}
}

// A kernel that refuses the grant leaves nothing stored and tells the
// caller it failed.
func TestDoorGrantKernelFailure(t *testing.T) {
	dt := newDoorTest(t)
	num := dt.account("alice", "1,2", "48151623")
	dt.fw.FailNext(fwfake.MethodSyncMembers, errors.New("ipset: kernel says no"))
	if got := dt.call(num, "48151623", "203.0.113.7"); got != "error/grant-failed" {
		t.Fatalf("call: %s", got)
	}
	if gs, _ := dt.d.Grants(); len(gs) != 0 {
		t.Errorf("grant stored although the kernel refused it: %+v", gs)
	}
	if dt.fw.Admits(netip.MustParseAddr("203.0.113.7"), "udp", 5060) {
		t.Error("admitted")
	}
}

func TestCheckGrantable(t *testing.T) {
	dt := newDoorTest(t)
	old := ownAddrs
	ownAddrs = func() []netip.Addr {
		return []netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8::1")}
	}
	t.Cleanup(func() { ownAddrs = old })
	cases := []struct {
		addr string
		want error // nil: grantable
	}{
		{"203.0.113.7", nil},
		{"2001:db8::7", nil},
		{"192.168.1.5", door.ErrAdmitted},
		{"fd00::5", door.ErrAdmitted},
		{"198.51.100.1", auth.ErrNotGrantable},       // this server
		{"2001:db8::1", auth.ErrNotGrantable},        // this server
		{"64:ff9b::c633:6401", auth.ErrNotGrantable}, // NAT64 of this server
		{"64:ff9b::c0a8:105", auth.ErrNotGrantable},  // NAT64 of a LAN address
		{"2002:c0a8:105::1", auth.ErrNotGrantable},   // 6to4 of a LAN address
		{"2002:7f00:1::1", auth.ErrNotGrantable},     // 6to4 of loopback
		{"240.1.2.3", auth.ErrNotGrantable},
		{"0.0.0.7", auth.ErrNotGrantable},
	}
	for _, c := range cases {
		_, err := dt.d.checkGrantable(netip.MustParseAddr(c.addr))
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.addr, err, c.want)
		}
	}
	// Through the door, a LAN phone hears it is in already.
	num := dt.account("alice", "1,2", "48151623")
	if got := dt.call(num, "48151623", "192.168.1.5"); got != "lan/already-admitted" {
		t.Errorf("LAN phone: %s", got)
	}
	if got := dt.call(num, "48151623", "198.51.100.1"); got != "denied/not-grantable" {
		t.Errorf("own address: %s", got)
	}
}

func TestAccountNumbers(t *testing.T) {
	dt := newDoorTest(t)
	ctx := context.Background()
	// Numbers are random six-digit ones; a draw that is taken is drawn again.
	draws := []int{101000, 102000, 101000, 103000, 104000}
	orig := randomNumber
	randomNumber = func() int { n := draws[0]; draws = draws[1:]; return n }
	t.Cleanup(func() { randomNumber = orig })
	if n := dt.account("alice", "1", "11112222"); n != "101000" {
		t.Errorf("alice: %q", n)
	}
	if _, err := dt.d.AddAccount(ctx, localapi.AddAccountRequest{Name: "bob", Perms: "1"}); err != nil {
		t.Fatal(err)
	}
	num := "102000"
	if _, err := dt.d.UpdateAccount(ctx, "bob", localapi.UpdateAccountRequest{Number: &num}, Guard{}); err != nil {
		t.Fatal(err)
	}
	if n := dt.account("carol", "1", "33334444"); n != "103000" {
		t.Errorf("carol: %q, want 103000 (102000 is bob's, 101000 alice's)", n)
	}
	// A passcode change keeps the number.
	if res, err := dt.d.SetPasscode(ctx, "alice", "55556666"); err != nil || res.Number != "101000" {
		t.Errorf("passcode change: %v %v", res, err)
	}
	taken := "101000"
	if _, err := dt.d.UpdateAccount(ctx, "bob", localapi.UpdateAccountRequest{Number: &taken}, Guard{}); !errors.Is(err, store.ErrExists) {
		t.Errorf("taken number: %v", err)
	}
	// Taking another's caller ID is refused, naming it.
	ids := []string{"+1 555 000 1111"}
	if _, err := dt.d.UpdateAccount(ctx, "alice", localapi.UpdateAccountRequest{CallerIDs: &ids}, Guard{}); err != nil {
		t.Fatal(err)
	}
	ids = []string{"+15550001111"}
	if _, err := dt.d.UpdateAccount(ctx, "bob", localapi.UpdateAccountRequest{CallerIDs: &ids}, Guard{}); !errors.Is(err, store.ErrExists) {
		t.Errorf("taken caller ID: %v", err)
	}
	for _, bad := range [][]string{{"unknown"}, {"555", "555"}, {"12a"}} {
		if _, err := dt.d.UpdateAccount(ctx, "bob", localapi.UpdateAccountRequest{CallerIDs: &bad}, Guard{}); !errors.Is(err, auth.ErrInvalid) {
			t.Errorf("caller IDs %q: %v", bad, err)
		}
	}
	bad := "012"
	if _, err := dt.d.UpdateAccount(ctx, "bob", localapi.UpdateAccountRequest{Number: &bad}, Guard{}); !errors.Is(err, auth.ErrInvalid) {
		t.Errorf("number 012: %v", err)
	}
	// An account from before numbers (a passcode, no number) gets one at
	// start, audited.
	err := dt.d.db.Update(func(tx store.Tx) error {
		return tx.PutAccount(store.Account{Name: "old", Perms: store.NewPermSet(1), Enabled: true, PasscodeHash: "$argon2id$x"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := dt.d.numberMissingAccounts(); err != nil {
		t.Fatal(err)
	}
	var old store.Account
	dt.d.db.View(func(tx store.Tx) (err error) { old, err = tx.Account("old"); return err })
	if old.Number != "104000" {
		t.Errorf("old account got number %q, want 104000", old.Number)
	}
	rs, _ := dt.d.Audit(localapi.AuditFilter{Action: "account.number"})
	if len(rs) != 1 || rs[0].Account != "old" {
		t.Errorf("audit: %+v", rs)
	}
}

func TestLockoutsListAndClear(t *testing.T) {
	dt := newDoorTest(t)
	num := dt.account("alice", "1", "48151623")
	for range 5 {
		dt.call(num, "99990000", "203.0.113.7")
	}
	ls, err := dt.d.Lockouts()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, l := range ls {
		if l.Locked {
			keys = append(keys, l.Key)
		}
	}
	if strings.Join(keys, " ") != "cid:+15550001 num:"+num {
		t.Errorf("locked keys %q", keys)
	}
	if got := dt.call(num, "48151623", "203.0.113.7"); got != "locked/locked" {
		t.Fatalf("after 5 failures: %s", got)
	}
	if _, err := dt.d.ClearLockouts(context.Background(), "nobody", false); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("clear unknown: %v", err)
	}
	cleared, err := dt.d.ClearLockouts(context.Background(), "alice", false)
	if err != nil || len(cleared) != 1 || cleared[0] != "num:"+num {
		t.Fatalf("clear alice: %v %v", cleared, err)
	}
	if got := dt.call(num, "48151623", "203.0.113.7"); got != "locked/locked" {
		t.Errorf("caller ID still locked: %s", got)
	}
	if _, err := dt.d.ClearLockouts(context.Background(), "", true); err != nil {
		t.Fatal(err)
	}
	if got := dt.call(num, "48151623", "203.0.113.7"); got != "granted/granted" {
		t.Errorf("after clear --all: %s", got)
	}
	// Every refusal and the clears are in the audit, filterable.
	rs, _ := dt.d.Audit(localapi.AuditFilter{Account: "alice", Action: "door", Result: "locked"})
	if len(rs) < 2 {
		t.Errorf("locked door records for alice: %d", len(rs))
	}
	rs, _ = dt.d.Audit(localapi.AuditFilter{Action: "lockout."})
	if len(rs) != 3 || rs[0].Result != "refused" {
		t.Errorf("lockout.* records (one refused, two clears): %+v", rs)
	}
	rs, _ = dt.d.Audit(localapi.AuditFilter{Account: "alice", Limit: 1})
	if len(rs) != 1 {
		t.Errorf("limit 1: %d records", len(rs))
	}
}
