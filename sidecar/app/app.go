// Package app wires the sidecar together: options from flags and environment, validation, and Run,
// which builds every long-lived part once and serves until its context ends.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/wellknown"
	"github.com/claude-guard/claude-guard/sidecar/audit"
	"github.com/claude-guard/claude-guard/sidecar/config"
	"github.com/claude-guard/claude-guard/sidecar/metrics"
	"github.com/claude-guard/claude-guard/sidecar/proxy"
)

// Options are the sidecar's command-line settings. Those left empty come from the config file.
type Options struct {
	ConfigPath    string
	Listen        string
	MetricsListen string
	Upstream      string
	APIKeyFile    string
	// SecretDir is where the webhook mounts the Secret of a secretRef credential source.
	SecretDir string
	// VaultTokenFile is the projected service-account token for Vault's kubernetes auth.
	VaultTokenFile string
	// RedisPasswordFile holds the password of the config's limits.redisUser (the namespace's Redis ACL
	// user, whose Secret the webhook mounts).
	RedisPasswordFile string
	Workload          string
	// ShutdownGrace is how long in-flight requests (streams included) may take to finish on shutdown.
	ShutdownGrace time.Duration
	// MaxRequestDuration bounds one request, streams included (the server's write timeout).
	MaxRequestDuration time.Duration
	LogLevel           string

	// Gateway runs the sidecar as a shared gateway (gateway.go); TLS and mTLS settings apply to its
	// listener.
	Gateway           bool
	TLSCertFile       string
	TLSKeyFile        string
	ClientTrustDomain string

	// apiKeyEnv is set when CLAUDE_GUARD_API_KEY is present.
	apiKeyEnv bool
	// Stdout receives audit records and logs; nil means os.Stdout.
	Stdout io.Writer
	// Ready, when set, is called with the bound proxy and metrics addresses once serving (tests).
	Ready func(proxyAddr, metricsAddr string)
}

// BindFlags registers the options on fs.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.ConfigPath, "config", "", "path of the sidecar config (YAML or JSON); required")
	fs.StringVar(&o.Listen, "listen", "", "proxy listen address (default: config server.listen, else "+policyconfig.DefaultListen+")")
	fs.StringVar(&o.MetricsListen, "metrics-listen", "", "address for /metrics, /healthz and /readyz (default: config server.metricsListen, else "+policyconfig.DefaultMetricsListen+")")
	fs.StringVar(&o.Upstream, "upstream", "", "Anthropic API base URL (default: config server.upstream, else "+policyconfig.DefaultUpstream+")")
	fs.StringVar(&o.VaultTokenFile, "vault-token-file", wellknown.ServiceAccountTokenFile, "projected service-account token for Vault's kubernetes auth")
	fs.StringVar(&o.RedisPasswordFile, "redis-password-file", wellknown.RedisPasswordFile, "password of the config's limits.redisUser (read again for every new Redis connection)")
	fs.StringVar(&o.SecretDir, "secret-dir", wellknown.SecretMountDir, "directory where the key of a secretRef credential source is mounted (file api-key)")
	fs.StringVar(&o.APIKeyFile, "api-key-file", "", "file holding the Anthropic API key; overrides the config's credentials (so does env "+wellknown.EnvSidecarAPIKey+")")
	fs.StringVar(&o.Workload, "workload", "", "workload identity used in audit records and as the Workload limit key (default: host name)")
	fs.DurationVar(&o.ShutdownGrace, "shutdown-grace", 25*time.Second, "how long in-flight requests and streams may take to finish on shutdown")
	fs.DurationVar(&o.MaxRequestDuration, "max-request-duration", 30*time.Minute, "longest a single request or stream may take")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&o.Gateway, "gateway", false, "run as a shared gateway for callers outside the pod: TLS required, end-user tokens required (endUser.mode Strict)")
	fs.StringVar(&o.TLSCertFile, "tls-cert-file", "", "serve the proxy over TLS with this certificate (PEM; reloaded when it changes)")
	fs.StringVar(&o.TLSKeyFile, "tls-key-file", "", "private key of --tls-cert-file")
	fs.StringVar(&o.ClientTrustDomain, "client-trust-domain", "", "require callers to present an X.509-SVID of this SPIFFE trust domain (mTLS); their SPIFFE ID keys Workload limits")
}

