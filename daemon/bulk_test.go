package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/dialgate/dialgate/store"
)

func bulkImport(n, from int) ImportRequest {
	ia := ImportAccount{Name: "bulk", Perms: []int{8}}
	for i := from; i < from+n; i++ {
		ia.Entries = append(ia.Entries, ImportEntry{Kind: store.KindIP, Value: fmt.Sprintf("11.%d.%d.%d", i>>16&255, i>>8&255, i&255)})
	}
	return ImportRequest{Source: "test", Accounts: []ImportAccount{ia}}
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
					if _, err := wt.d.AddEntry(ctx, AddEntryRequest{Account: "bulk", Kind: store.KindIP, Value: "192.0.2.77"}); err != nil {
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
