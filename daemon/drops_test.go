package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/firewall/fwfake"
	"github.com/dialgate/dialgate/localapi"
)

func newDropsDaemon(t *testing.T) (*Daemon, *fwfake.Backend) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DB = filepath.Join(t.TempDir(), "dialgate.db")
	createDB(t, cfg.DB)
	fw := fwfake.New()
	d, err := New(Options{Config: cfg, Backend: fw, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.applyStored(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	return d, fw
}

// TestDropsAPI: the daemon names each drop's service from its
// configuration, filters by age and service, sorts most packets first,
// cuts to the limit after totalling, and reports the totals in status
// and as metrics per service.
func TestDropsAPI(t *testing.T) {
	d, fw := newDropsDaemon(t)
	now := time.Now()
	a, b := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8::66")
	fw.SetDrops([]firewall.Drop{
		{Addr: a, Proto: "tcp", Port: 22, Packets: 3, LastSeen: now.Add(-time.Minute)},
		{Addr: a, Proto: "udp", Port: 5062, Packets: 40, LastSeen: now.Add(-50 * time.Minute)},
		{Addr: b, Proto: "udp", Port: 5060, Packets: 7, LastSeen: now.Add(-2 * time.Minute)},
		{Addr: b, Proto: "tcp", Port: 3306, Packets: 1, LastSeen: now},
		{Addr: b, Proto: "icmp", Packets: 2, LastSeen: now},
	})
	ctx := context.Background()
	info, err := d.Drops(ctx, firewall.DropFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range info.Drops {
		got = append(got, x.Addr.String()+" "+x.Service)
	}
	want := []string{"198.51.100.7 sip-udp", "2001:db8::66 sip-udp", "198.51.100.7 ssh", "2001:db8::66 icmp", "2001:db8::66 tcp/3306"}
	if len(got) != len(want) {
		t.Fatalf("drops %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("drops %v, want %v", got, want)
		}
	}
	if s := info.Summary; s.Packets != 53 || s.Sources != 2 || s.Services["sip-udp"] != (firewall.ServiceDrops{Packets: 47, Sources: 2}) {
		t.Errorf("summary %+v", s)
	}

	info, err = d.Drops(ctx, firewall.DropFilter{Since: 10 * time.Minute, Service: "sip-udp"})
	if err != nil {
		t.Fatal(err)
	}
	if info.Matched != 1 || info.Drops[0].Addr != b {
		t.Errorf("since 10m, sip-udp: %+v", info)
	}
	info, err = d.Drops(ctx, firewall.DropFilter{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Drops) != 2 || info.Matched != 5 || info.Summary.Packets != 53 {
		t.Errorf("limit 2: %d drops, matched %d, summary %+v", len(info.Drops), info.Matched, info.Summary)
	}

	st, err := d.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Drops == nil || st.Drops.Packets != 53 || st.Drops.Sources != 2 {
		t.Errorf("status drops %+v", st.Drops)
	}

	mfs, err := d.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "dialgate_dropped_sources" && mf.GetName() != "dialgate_dropped_packets" {
			continue
		}
		for _, m := range mf.GetMetric() {
			found[mf.GetName()+"/"+m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	for k, v := range map[string]float64{"dialgate_dropped_sources/sip-udp": 2, "dialgate_dropped_packets/sip-udp": 47, "dialgate_dropped_sources/ssh": 1, "dialgate_dropped_sources/tcp/3306": 1} {
		if found[k] != v {
			t.Errorf("metric %s = %v, want %v (have %v)", k, found[k], v, found)
		}
	}
}

func TestDropFilterQuery(t *testing.T) {
	f := firewall.DropFilter{Since: 90 * time.Second, Service: "ssh", Limit: 5}
	back, err := localapi.ParseDropFilter(localapi.DropFilterQuery(f))
	if err != nil || back != f {
		t.Fatalf("round trip %+v -> %+v, %v", f, back, err)
	}
	for _, q := range []url.Values{{"since": {"soon"}}, {"since": {"-1h"}}, {"limit": {"x"}}, {"limit": {"-2"}}} {
		if _, err := localapi.ParseDropFilter(q); err == nil {
			t.Errorf("%v accepted", q)
		}
	}
}
