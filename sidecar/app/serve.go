package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/sidecar/audit"
	"github.com/claude-guard/claude-guard/sidecar/config"
	"github.com/claude-guard/claude-guard/sidecar/enduser"
	"github.com/claude-guard/claude-guard/sidecar/limits"
	"github.com/claude-guard/claude-guard/sidecar/metrics"
	"github.com/claude-guard/claude-guard/sidecar/proxy"
	"github.com/claude-guard/claude-guard/sidecar/telemetry"
)

// Run serves until ctx is cancelled (or a reload needs a restart), then drains. It is the steps below in
// order: build everything the config asks for, listen, serve, drain.
func Run(ctx context.Context, o *Options) error {
	if err := undumpable(); err != nil {
		return err
	}
	s, err := build(ctx, o)
	if err != nil {
		return err
	}
	defer s.close()
	l, err := listen(s.cfg.Policy.Config, s.tls)
	if err != nil {
		return err
	}
	return s.serve(ctx, o, l)
}

// sidecar is everything Run builds from the options and the config it started with.
type sidecar struct {
	log      *slog.Logger
	cfg      *config.Compiled // the config at start
	store    *config.Store
	wiring   *wiring
	tls      *tls.Config
	upstream *url.URL
	metrics  *metrics.Metrics
	// telemetry is the OpenTelemetry side of the metrics, and the spans.
	telemetry *telemetry.Telemetry
	limiter   limiter
	users     *endUsers
	revoked   *enduser.Revocations
	audit     *audit.Logger
	handler   http.Handler
	// restart is closed when a reload changed settings that apply only at start.
	restart     chan struct{}
	restartOnce sync.Once
	closers     []func()
}

// build loads the config and wires what it asks for: identity and credentials, TLS, metrics, the limit
// backend, end users, audit and the proxy handler. On error it releases what it built.
func build(ctx context.Context, o *Options) (_ *sidecar, err error) {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(o.LogLevel)) // Validate checked it
	s := &sidecar{log: slog.New(slog.NewJSONHandler(o.Stdout, &slog.HandlerOptions{Level: lvl})), restart: make(chan struct{})}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.cfg, err = config.Load(o.ConfigPath, o.override); err != nil {
		return nil, err
	}
	c := s.cfg.Policy.Config
	if err = checkGateway(o, c); err != nil {
		return nil, err
	}
	s.store = config.NewStore(s.cfg)
	if s.wiring, err = wire(ctx, c, o, s.log); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.wiring.close)
	if s.tls, err = serverTLS(o, s.wiring.identity); err != nil {
		return nil, err
	}
	s.metrics = metrics.New()
	s.wiring.start(ctx, c, s.metrics)
	s.metrics.SetConfig(metrics.ConfigState{Document: s.cfg.Document, Hash: s.cfg.Policy.Hash})
	s.metrics.ConfigReloads.WithLabelValues("success").Inc()
	if s.telemetry, err = newTelemetry(ctx, c, s.metrics, s.log); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.flushTelemetry)
	if s.limiter, err = newLimiter(c, s.cfg.Rules, o.RedisPasswordFile, s.wiring.source(), s.metrics, s.log); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = s.limiter.Close() })
	s.followRevocations(ctx, c)
	// The limit backend also remembers end users' jti values, so replay state is shared like limits.
	if s.users, err = newEndUsers(ctx, c, s.limiter, s.revoked, s.log); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.users.close)
	if !c.Audit.Disabled {
		s.audit = audit.New(o.Stdout)
		s.closers = append(s.closers, s.audit.Close)
		s.metrics.WatchAuditFailures(s.audit.Failed)
	}
	s.upstream, _ = url.Parse(c.Server.Upstream) // validated with the config
	mem := planMemory(containerMemoryLimit(cgroupMemoryFiles), o.MaxBufferedBytes, os.Getenv("GOMEMLIMIT"))
	applyMemoryPlan(mem, s.log)
	applyProcs(containerCPULimit(cgroupCPUFiles), o.MaxProcs, s.log)
	s.handler = proxy.New(proxy.Options{
		BodyBudget: proxy.NewBodyBudget(mem.bodyBudget),
		Upstream:   s.upstream, Policy: s.store.Policy, Credentials: s.wiring.creds, EndUser: s.users.get,
		Limiter: s.limiter, Audit: s.audit, Metrics: s.metrics, Telemetry: s.telemetry, Log: s.log,
		Workload: s.wiring.workload(o.Workload), Caller: caller(o),
	})
	return s, nil
}

// followRevocations sets up the revoked tokens and users: those of the config, and with the Redis backend
// those the operator shares through Redis, read every enduser.RevocationPoll until the sidecar stops.
func (s *sidecar) followRevocations(ctx context.Context, c *policyconfig.Config) {
	s.revoked = enduser.NewRevocations()
	s.revoked.SetConfig(c.Revoked)
	r, ok := s.limiter.(*limits.Redis)
	if !ok || c.Policy.Namespace == "" {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.revoked.Follow(ctx, sharedRevocations{r, c.Policy.Namespace}, enduser.RevocationPoll, s.log)
	}()
	s.closers = append(s.closers, func() { cancel(); <-done })
}

// sharedRevocations reads one namespace's revocations from the Redis backend.
type sharedRevocations struct {
	r         *limits.Redis
	namespace string
}

func (s sharedRevocations) Revocations(ctx context.Context, known string) (string, map[string]string, error) {
	return s.r.Revocations(ctx, s.namespace, known)
}

