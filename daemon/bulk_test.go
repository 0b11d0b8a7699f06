package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/firewall/fwfake"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

func bulkImport(n, from int) localapi.ImportRequest {
	ia := localapi.ImportAccount{Name: "bulk", Perms: []int{8}}
	for i := from; i < from+n; i++ {
		ia.Entries = append(ia.Entries, localapi.ImportEntry{Kind: store.KindIP, Value: fmt.Sprintf("11.%d.%d.%d", i>>16&255, i>>8&255, i&255)})
	}
	return localapi.ImportRequest{Source: "test", Accounts: []localapi.ImportAccount{ia}}
}

// BenchmarkImportDaemon times the daemon's side of importing 10 000
// entries (validation, store, kernel), per backend.
func BenchmarkImportDaemon(b *testing.B) {
	for _, kind := range backendKinds {
		b.Run(kind, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				wt := newWDTest(b, kind)
				b.StartTimer()
				res, err := wt.d.Import(context.Background(), bulkImport(10000, 0))
				if err != nil || len(res.Added) != 10000 {
					b.Fatalf("import: %d added, %v", len(res.Added), err)
				}
			}
		})
	}
}

// BenchmarkAllowDeny times the daemon's side of one `allow` and one
// `deny` (validation, store transaction with fsync, kernel sync, audit)
// with 10 and with 10 000 entries already whitelisted, per backend: the
// ratio says whether a change grows with the whitelist.
func BenchmarkAllowDeny(b *testing.B) {
	for _, kind := range backendKinds {
		per := map[int]float64{}
		for _, n := range []int{10, 10000} {
			b.Run(fmt.Sprintf("%s/%d", kind, n), func(b *testing.B) {
				wt := newWDTest(b, kind)
				ctx := context.Background()
				if _, err := wt.d.Import(ctx, bulkImport(n, 0)); err != nil {
					b.Fatal(err)
				}
				// deny as from an SSH session whose client is whitelisted:
				// the lockout guard runs too.
				g := Guard{SSH: netip.MustParseAddrPort("11.0.0.5:22")}
				for b.Loop() {
					if _, err := wt.d.AddEntry(ctx, localapi.AddEntryRequest{Account: "bulk", Kind: store.KindIP, Value: "192.0.2.77"}); err != nil {
						b.Fatal(err)
					}
					if _, err := wt.d.DeleteEntry(ctx, "192.0.2.77", g); err != nil {
						b.Fatal(err)
					}
				}
				per[n] = float64(b.Elapsed().Microseconds()) / 1000 / float64(b.N)
				b.ReportMetric(per[n]/2, "ms/change")
				if n == 10000 && per[10] > 0 {
					b.ReportMetric(per[10000]/per[10], "x-of-10")
				}
			})
		}
	}
}

