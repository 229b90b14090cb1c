package managerapp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/claude-guard/claude-guard/controllers"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/inject"
	cgwebhook "github.com/claude-guard/claude-guard/internal/webhook"
)

// Run starts the manager and blocks until ctx ends: a controller-runtime manager, the controllers, the
// webhook (once its certificate exists) and the health checks, in that order.
func Run(ctx context.Context, o *Options) error {
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap)))
	mgr, err := newManager(o)
	if err != nil {
		return err
	}
	// One set of render settings for the policy controller and the webhook: both render a policy the
	// same way (internal/render).
	eff, err := o.Effective()
	if err != nil {
		return err
	}
	if o.MetricsTokenSecret != "" {
		// The manager's cache does not serve before Start: a direct client.
		c, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
		if err != nil {
			return fmt.Errorf("failed to create a client: %w", err)
		}
		if eff.MetricsTokenSHA256, err = metricsTokenHash(ctx, c, o.OperatorNamespace, o.MetricsTokenSecret); err != nil {
			return err
		}
	}
	closeRedis, err := setupControllers(ctx, mgr, o, eff)
	if err != nil {
		return err
	}
	defer closeRedis()
	wh, err := setupWebhook(mgr, o, eff)
	if err != nil {
		return err
	}
	if err := setupHealth(mgr, wh); err != nil {
		return err
	}
	ctrl.Log.Info("Starting manager", "noTenant", o.NoTenant, "upstream", o.Upstream, "redisPerNamespaceUsers", o.redisUsers(),
		"spireRegistration", o.SPIRERegistration)
	return mgr.Start(ctx)
}

func newManager(o *Options) (ctrl.Manager, error) {
	scheme, err := controllers.NewScheme()
	if err != nil {
		return nil, err
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
		return nil, fmt.Errorf("failed to create manager: %w", err)
	}
	return mgr, nil
}

// setupControllers registers the policy, tenant, Redis user and SPIFFE registration controllers (or,
// without per-namespace Redis users, the Redis function loader), and returns what closes the manager's
// Redis connection.
func setupControllers(ctx context.Context, mgr ctrl.Manager, o *Options, eff effective.Options) (func(), error) {
	noop := func() {}
	redisUsers, err := o.redisUsersOptions(ctx, mgr)
	if err != nil {
		return noop, err
	}
	closeRedis := noop
	if redisUsers != nil {
		closeRedis = func() { _ = redisUsers.Admin.Close() }
	}
	functions, err := o.redisFunctions()
	if err != nil {
		return closeRedis, err
	}
	var revocations controllers.RevocationStore
	switch {
	case redisUsers != nil:
		revocations = redisUsers.Admin
	case functions != nil:
		revocations = functions
	}
	counters, err := o.redisCounters()
	if err != nil {
		return closeRedis, err
	}
	if counters != nil {
		closeAdmin := closeRedis
		closeRedis = func() { closeAdmin(); _ = counters.Close() }
	}
	if err := controllers.Setup(mgr, eff, redisUsers, revocations, spendOptions(counters)); err != nil {
		return closeRedis, err
	}
	if err := addBroker(mgr, o, redisUsers); err != nil {
		return closeRedis, err
	}
	if functions != nil {
		closeRedis = func() { _ = functions.Close() }
		if err := mgr.Add(&controllers.RedisFunctionsLoader{Functions: functions}); err != nil {
			return closeRedis, fmt.Errorf("failed to set up the Redis function loader: %w", err)
		}
	}
	if reg := o.registration(mgr); reg != nil {
		if err := controllers.SetupRegistration(mgr, reg); err != nil {
			return closeRedis, fmt.Errorf("failed to set up SPIFFE registration: %w", err)
		}
	}
	return closeRedis, nil
}

// injectionWebhook serves the injection webhook once its serving certificate exists: started earlier, the
// server would fail to load the missing files and stop the manager. Every replica serves it, leader or
// not. Its error, like any runnable's, stops the manager.
type injectionWebhook struct {
	srv     webhook.Server
	handler http.Handler
	ready   <-chan struct{}
	started atomic.Bool
}

func (w *injectionWebhook) NeedLeaderElection() bool { return false }

func (w *injectionWebhook) Start(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-w.ready:
	}
	w.srv.Register(cgwebhook.Path, w.handler)
	w.started.Store(true)
	return w.srv.Start(ctx)
}

// check is the readiness check: the webhook serves.
func (w *injectionWebhook) check(req *http.Request) error {
	if !w.started.Load() {
		return errors.New("the webhook's serving certificate is not ready yet")
	}
	return w.srv.StartedChecker()(req)
}

// setupWebhook adds the certificate rotation (unless cert-manager provides the certificate) and the
// injection webhook.
func setupWebhook(mgr ctrl.Manager, o *Options, eff effective.Options) (*injectionWebhook, error) {
	ready := make(chan struct{})
	if o.CertRotation {
		if err := addCertRotator(mgr, o, ready); err != nil {
			return nil, err
		}
		if err := addCertFiles(mgr, o); err != nil {
			return nil, err
		}
	} else {
		close(ready)
	}
	injector := &cgwebhook.PodInjector{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("claude-guard-injector"),
		Operator: inject.Operator{Namespace: o.OperatorNamespace, Config: o.Inject(), Gateway: o.GatewayServiceAccount}}
	w := &injectionWebhook{
		srv:     webhook.NewServer(webhook.Options{Host: o.WebhookHost, Port: o.WebhookPort, CertDir: o.WebhookCertDir}),
		handler: injector.Handler(mgr.GetScheme()),
		ready:   ready,
	}
	if err := mgr.Add(w); err != nil {
		return nil, fmt.Errorf("failed to add the injection webhook: %w", err)
	}
	return w, nil
}

// setupHealth adds /healthz and /readyz: ready once the webhook serves.
func setupHealth(mgr ctrl.Manager, w *injectionWebhook) error {
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("failed to add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("webhook", w.check); err != nil {
		return fmt.Errorf("failed to add ready check: %w", err)
	}
	return nil
}
