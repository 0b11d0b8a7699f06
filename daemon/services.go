package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dialgate/dialgate/agi"
)

// services are the parts of the daemon that follow [ami], [agi] and
// [metrics]. Each is started from the configuration in force and
// restarted when a reload changes its table, so a reload applies them
// instead of answering "done" while the old login, listener or allow
// list keeps running.
type services struct {
	mu  sync.Mutex
	ctx context.Context // Run's; nil before Run
	// fatal receives a server's unexpected end, which ends Run.
	fatal chan error

	ami       AMIConfig
	amiCancel context.CancelFunc

	agi    AGIConfig
	agiSrv *agi.Server

	metrics    string
	metricsSrv *http.Server
}

// startServices starts every service for the first time.
func (d *Daemon) startServices(ctx context.Context) error {
	d.svc.mu.Lock()
	d.svc.ctx, d.svc.fatal = ctx, make(chan error, 4)
	d.svc.mu.Unlock()
	return d.applyServices(d.config(), true)
}

// applyServices restarts the services whose configuration differs from
// what runs (all of them when first). It returns what could not be
// started; the others run regardless.
func (d *Daemon) applyServices(cfg Config, first bool) error {
	s := &d.svc
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil {
		return nil // not serving (tests, restore): nothing runs
	}
	var errs []error
	if first || cfg.AMI != s.ami {
		if s.amiCancel != nil {
			s.amiCancel()
			d.log.Info("AMI restarting with the new [ami] settings")
		}
		actx, cancel := context.WithCancel(s.ctx)
		s.ami, s.amiCancel = cfg.AMI, cancel
		d.startAMI(actx, cfg.AMI)
	}
	if first || !reflect.DeepEqual(cfg.AGI, s.agi) {
		if err := d.restartAGI(cfg.AGI); err != nil {
			errs = append(errs, err)
		}
	}
	if first || cfg.Metrics.Listen != s.metrics {
		if err := d.restartMetrics(cfg.Metrics.Listen); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// restartAGI replaces the FastAGI server: calls in progress on the old
// one finish (up to 10 s), new ones reach the new listener.
func (d *Daemon) restartAGI(cfg AGIConfig) error {
	s := &d.svc
	if s.agiSrv != nil {
		old := s.agiSrv
		s.agiSrv = nil
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		go func() { defer cancel(); old.Shutdown(sctx) }()
	}
	s.agi = cfg
	if cfg.Listen == "" {
		d.log.Info("phone door off (agi.listen is empty)")
		return nil
	}
	al, err := listenRetry("tcp", cfg.Listen)
	if err != nil {
		s.agi = AGIConfig{} // a later reload tries again
		return fmt.Errorf("fastagi: %w", err)
	}
	mux := agi.NewServeMux()
	mux.Handle("/authorize", d.door)
	srv := &agi.Server{
		Handler: mux, AllowFrom: cfg.AllowPrefixes(),
		MaxSessions: cfg.MaxSessions, Logger: d.log.With("component", "agi"),
		// The door reads short lines only (env, digits, addresses); a
		// small buffer keeps a thousand waiting callers cheap.
		MaxLineBytes: 2048,
	}
	s.agiSrv = srv
	go func() {
		if err := srv.Serve(s.ctx, al); err != nil && !errors.Is(err, agi.ErrServerClosed) {
			s.fatal <- fmt.Errorf("fastagi: %w", err)
		}
	}()
	d.log.Info("phone door listening", "fastagi", cfg.Listen, "allow", cfg.Allow, "max_sessions", cfg.MaxSessions)
	return nil
}

// restartMetrics replaces the metrics listener.
func (d *Daemon) restartMetrics(addr string) error {
	s := &d.svc
	if s.metricsSrv != nil {
		s.metricsSrv.Close()
		s.metricsSrv = nil
	}
	s.metrics = addr
	if addr == "" {
		return nil
	}
	ln, err := listenRetry("tcp", addr)
	if err != nil {
		s.metrics = ""
		return fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	s.metricsSrv = srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("metrics server", "err", err)
		}
	}()
	d.log.Info("metrics listening", "addr", addr)
	return nil
}

// listenRetry listens, retrying briefly: a listener just closed on the
// same address may take a moment to free it.
func listenRetry(network, addr string) (net.Listener, error) {
	var err error
	for i := 0; i < 20; i++ {
		var ln net.Listener
		if ln, err = net.Listen(network, addr); err == nil {
			return ln, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, err
}

// stopServices ends every service: calls in progress finish within ctx.
func (d *Daemon) stopServices(ctx context.Context) {
	s := &d.svc
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.amiCancel != nil {
		s.amiCancel()
	}
	if s.metricsSrv != nil {
		s.metricsSrv.Close()
	}
	if s.agiSrv != nil {
		s.agiSrv.Shutdown(ctx)
	}
	s.ctx = nil
}
