package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/dialgate/dialgate/store"
)

// metrics are the daemon's Prometheus series, on a registry of its own
// (no global state, so tests and several daemons do not collide). They
// are always counted; [metrics] listen decides whether anyone can read
// them.
type metrics struct {
	reg           *prometheus.Registry
	doorCalls     *prometheus.CounterVec
	grantsIssued  prometheus.Counter
	agiSessions   prometheus.Counter
	agiActive     prometheus.Gauge
	fqdnDuration  prometheus.Histogram
	fqdnFailures  prometheus.Counter
	applyDuration *prometheus.HistogramVec
	amiConnected  prometheus.Gauge
	storeApplies  prometheus.Counter
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		doorCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dialgate_door_calls_total", Help: "Phone door calls by DIALGATE_RESULT (granted, denied, locked, lan, hangup, error).",
		}, []string{"result"}),
		grantsIssued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dialgate_grants_issued_total", Help: "Grants made or renewed.",
		}),
		agiSessions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dialgate_agi_sessions_total", Help: "FastAGI sessions served by the door.",
		}),
		agiActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dialgate_agi_sessions_active", Help: "FastAGI sessions in progress.",
		}),
		fqdnDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dialgate_fqdn_refresh_duration_seconds", Help: "Time to refresh a batch of FQDN entries.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}),
		fqdnFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dialgate_fqdn_failures_total", Help: "FQDN lookups that failed (the name kept its last-known addresses).",
		}),
		applyDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dialgate_apply_duration_seconds", Help: "Time to bring the kernel to the desired state, by kind (sync: members only, apply, rebuild).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"kind"}),
		amiConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dialgate_ami_connected", Help: "1 when logged in to the Asterisk Manager Interface.",
		}),
		storeApplies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dialgate_store_apply_failures_total", Help: "Changes from the shared store (other nodes) that could not be applied to the kernel.",
		}),
	}
	m.reg.MustRegister(m.doorCalls, m.grantsIssued, m.agiSessions, m.agiActive, m.fqdnDuration, m.fqdnFailures,
		m.applyDuration, m.amiConnected, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dialgate_grants_active", Help: "Grants not yet expired.",
		}, func() float64 {
			n := 0
			now := time.Now()
			d.db.View(func(tx store.Tx) error {
				gs, err := tx.Grants()
				for _, g := range gs {
					if g.Expires.After(now) {
						n++
					}
				}
				return err
			})
			return float64(n)
		}),
		setSizes{d: d},
		dropStats{d: d},
		m.storeApplies, storeStats{d: d},
	)
	return m
}

// setSizes reads the kernel's set sizes at scrape time: what the kernel
// holds, not what dialgate believes.
type setSizes struct{ d *Daemon }

var setSizeDesc = prometheus.NewDesc("dialgate_set_members", "Members of each kernel set.", []string{"set"}, nil)

func (s setSizes) Describe(ch chan<- *prometheus.Desc) { ch <- setSizeDesc }

func (s setSizes) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := s.d.fw.Status(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(setSizeDesc, err)
		return
	}
	for _, set := range st.Sets {
		ch <- prometheus.MustNewConstMetric(setSizeDesc, prometheus.GaugeValue, float64(len(set.Entries)), set.Name)
	}
}

func (m *metrics) storeApplyFailed() { m.storeApplies.Inc() }

// storeStats is the link to the shared store, read at scrape time; no
// series with the bbolt backend.
type storeStats struct{ d *Daemon }

var (
	storeReachableDesc = prometheus.NewDesc("dialgate_store_reachable", "1 while the shared store (etcd) answers; 0 while the node filters with its replica and refuses changes.", nil, nil)
	storeSinceDesc     = prometheus.NewDesc("dialgate_store_state_since_timestamp_seconds", "When dialgate_store_reachable last changed (Unix time).", nil, nil)
	storeRevisionDesc  = prometheus.NewDesc("dialgate_store_revision", "The etcd revision the node's replica holds.", nil, nil)
	storeResyncsDesc   = prometheus.NewDesc("dialgate_store_resyncs_total", "Full reloads of the replica (start, compaction, a replica left behind).", nil, nil)
)

func (s storeStats) Describe(ch chan<- *prometheus.Desc) {
	ch <- storeReachableDesc
	ch <- storeSinceDesc
	ch <- storeRevisionDesc
	ch <- storeResyncsDesc
}

func (s storeStats) Collect(ch chan<- prometheus.Metric) {
	info := s.d.storeInfo()
	if info == nil {
		return
	}
	up := 0.0
	if info.Reachable {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(storeReachableDesc, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(storeSinceDesc, prometheus.GaugeValue, float64(info.Since.UnixMilli())/1000)
	ch <- prometheus.MustNewConstMetric(storeRevisionDesc, prometheus.GaugeValue, float64(info.Revision))
	ch <- prometheus.MustNewConstMetric(storeResyncsDesc, prometheus.CounterValue, float64(info.Resyncs))
}

// timeApply observes one kernel update.
func (m *metrics) timeApply(kind string, start time.Time) {
	m.applyDuration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
}

// MetricsConfig is the [metrics] table.
type MetricsConfig struct {
	// Listen is a loopback host:port for the Prometheus endpoint; empty
	// disables it. Other addresses are refused: the metrics name
	// accounts and addresses.
	Listen string `toml:"listen"`
}

func (m MetricsConfig) validate() error {
	if m.Listen == "" {
		return nil
	}
	ap, err := netip.ParseAddrPort(m.Listen)
	if err != nil || !ap.Addr().IsLoopback() {
		return fmt.Errorf("metrics.listen: %q must be a loopback address:port such as 127.0.0.1:9477", m.Listen)
	}
	return nil
}