// Complete fills defaults from the environment.
func (o *Options) Complete() {
	if o.Workload == "" {
		o.Workload, _ = os.Hostname()
	}
	if o.APIKeyFile == "" && os.Getenv(wellknown.EnvSidecarAPIKey) != "" {
		o.apiKeyEnv = true
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
}

// Validate checks the options.
func (o *Options) Validate() error {
	var errs []error
	if o.ConfigPath == "" {
		errs = append(errs, errors.New("--config is required"))
	}
	if o.Upstream != "" {
		if u, err := url.Parse(o.Upstream); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--upstream must be an http or https URL, got %q", o.Upstream))
		}
	}
	if o.ShutdownGrace < 0 || o.MaxRequestDuration <= 0 {
		errs = append(errs, errors.New("--shutdown-grace must not be negative and --max-request-duration must be positive"))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level: %w", err))
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		errs = append(errs, errors.New("--tls-cert-file and --tls-key-file must be set together"))
	}
	return errors.Join(errs...)
}

// override applies the flags to a decoded config.
func (o *Options) override(c *policyconfig.Config) {
	if o.Listen != "" {
		c.Server.Listen = o.Listen
	}
	if o.MetricsListen != "" {
		c.Server.MetricsListen = o.MetricsListen
	}
	if o.Upstream != "" {
		c.Server.Upstream = o.Upstream
	}
	switch {
	case o.APIKeyFile != "":
		c.Credentials = policyconfig.Credentials{File: &policyconfig.FileSource{Path: o.APIKeyFile}}
	case o.apiKeyEnv:
		c.Credentials = policyconfig.Credentials{Env: &policyconfig.EnvSource{Name: wellknown.EnvSidecarAPIKey}}
	}
}

