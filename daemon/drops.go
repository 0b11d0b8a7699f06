package daemon

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/localapi"
)

// Drops reads the kernel's drop accounting and names each drop's service
// from the configuration. f.Limit cuts the list, not the summary.
func (d *Daemon) Drops(ctx context.Context, f firewall.DropFilter) (localapi.DropsInfo, error) {
	ds, err := d.fw.Drops(ctx)
	if err != nil {
		return localapi.DropsInfo{}, err
	}
	NameDrops(d.config().FirewallRules(), ds)
	limit := f.Limit
	f.Limit, f.Now = 0, d.now()
	sel := firewall.FilterDrops(ds, f)
	info := localapi.DropsInfo{Matched: len(sel), Summary: firewall.SummarizeDrops(sel), WindowSeconds: int64(firewall.DropsTimeout / time.Second)}
	if limit > 0 && len(sel) > limit {
		sel = sel[:limit]
	}
	info.Drops = sel
	if info.Drops == nil {
		info.Drops = []firewall.Drop{}
	}
	return info, nil
}

// NameDrops fills in each drop's service as cfg names it.
func NameDrops(cfg firewall.Config, ds []firewall.Drop) {
	for i := range ds {
		ds[i].Service = cfg.ServiceName(ds[i].Proto, ds[i].Port)
	}
}

// dropSummary totals the last DropsTimeout's drops for status; nil when
// the kernel cannot tell.
func (d *Daemon) dropSummary(ctx context.Context) *firewall.DropSummary {
	info, err := d.Drops(ctx, firewall.DropFilter{})
	if err != nil {
		return nil
	}
	return &info.Summary
}

// dropStats reports the drop accounting per service at scrape time, as
// the kernel holds it.
type dropStats struct{ d *Daemon }

var (
	droppedSourcesDesc = prometheus.NewDesc("dialgate_dropped_sources",
		"Distinct sources the firewall's final drop hit in the last hour, per service.", []string{"service"}, nil)
	droppedPacketsDesc = prometheus.NewDesc("dialgate_dropped_packets",
		"Packets of the sources the final drop hit in the last hour, per service (a source's count restarts after an hour without drops; on iptables, an hour after its first drop).",
		[]string{"service"}, nil)
)

func (s dropStats) Describe(ch chan<- *prometheus.Desc) {
	ch <- droppedSourcesDesc
	ch <- droppedPacketsDesc
}

func (s dropStats) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := s.d.Drops(ctx, firewall.DropFilter{})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(droppedSourcesDesc, err)
		return
	}
	for svc, n := range info.Summary.Services {
		ch <- prometheus.MustNewConstMetric(droppedSourcesDesc, prometheus.GaugeValue, float64(n.Sources), svc)
		ch <- prometheus.MustNewConstMetric(droppedPacketsDesc, prometheus.GaugeValue, float64(n.Packets), svc)
	}
}
