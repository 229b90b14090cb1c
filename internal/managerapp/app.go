// Package managerapp builds and runs the manager process: options, validation, and the controller
// manager with every reconciler. cmd/manager is a thin wrapper around it so the demo and tests can run
// the same code.
package managerapp

import (
	"context"
	"flag"
	"fmt"
	"net/url"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/claude-guard/claude-guard/controllers"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

// Options configure the manager.
type Options struct {
	MetricsAddr      string
	ProbeAddr        string
	LeaderElection   bool
	LeaderElectionNS string
	NoTenant         string
	VaultAddress     string
	RedisURL         string
	Upstream         string
	TrustDomain      string
	zap              zap.Options
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	return &Options{
		MetricsAddr: ":8080",
		ProbeAddr:   ":8081",
		NoTenant:    string(effective.NoTenantDeny),
		Upstream:    policyconfig.DefaultUpstream,
		zap:         zap.Options{Development: false, TimeEncoder: zapcore.ISO8601TimeEncoder},
	}
}

// BindFlags registers the options on the default flag set and parses the command line.
func (o *Options) BindFlags() {
	flag.StringVar(&o.MetricsAddr, "metrics-bind-address", o.MetricsAddr, "Address the metrics endpoint binds to (\"0\" disables it).")
	flag.StringVar(&o.ProbeAddr, "health-probe-bind-address", o.ProbeAddr, "Address the health probes bind to.")
	flag.BoolVar(&o.LeaderElection, "leader-elect", o.LeaderElection, "Elect a leader so that only one replica reconciles.")
	flag.StringVar(&o.LeaderElectionNS, "leader-election-namespace", o.LeaderElectionNS, "Namespace of the leader election lease (default: the pod's).")
	flag.StringVar(&o.NoTenant, "no-tenant", o.NoTenant, "What to do with policies in namespaces no ClaudeTenant selects: Deny (render deny-all) or Allow (admit as written).")
	flag.StringVar(&o.VaultAddress, "vault-address", o.VaultAddress, "Vault address rendered into sidecar configs that use Vault.")
	flag.StringVar(&o.RedisURL, "redis-url", o.RedisURL, "Redis URL rendered into sidecar configs that use the Redis limit backend.")
	flag.StringVar(&o.Upstream, "upstream", o.Upstream, "Anthropic API base URL rendered into sidecar configs.")
	flag.StringVar(&o.TrustDomain, "trust-domain", o.TrustDomain, "Default SPIFFE trust domain for tenants that set none (empty disables SPIFFE).")
	o.zap.BindFlags(flag.CommandLine)
	flag.Parse()
}

// Validate reports the first invalid option.
func (o *Options) Validate() error {
	switch effective.NoTenantMode(o.NoTenant) {
	case effective.NoTenantDeny, effective.NoTenantAllow:
	default:
		return fmt.Errorf("--no-tenant must be Deny or Allow, got %q", o.NoTenant)
	}
	for name, v := range map[string]string{"--upstream": o.Upstream, "--vault-address": o.VaultAddress, "--redis-url": o.RedisURL} {
		if v == "" && name != "--upstream" {
			continue
		}
		if u, err := url.Parse(v); err != nil || u.Scheme == "" || u.Host == "" {
			return fmt.Errorf("%s must be an absolute URL, got %q", name, v)
		}
	}
	return nil
}

// Effective returns the operator-wide inputs of every effective policy.
func (o *Options) Effective() effective.Options {
	return effective.Options{
		NoTenant:     effective.NoTenantMode(o.NoTenant),
		VaultAddress: o.VaultAddress,
		RedisURL:     o.RedisURL,
		Upstream:     o.Upstream,
		TrustDomain:  o.TrustDomain,
	}
}

// Run starts the manager and blocks until ctx ends.
func Run(ctx context.Context, o *Options) error {
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap)))
	scheme, err := controllers.NewScheme()
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  scheme,
		Cache:                   controllers.CacheOptions(),
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:  o.ProbeAddr,
		LeaderElection:          o.LeaderElection,
		LeaderElectionID:        "claude-guard-manager.claudeguard.io",
		LeaderElectionNamespace: o.LeaderElectionNS,
		// The manager only reconciles; a new leader can start at once.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("failed to create manager: %w", err)
	}
	if err := controllers.Setup(mgr, o.Effective()); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("failed to add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("failed to add ready check: %w", err)
	}
	ctrl.Log.Info("Starting manager", "noTenant", o.NoTenant, "upstream", o.Upstream)
	return mgr.Start(ctx)
}
