package testenv

import (
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/config"

	"context"
	"fmt"
	"path/filepath"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/claude-guard/claude-guard/controllers"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/inject"
	cgwebhook "github.com/claude-guard/claude-guard/internal/webhook"
)

// WithWebhooks registers the injection webhook configuration from config/webhook with the API server;
// envtest points it at a local serving address with its own CA.
func WithWebhooks(e *envtest.Environment) {
	e.WebhookInstallOptions = envtest.WebhookInstallOptions{Paths: []string{filepath.Join(RepoRoot(), "config", "webhook")}}
}

// ManagerOptions configure StartManager.
type ManagerOptions struct {
	Effective effective.Options
	// RedisUsers, when set, runs the per-namespace Redis user controller.
	RedisUsers *controllers.RedisUsersOptions
	// Revocations, when set, is where revocations are shared (default: RedisUsers' admin connection).
	Revocations controllers.RevocationStore
	// Spend, when set, runs the spend controllers.
	Spend *controllers.SpendOptions
	// Inject, when set, serves the injection webhook (the Env must be started WithWebhooks).
	Inject *inject.Operator
	// User, when set, is who the manager is to the API server (default: the Env's admin). Admission
	// rules that name the manager's ServiceAccount need the manager to run as it.
	User *envtest.User
	// Registration, when set, runs the SPIFFE registration controller with these settings (the Env
	// must serve the SPIRE Controller Manager's CRDs: WithSPIRECRDs).
	Registration *controllers.RegistrationReconciler
}

// StartManager runs the controllers (and the webhook) in-process against the Env, as cmd/manager does,
// and returns a function that stops it.
func (e *Env) StartManager(o ManagerOptions) (func() error, error) {
	scheme, err := controllers.NewScheme()
	if err != nil {
		return nil, err
	}
	opts := ctrl.Options{
		Scheme:  scheme,
		Cache:   controllers.CacheOptions(),
		Metrics: metricsserver.Options{BindAddress: "0"},
		// A test binary may run more than one manager (each with its own control plane).
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	}
	if o.Inject != nil {
		w := e.WebhookInstallOptions
		opts.WebhookServer = webhook.NewServer(webhook.Options{Host: w.LocalServingHost, Port: w.LocalServingPort, CertDir: w.LocalServingCertDir})
	}
	cfg := e.Config
	if o.User != nil {
		u, err := e.AddUser(*o.User, nil)
		if err != nil {
			return nil, fmt.Errorf("failed to add the manager's user %s: %w", o.User.Name, err)
		}
		cfg = u.Config()
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("failed to create manager: %w", err)
	}
	revocations := o.Revocations
	if revocations == nil && o.RedisUsers != nil {
		revocations = o.RedisUsers.Admin
	}
	if err := controllers.Setup(mgr, o.Effective, o.RedisUsers, revocations, o.Spend); err != nil {
		return nil, err
	}
	if r := o.Registration; r != nil {
		r.Client, r.APIReader, r.Recorder = mgr.GetClient(), mgr.GetAPIReader(), mgr.GetEventRecorder("claude-guard-spire-registration")
		if err := controllers.SetupRegistration(mgr, r); err != nil {
			return nil, err
		}
	}
	if o.Inject != nil {
		injector := &cgwebhook.PodInjector{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("claude-guard-injector"), Operator: *o.Inject}
		if err := injector.SetupWithManager(mgr); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stop := func() error { cancel(); return <-done }
	// Tests must not race the manager: wait for its caches and, with failurePolicy Ignore in play, for
	// the webhook to serve, or early pods would silently miss injection.
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		_ = stop()
		return nil, fmt.Errorf("manager caches did not sync")
	}
	if o.Inject != nil {
		deadline := time.Now().Add(30 * time.Second)
		for mgr.GetWebhookServer().StartedChecker()(nil) != nil {
			if time.Now().After(deadline) {
				_ = stop()
				return nil, fmt.Errorf("webhook server did not start")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return stop, nil
}