// Logic tests on the fake backend: what allow --file and entry set ask
// of the daemon.
func TestImportFromFile(t *testing.T) {
	ctx := context.Background()
	wt := newWDTest(t, "fake")
	fw := wt.fw.(*fwfake.Backend)
	// An entry line for an account neither existing nor defined: refused,
	// nothing added.
	req := localapi.ImportRequest{Source: "file", Accounts: []localapi.ImportAccount{
		{Name: "alice", MustExist: true, Entries: []localapi.ImportEntry{{Kind: store.KindIP, Value: "192.0.2.10"}}},
		{Name: "ghost", MustExist: true, Entries: []localapi.ImportEntry{{Kind: store.KindIP, Value: "192.0.2.11"}}},
	}}
	if _, err := wt.d.Import(ctx, req); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), `account "ghost"`) {
		t.Fatalf("import with an unknown account: %v", err)
	}
	if fw.Admits(netip.MustParseAddr("192.0.2.10"), "tcp", 22) {
		t.Fatal("a refused import reached the kernel")
	}
	// Force and refresh go through; perms wider than the account's need
	// force; refresh is for names only.
	req = localapi.ImportRequest{Source: "file", Accounts: []localapi.ImportAccount{{Name: "alice", MustExist: true, Entries: []localapi.ImportEntry{
		{Kind: store.KindCIDR, Value: "10.0.0.0/7", Force: true},
		{Kind: store.KindIP, Value: "192.0.2.10", Perms: []int{1}, Force: true},
		{Kind: store.KindFQDN, Value: "h.dyndns.example", RefreshSeconds: 90},
	}}}}
	res, err := wt.d.Import(ctx, req)
	if err != nil || len(res.Added) != 3 {
		t.Fatalf("import: %+v %v", res, err)
	}
	if !fw.Admits(netip.MustParseAddr("192.0.2.10"), "udp", 5060) {
		t.Error("forced entry perms not in the kernel")
	}
	for _, ie := range []localapi.ImportEntry{
		{Kind: store.KindIP, Value: "192.0.2.12", Perms: []int{1}},
		{Kind: store.KindCIDR, Value: "10.0.0.0/7"},
		{Kind: store.KindIP, Value: "192.0.2.13", RefreshSeconds: 60},
	} {
		_, err := wt.d.Import(ctx, localapi.ImportRequest{Source: "file", Accounts: []localapi.ImportAccount{{Name: "alice", MustExist: true, Entries: []localapi.ImportEntry{ie}}}})
		if err == nil {
			t.Errorf("%+v accepted", ie)
		}
	}
}

func TestUpdateEntry(t *testing.T) {
	ctx := context.Background()
	wt := newWDTest(t, "fake")
	fw := wt.fw.(*fwfake.Backend)
	if _, err := wt.d.UpdateAccount(ctx, "alice", localapi.UpdateAccountRequest{Perms: ptr("1,8")}, Guard{}); err != nil {
		t.Fatal(err)
	}
	e, err := wt.d.AddEntry(ctx, localapi.AddEntryRequest{Account: "alice", Kind: store.KindIP, Value: "192.0.2.20"})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("192.0.2.20")
	if _, err := wt.d.UpdateEntry(ctx, e.ID, localapi.UpdateEntryRequest{Perms: ptr("1")}, Guard{}); err != nil {
		t.Fatal(err)
	}
	if fw.Admits(ip, "tcp", 22) || !fw.Admits(ip, "udp", 5060) {
		t.Error("kernel did not follow the narrower perms")
	}
	if _, err := wt.d.UpdateEntry(ctx, e.ID, localapi.UpdateEntryRequest{Perms: ptr("2")}, Guard{}); !errors.Is(err, auth.ErrNeedsForce) {
		t.Errorf("perms wider than the account's: %v", err)
	}
	// From an SSH session at 192.0.2.20: narrowing its own entry away
	// from SSH is refused by the guard.
	if _, err := wt.d.UpdateEntry(ctx, e.ID, localapi.UpdateEntryRequest{Perms: ptr("")}, Guard{}); err != nil {
		t.Fatal(err)
	}
	g := Guard{SSH: netip.AddrPortFrom(ip, 22)}
	if _, err := wt.d.UpdateEntry(ctx, e.ID, localapi.UpdateEntryRequest{Perms: ptr("1")}, g); !errors.Is(err, firewall.ErrLockout) {
		t.Errorf("narrowing the SSH session's entry: %v", err)
	}
	if !fw.Admits(ip, "tcp", 22) {
		t.Error("refused change reached the kernel")
	}
	got, err := wt.d.UpdateEntry(ctx, e.ID, localapi.UpdateEntryRequest{Comment: ptr("hotel")}, g)
	if err != nil || got.ID != e.ID || got.Comment != "hotel" {
		t.Errorf("comment change: %+v %v", got, err)
	}
	recs, _ := wt.d.Audit(localapi.AuditFilter{Action: "entry.set"})
	if len(recs) != 5 {
		t.Errorf("audit records for entry.set: %d, want 5 (3 ok, 2 refused)", len(recs))
	}
}

func ptr[T any](v T) *T { return &v }
