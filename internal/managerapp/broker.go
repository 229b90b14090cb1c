package managerapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/claude-guard/claude-guard/controllers"
	"github.com/claude-guard/claude-guard/internal/identity"
	"github.com/claude-guard/claude-guard/internal/inject"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/redisbroker"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// validateBroker checks the Redis credential broker's flags.
func (o *Options) validateBroker() error {
	if o.RedisBrokerURL == "" {
		return nil
	}
	if !o.redisUsers() {
		return errors.New("--redis-broker-url needs --redis-url with --redis-per-namespace-users: the broker hands out the namespaces' users")
	}
	if inject.SocketMode(o.SPIFFESocket) == inject.SocketNone {
		return errors.New("--redis-broker-url needs a SPIFFE socket (--spiffe-socket CSI or HostPath): sidecars authenticate to the broker with their X.509-SVID")
	}
	if u, err := url.Parse(o.RedisBrokerURL); err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("--redis-broker-url must be https://host:port, got %q", o.RedisBrokerURL)
	}
	_, err := o.brokerIdentity()
	return err
}

// brokerIdentity is the identity --redis-broker-id names, which the manager checks its SVID against.
func (o *Options) brokerIdentity() (identity.Expected, error) {
	id, err := spiffeid.FromString(o.RedisBrokerID)
	if err != nil {
		return identity.Expected{}, fmt.Errorf("--redis-broker-id must be a SPIFFE ID, got %q: %w", o.RedisBrokerID, err)
	}
	want, err := identity.Parse(id)
	if err != nil {
		return identity.Expected{}, fmt.Errorf("--redis-broker-id: %w", err)
	}
	return want, nil
}

// redisBroker is the broker as rendered into configs, or nil when it is off.
func (o *Options) redisBroker() *policyconfig.RedisBroker {
	if o.RedisBrokerURL == "" || !o.redisUsers() {
		return nil
	}
	return &policyconfig.RedisBroker{URL: o.RedisBrokerURL, ID: o.RedisBrokerID}
}

// brokerServer serves the Redis credential broker on every replica, leader or not. Until the manager's
// SVID arrives handshakes fail and sidecars retry; the webhook does not wait for it.
type brokerServer struct {
	listen string
	want   identity.Expected
	lookup redisbroker.Lookup
	log    logr.Logger
}

func (b *brokerServer) NeedLeaderElection() bool { return false }

func (b *brokerServer) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", b.listen)
	if err != nil {
		return fmt.Errorf("the Redis credential broker cannot listen on %s: %w", b.listen, err)
	}
	id := identity.Start(ctx, os.Getenv(wellknown.EnvSPIFFESocket), b.want, slog.New(logr.ToSlogHandler(b.log)))
	defer id.Close()
	td := spiffeid.RequireTrustDomainFromString(b.want.TrustDomain)
	srv := &http.Server{
		Handler:   redisbroker.Handler{Lookup: b.lookup, Log: b.log},
		TLSConfig: redisbroker.ServerTLS(id, td),
		// Sidecars send one small GET; nothing here needs to wait long.
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(logr.ToSlogHandler(b.log.V(1)), slog.LevelInfo),
	}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	b.log.Info("Serving the Redis credential broker", "listen", ln.Addr().String(), "spiffeID", b.want.String())
	if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("the Redis credential broker stopped: %w", err)
	}
	return nil
}

// addBroker adds the Redis credential broker when --redis-broker-url is set.
func addBroker(mgr ctrl.Manager, o *Options, redis *controllers.RedisUsersOptions) error {
	if o.redisBroker() == nil || redis == nil {
		return nil
	}
	want, err := o.brokerIdentity()
	if err != nil {
		return err
	}
	if os.Getenv(wellknown.EnvSPIFFESocket) == "" {
		return fmt.Errorf("--redis-broker-url needs $%s: the broker's own SVID comes from the Workload API", wellknown.EnvSPIFFESocket)
	}
	users := &controllers.RedisUserReconciler{Client: mgr.GetClient(), RedisUsersOptions: *redis}
	b := &brokerServer{listen: o.RedisBrokerListen, want: want, lookup: users.BrokerCredentials, log: ctrl.Log.WithName("redis-broker")}
	if err := mgr.Add(b); err != nil {
		return fmt.Errorf("failed to add the Redis credential broker: %w", err)
	}
	return nil
}