// close releases what build made, last first.
func (s *sidecar) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// watcher hot-reloads the config: the policy, limits and end users follow a new document; settings that
// apply only at start make the sidecar drain and exit instead.
func (s *sidecar) watcher(o *Options) *config.Watcher {
	started := s.cfg.Policy.Config
	return &config.Watcher{
		Path: o.ConfigPath, Override: o.override, Store: s.store, Log: s.log,
		OnReload: func(n *config.Compiled) {
			s.limiter.SetRules(n.Rules)
			s.revoked.SetConfig(n.Policy.Config.Revoked)
			if err := s.users.set(n.Policy.Config); err != nil {
				s.log.Error("End-user settings not applied; the previous ones stay in force", "error", err.Error())
			}
			s.metrics.SetConfig(metrics.ConfigState{Document: n.Document, Hash: n.Policy.Hash})
			if what := needsRestart(started, n.Policy.Config); what != "" {
				// These are wired once at start (listeners, the credential source, the limit backend). Serving
				// the old ones beside a new hash would be a lie: drain and exit, and the kubelet restarts the
				// (native) sidecar on the new config.
				s.log.Warn("Config changed settings that apply only at start; draining and exiting so the sidecar restarts on the new config", "changed", what)
				s.restartOnce.Do(func() { close(s.restart) })
			}
		},
		OnResult: func(ok bool) {
			result := "success"
			if !ok {
				result = "failure"
			}
			s.metrics.ConfigReloads.WithLabelValues(result).Inc()
		},
	}
}

// ready is /readyz: "" once the sidecar can serve calls, else why not.
func (s *sidecar) ready() string {
	if s.store.Policy().Config.Deny != nil {
		return ""
	}
	if id := s.wiring.identity; id != nil {
		if err := id.Ready(); err != nil {
			return "no SPIFFE identity: " + err.Error()
		}
	}
	if _, err := s.wiring.creds.Get(context.Background()); err != nil {
		return "no API key loaded"
	}
	if a := s.users.get(); a != nil && a.Mode() == policyconfig.EndUserStrict && !a.Ready() {
		return "end-user token issuers not discovered yet"
	}
	return ""
}

// listeners are the proxy's and the metrics server's.
type listeners struct{ proxy, metrics net.Listener }

// listen opens the config's addresses (the proxy behind TLS when tlsConfig is set).
func listen(c *policyconfig.Config, tlsConfig *tls.Config) (listeners, error) {
	var l listeners
	var err error
	if l.proxy, err = net.Listen("tcp", c.Server.Listen); err != nil {
		return l, fmt.Errorf("failed to listen on %s: %w", c.Server.Listen, err)
	}
	if tlsConfig != nil {
		l.proxy = tls.NewListener(l.proxy, tlsConfig)
	}
	if l.metrics, err = net.Listen("tcp", c.Server.MetricsListen); err != nil {
		_ = l.proxy.Close()
		return l, fmt.Errorf("failed to listen on %s: %w", c.Server.MetricsListen, err)
	}
	return l, nil
}

// servers are the proxy's and the metrics endpoint's HTTP servers.
func (s *sidecar) servers(o *Options) (proxySrv, metricsSrv *http.Server) {
	errLog := slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	proxySrv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute, // headers and the whole request body
		WriteTimeout:      o.MaxRequestDuration,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          errLog,
	}
	metricsSrv = &http.Server{
		Handler:           s.metrics.Handler(s.ready, s.cfg.Policy.Config.Server.MetricsTokenSHA256),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          errLog,
	}
	return proxySrv, metricsSrv
}

// serve serves on l with hot reload until ctx ends, a reload needs a restart or a server fails, then
// drains.
func (s *sidecar) serve(ctx context.Context, o *Options, l listeners) error {
	proxySrv, metricsSrv := s.servers(o)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		if err := s.watcher(o).Run(watchCtx); err != nil {
			s.log.Error("Config hot reload disabled", "error", err.Error())
		}
	}()
	errc := make(chan error, 2)
	go func() { errc <- proxySrv.Serve(l.proxy) }()
	go func() { errc <- metricsSrv.Serve(l.metrics) }()
	c := s.cfg.Policy.Config
	s.log.Info("Sidecar serving", "listen", l.proxy.Addr().String(), "metricsListen", l.metrics.Addr().String(),
		"upstream", s.upstream.Redacted(), "policy", c.Policy.Namespace+"/"+c.Policy.Name, "hash", s.cfg.Policy.Hash,
		"limits", s.cfg.Rules.Describe(), "shadowMode", c.ShadowMode, "gateway", o.Gateway, "tls", s.tls != nil)
	if o.Ready != nil {
		o.Ready(l.proxy.Addr().String(), l.metrics.Addr().String())
	}
	select {
	case <-ctx.Done():
	case <-s.restart:
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			_ = proxySrv.Close()
			_ = metricsSrv.Close()
			return fmt.Errorf("server failed: %w", err)
		}
	}
	s.drain(ctx, o.ShutdownGrace, proxySrv, metricsSrv)
	return nil
}

// drain lets in-flight requests and streams finish for up to grace, then closes what is left.
func (s *sidecar) drain(ctx context.Context, grace time.Duration, proxySrv, metricsSrv *http.Server) {
	s.log.Info("Shutting down: draining in-flight requests", "grace", grace.String())
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := proxySrv.Shutdown(drainCtx); err != nil {
		s.log.Warn("Drain deadline passed; closing remaining connections", "error", err.Error())
		_ = proxySrv.Close()
	}
	if err := metricsSrv.Shutdown(drainCtx); err != nil {
		s.log.Warn("Metrics server did not shut down in time; closing it", "error", err.Error())
		_ = metricsSrv.Close()
	}
	s.log.Info("Sidecar stopped")
}