// Run serves until ctx is cancelled, then drains.
func Run(ctx context.Context, o *Options) error {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(o.LogLevel))
	log := slog.New(slog.NewJSONHandler(o.Stdout, &slog.HandlerOptions{Level: lvl}))

	cfg, err := config.Load(o.ConfigPath, o.override)
	if err != nil {
		return err
	}
	c := cfg.Policy.Config
	if err := checkGateway(o, c); err != nil {
		return err
	}
	store := config.NewStore(cfg)
	w, err := wire(ctx, c, o, log)
	if err != nil {
		return err
	}
	defer w.close()
	tlsConfig, err := serverTLS(o, w.identity)
	if err != nil {
		return err
	}
	creds := w.creds
	upstream, _ := url.Parse(c.Server.Upstream) // validated
	m := metrics.New()
	w.start(ctx, m)
	m.SetConfig(metrics.ConfigState{Document: cfg.Document, Hash: cfg.Policy.Hash})
	m.ConfigReloads.WithLabelValues("success").Inc()
	limiter, err := newLimiter(c, cfg.Rules, o.RedisPasswordFile, m, log)
	if err != nil {
		return err
	}
	defer limiter.Close()
	// The limit backend also remembers end users' jti values, so replay state is shared like limits.
	users, err := newEndUsers(ctx, c, limiter, log)
	if err != nil {
		return err
	}
	defer users.close()
	var auditLog *audit.Logger
	if !c.Audit.Disabled {
		auditLog = audit.New(o.Stdout)
		defer auditLog.Close()
		m.WatchAuditFailures(auditLog.Failed)
	}
	handler := proxy.New(proxy.Options{
		Upstream:    upstream,
		Policy:      store.Policy,
		Credentials: creds,
		EndUser:     users.get,
		Limiter:     limiter,
		Audit:       auditLog,
		Metrics:     m,
		Log:         log,
		Workload:    w.workload(o.Workload),
		Caller:      caller(o),
	})
	restart := make(chan struct{})
	var restartOnce sync.Once
	watcher := &config.Watcher{
		Path: o.ConfigPath, Override: o.override, Store: store, Log: log,
		OnReload: func(n *config.Compiled) {
			limiter.SetRules(n.Rules)
			if err := users.set(n.Policy.Config); err != nil {
				log.Error("End-user settings not applied; the previous ones stay in force", "error", err.Error())
			}
			m.SetConfig(metrics.ConfigState{Document: n.Document, Hash: n.Policy.Hash})
			if what := needsRestart(c, n.Policy.Config); what != "" {
				// These are wired once at start (listeners, the credential source, the limit backend). Serving
				// the old ones beside a new hash would be a lie: drain and exit, and the kubelet restarts the
				// (native) sidecar on the new config.
				log.Warn("Config changed settings that apply only at start; draining and exiting so the sidecar restarts on the new config", "changed", what)
				restartOnce.Do(func() { close(restart) })
			}
		},
		OnResult: func(ok bool) {
			if ok {
				m.ConfigReloads.WithLabelValues("success").Inc()
			} else {
				m.ConfigReloads.WithLabelValues("failure").Inc()
			}
		},
	}
	ready := func() string {
		if store.Policy().Config.Deny != nil {
			return ""
		}
		if w.identity != nil {
			if err := w.identity.Ready(); err != nil {
				return "no SPIFFE identity: " + err.Error()
			}
		}
		if _, err := creds.Get(context.Background()); err != nil {
			return "no API key loaded"
		}
		if a := users.get(); a != nil && a.Mode() == policyconfig.EndUserStrict && !a.Ready() {
			return "end-user token issuers not discovered yet"
		}
		return ""
	}

	proxyLn, err := net.Listen("tcp", c.Server.Listen)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", c.Server.Listen, err)
	}
	if tlsConfig != nil {
		proxyLn = tls.NewListener(proxyLn, tlsConfig)
	}
	metricsLn, err := net.Listen("tcp", c.Server.MetricsListen)
	if err != nil {
		proxyLn.Close()
		return fmt.Errorf("failed to listen on %s: %w", c.Server.MetricsListen, err)
	}
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	proxySrv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute, // headers and the whole request body
		WriteTimeout:      o.MaxRequestDuration,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          errLog,
	}
	metricsSrv := &http.Server{
		Handler:           m.Handler(ready),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          errLog,
	}

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		if err := watcher.Run(watchCtx); err != nil {
			log.Error("Config hot reload disabled", "error", err.Error())
		}
	}()
	errc := make(chan error, 2)
	go func() { errc <- proxySrv.Serve(proxyLn) }()
	go func() { errc <- metricsSrv.Serve(metricsLn) }()
	log.Info("Sidecar serving", "listen", proxyLn.Addr().String(), "metricsListen", metricsLn.Addr().String(),
		"upstream", upstream.Redacted(), "policy", c.Policy.Namespace+"/"+c.Policy.Name, "hash", cfg.Policy.Hash,
		"limits", cfg.Rules.Describe(), "shadowMode", c.ShadowMode, "gateway", o.Gateway, "tls", tlsConfig != nil)
	if o.Ready != nil {
		o.Ready(proxyLn.Addr().String(), metricsLn.Addr().String())
	}

	select {
	case <-ctx.Done():
	case <-restart:
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			proxySrv.Close()
			metricsSrv.Close()
			return fmt.Errorf("server failed: %w", err)
		}
	}
	log.Info("Shutting down: draining in-flight requests", "grace", o.ShutdownGrace.String())
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.ShutdownGrace)
	defer cancel()
	err = proxySrv.Shutdown(drainCtx)
	if err != nil {
		log.Warn("Drain deadline passed; closing remaining connections", "error", err.Error())
		proxySrv.Close()
	}
	if err := metricsSrv.Shutdown(drainCtx); err != nil {
		log.Warn("Metrics server did not shut down in time; closing it", "error", err.Error())
		metricsSrv.Close()
	}
	log.Info("Sidecar stopped")
	return nil
}

// needsRestart names the settings that differ between the config the sidecar started with and a new
// one and that it applies only at start, or returns "".
func needsRestart(old, cur *policyconfig.Config) string {
	var changed []string
	if cur.Server != old.Server {
		changed = append(changed, "server")
	}
	if !reflect.DeepEqual(cur.Credentials, old.Credentials) {
		changed = append(changed, "credentials")
	}
	if l := cur.Limits; l.Backend != old.Limits.Backend || l.RedisURL != old.Limits.RedisURL || l.RedisUser != old.Limits.RedisUser {
		changed = append(changed, "limits backend")
	}
	return strings.Join(changed, ", ")
}
