// Package app wires the sidecar together: options from flags and environment, validation, and Run,
// which builds every long-lived part once and serves until its context ends.
package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/wellknown"
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
	// MetricsTokenFile holds the token /metrics requires, overriding the config's hash (the gateway,
	// whose config the chart writes, mounts the operator's metrics token Secret).
	MetricsTokenFile string
	Workload         string
	// ShutdownGrace is how long in-flight requests (streams included) may take to finish on shutdown.
	ShutdownGrace time.Duration
	// MaxRequestDuration bounds one request, streams included (the server's write timeout).
	MaxRequestDuration time.Duration
	LogLevel           string
	// MaxBufferedBytes bounds the request body bytes buffered at once (negative: from the container's
	// memory limit; 0: unbounded).
	MaxBufferedBytes int64
	// MaxProcs caps GOMAXPROCS (0: follow the container's CPU limit; GOMAXPROCS in the environment wins).
	MaxProcs int

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
	fs.StringVar(&o.MetricsTokenFile, "metrics-token-file", "", "file holding the bearer token /metrics and /readyz's details require (default: the config's server.metricsTokenSHA256; neither: open)")
	fs.StringVar(&o.Workload, "workload", "", "workload identity used in audit records and as the Workload limit key (default: host name)")
	fs.DurationVar(&o.ShutdownGrace, "shutdown-grace", 25*time.Second, "how long in-flight requests and streams may take to finish on shutdown")
	fs.DurationVar(&o.MaxRequestDuration, "max-request-duration", 30*time.Minute, "longest a single request or stream may take")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.Int64Var(&o.MaxBufferedBytes, "max-buffered-bytes", -1, "request body bytes all requests may buffer at once, counting a rewritten copy (-1: half the container's memory limit, else 256 MiB; 0: unbounded); more is refused with 503 and Retry-After")
	fs.IntVar(&o.MaxProcs, "max-procs", 0, "most CPUs the Go runtime runs on at once (GOMAXPROCS) unless GOMAXPROCS is set: 0 follows the container's CPU limit, down to 1 (injected sidecars get 1: docs/performance.md)")
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
	if o.MaxProcs < 0 {
		errs = append(errs, fmt.Errorf("--max-procs must not be negative, got %d", o.MaxProcs))
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

// override applies the flags to a decoded config. A config the operator rendered names its upstream,
// which the platform chose: a flag cannot send that config's key elsewhere.
func (o *Options) override(c *policyconfig.Config) error {
	if err := gatewayEndUsers(o, c); err != nil {
		return err
	}
	if o.Upstream != "" && c.Rendered() {
		return fmt.Errorf("--upstream is for standalone use: %s was rendered by claude-guard from ClaudeAccessPolicy %s/%s, and its upstream (server.upstream) is the platform's", o.ConfigPath, c.Policy.Namespace, c.Policy.Name)
	}
	if o.MetricsTokenFile != "" {
		b, err := os.ReadFile(o.MetricsTokenFile)
		if err != nil {
			return fmt.Errorf("--metrics-token-file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return fmt.Errorf("--metrics-token-file: %s is empty", o.MetricsTokenFile)
		}
		c.Server.MetricsTokenSHA256 = policyconfig.MetricsTokenHash(tok)
	}
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
