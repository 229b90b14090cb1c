//go:build integration

package redisusers

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/controllers"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/redisbroker"
	"github.com/claude-guard/claude-guard/internal/test/testcert"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/test/wait"
	"github.com/claude-guard/claude-guard/internal/wellknown"
	"github.com/claude-guard/claude-guard/sidecar/limits"
)

const brokerTD = "cluster.test"

// TestBrokeredNamespacesKeepNoSecret: with the credential broker on, a namespace's Redis policies get
// their user but no password Secret (one the operator wrote before is deleted), and a sidecar with the
// namespace's SVID gets the password from the broker, as the manager serves it, and counts in Redis.
// Another namespace's SVID gets its own namespace's user only, and a namespace without a brokered
// policy gets nothing.
func TestBrokeredNamespacesKeepNoSecret(t *testing.T) {
	srv, admin, public, env := startBackend(t)
	k := env.Client
	ctx := context.Background()
	brokerURL, serve := listen(t)
	ca := testcert.NewSPIFFECA(t, brokerTD)
	brokerID := "spiffe://" + brokerTD + "/ns/claude-guard-system/sa/claude-guard-manager"
	users := &controllers.RedisUsersOptions{Admin: admin, Resync: time.Second}
	stop, err := env.StartManager(testenv.ManagerOptions{
		Effective: effective.Options{NoTenant: effective.NoTenantAllow, VaultAddress: "https://vault.test:8200",
			Upstream: "https://api.anthropic.test", RedisURL: public, RedisUsers: true, TrustDomain: brokerTD,
			RedisBroker: &policyconfig.RedisBroker{URL: brokerURL, ID: brokerID}},
		RedisUsers: users,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	lookup := (&controllers.RedisUserReconciler{Client: k, RedisUsersOptions: *users}).BrokerCredentials
	serve(&http.Server{Handler: redisbroker.Handler{Lookup: lookup, Log: logr.Discard()},
		TLSConfig: redisbroker.ServerTLS(ca.Source(t, brokerID), spiffeid.RequireTrustDomainFromString(brokerTD)), ReadHeaderTimeout: time.Second})

	nsA, nsB, nsLocal := namespace(t, k, "brokered-a"), namespace(t, k, "brokered-b"), namespace(t, k, "brokered-local")
	// A Secret the operator wrote before the broker was on: it goes.
	stale := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: nsA, Name: wellknown.RedisSecretName,
		Labels: map[string]string{"app.kubernetes.io/managed-by": wellknown.ManagedBy}}, StringData: map[string]string{wellknown.RedisSecretKey: "old"}}
	if err := k.Create(ctx, stale); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*v1alpha1.ClaudeAccessPolicy{redisPolicy(nsA, "chat", v1alpha1.LimitBackendRedis), redisPolicy(nsB, "chat", v1alpha1.LimitBackendRedis),
		redisPolicy(nsLocal, "chat", v1alpha1.LimitBackendLocal)} {
		if err := k.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	_, cfgA := rendered(t, k, nsA, "chat")
	wait.For(t, 30*time.Second, "the brokered namespaces' users, without Secrets", func() error {
		got, err := admin.Namespaces(ctx)
		if err != nil {
			return err
		}
		if len(got) != 2 {
			return errors.New("users of " + strings.Join(got, " "))
		}
		for _, ns := range []string{nsA, nsB} {
			if secret(t, k, ns) != nil {
				return errors.New("Secret " + ns + "/" + wellknown.RedisSecretName + " is still there")
			}
		}
		return nil
	})
	if b := cfgA.Limits.RedisBroker; b == nil || b.URL != brokerURL || b.ID != brokerID {
		t.Fatalf("limits.redisBroker = %+v, want the broker", b)
	}

	sidecar := func(ns string) *redisbroker.Client {
		c, err := redisbroker.NewClient(redisbroker.ClientOptions{URL: brokerURL, ServerID: brokerID,
			Source: ca.Source(t, "spiffe://"+brokerTD+"/ns/"+ns+"/sa/default")})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	t.Run("a sidecar of the namespace counts in Redis with the broker's password", func(t *testing.T) {
		rs, err := limits.Compile(cfgA)
		if err != nil {
			t.Fatal(err)
		}
		l, err := limits.NewRedis(limits.RedisOptions{URL: cfgA.Limits.RedisURL, Username: cfgA.Limits.RedisUser,
			Credentials: sidecar(nsA).Credentials, Rules: rs, Timeout: 2 * time.Second, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		if err := once(ctx, userClient(t, srv, nsA, password(t, k, nsA)), nsA, "probe"); err != nil {
			t.Fatalf("the namespace's user: %v", err)
		}
		if first, err := l.Once(ctx, "jti-1", time.Minute); err != nil || !first {
			t.Fatalf("a limiter with the broker's password: first use %v, %v", first, err)
		}
	})
	t.Run("each SVID gets its own namespace's user only", func(t *testing.T) {
		user, pw, err := sidecar(nsB).Credentials(ctx)
		if err != nil || user != wellknown.RedisUser(nsB) || pw != password(t, k, nsB) {
			t.Fatalf("namespace B's sidecar got %q, %v; want B's user and password", user, err)
		}
		if _, _, err := sidecar(nsLocal).Credentials(ctx); err == nil {
			t.Fatal("a namespace with only Local policies got Redis credentials")
		}
	})
}

// listen opens a loopback listener for a broker and returns its URL and what serves it.
func listen(t *testing.T) (string, func(*http.Server)) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return "https://" + ln.Addr().String(), func(s *http.Server) {
		go func() { _ = s.ServeTLS(ln, "", "") }()
		t.Cleanup(func() { _ = s.Close() })
	}
}
