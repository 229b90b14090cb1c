//go:build integration

// Package redisusers proves that shared rate limits keep tenants apart: with a real API server
// (envtest), the controllers and a real password-protected Redis, every namespace with a Redis policy
// gets its own Redis ACL user and Secret, the rendered configs carry neither the admin URL nor a
// password, one namespace's user can call claude-guard's functions on its own keys and do nothing else
// (no code of its own, nothing of another namespace, no administration), the last Redis policy's
// deletion removes the user, and a Redis restart (which loses every ACL user and the function library)
// is healed.
package redisusers

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/controllers"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/redisacl"
	"github.com/claude-guard/claude-guard/internal/rediskeys"
	"github.com/claude-guard/claude-guard/internal/redislib"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
	"github.com/claude-guard/claude-guard/internal/test/wait"
	"github.com/claude-guard/claude-guard/internal/wellknown"
	"github.com/claude-guard/claude-guard/sidecar/limits"
)

const adminPassword = "admin-s3cret"

var master = []byte("0123456789abcdef0123456789abcdef")

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

func TestRedisUsers(t *testing.T) {
	srv, admin, public, env := startBackend(t)
	k := env.Client
	stop, err := env.StartManager(testenv.ManagerOptions{
		Effective: effective.Options{NoTenant: effective.NoTenantAllow, VaultAddress: "https://vault.test:8200",
			Upstream: "https://api.anthropic.test", RedisURL: public, RedisUsers: true, TrustDomain: "cluster.test"},
		RedisUsers: &controllers.RedisUsersOptions{Admin: admin, Resync: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	ctx := context.Background()
	rc := srv.Client(t)

	nsA, nsB, nsLocal := namespace(t, k, "team-a"), namespace(t, k, "team-b"), namespace(t, k, "team-local")
	policyA := redisPolicy(nsA, "chat", v1alpha1.LimitBackendRedis)
	for _, p := range []*v1alpha1.ClaudeAccessPolicy{policyA, redisPolicy(nsB, "chat", v1alpha1.LimitBackendRedis), redisPolicy(nsLocal, "chat", v1alpha1.LimitBackendLocal)} {
		if err := k.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("one user and one Secret per Redis namespace", func(t *testing.T) {
		wait.For(t, 30*time.Second, "", func() error {
			users, err := admin.Namespaces(ctx)
			if err != nil {
				return err
			}
			slices.Sort(users)
			want := []string{nsA, nsB}
			slices.Sort(want)
			if !slices.Equal(users, want) {
				return fmt.Errorf("Redis users of namespaces %v, want %v", users, want)
			}
			return nil
		})
		for _, ns := range []string{nsA, nsB} {
			s := secret(t, k, ns)
			if s == nil || string(s.Data[wellknown.RedisSecretKey]) != password(t, k, ns) ||
				s.Labels["app.kubernetes.io/managed-by"] != wellknown.ManagedBy {
				t.Fatalf("Secret %s/%s = %+v, want the derived password, labelled", ns, wellknown.RedisSecretName, s)
			}
		}
		if s := secret(t, k, nsLocal); s != nil {
			t.Fatalf("namespace %s has only a Local policy but got a Redis Secret", nsLocal)
		}
	})

	t.Run("rendered configs hold no credentials", func(t *testing.T) {
		for _, ns := range []string{nsA, nsB} {
			raw, cfg := rendered(t, k, ns, "chat")
			for _, secret := range []string{adminPassword, password(t, k, ns), srv.URL} {
				if strings.Contains(raw, secret) {
					t.Fatalf("the rendered config of %s holds %q", ns, secret)
				}
			}
			if cfg.Limits.RedisURL != public || cfg.Limits.RedisUser != wellknown.RedisUser(ns) {
				t.Fatalf("limits of %s = %+v, want URL %s and user %s", ns, cfg.Limits, public, wellknown.RedisUser(ns))
			}
		}
	})

	t.Run("a namespace's user is confined to its keys and commands", func(t *testing.T) {
		userA := userClient(t, srv, nsA, password(t, k, nsA))
		if err := once(ctx, userA, nsA, "x"); err != nil {
			t.Fatalf("FCALL on its own key: %v", err)
		}
		denied := map[string]func() error{
			"HINCRBY on B's counter": func() error {
				return userA.HIncrBy(ctx, "cg:{"+nsB+"}:p:chat:limit:rpm:Minute:Namespace="+nsB+":0", "r", -1000).Err()
			},
			"FCALL on B's replay key": func() error { return once(ctx, userA, nsB, "x") },
			"SET on its own key":      func() error { return userA.Set(ctx, "cg:{"+nsA+"}:jti:x", "1", 0).Err() },
			"EVAL":                    func() error { return userA.Eval(ctx, "return 1", nil).Err() },
			"FUNCTION FLUSH":          func() error { return userA.FunctionFlush(ctx).Err() },
			"FLUSHALL":                func() error { return userA.FlushAll(ctx).Err() },
			"CONFIG SET":              func() error { return userA.ConfigSet(ctx, "requirepass", "").Err() },
			"ACL SETUSER":             func() error { return userA.Do(ctx, "ACL", "SETUSER", wellknown.RedisUser(nsA), "~*").Err() },
			// Its revocations are the operator's: a tenant holding the password cannot lift one.
			"HDEL of its own revocation": func() error {
				return userA.HDel(ctx, rediskeys.RevocationsKey(nsA), "0123456789abcdef0123456789abcdef").Err()
			},
			"HINCRBY of its own revocation": func() error {
				return userA.HIncrBy(ctx, rediskeys.RevocationsKey(nsA), "0123456789abcdef0123456789abcdef", 1).Err()
			},
			"DEL of its own revocations": func() error { return userA.Del(ctx, rediskeys.RevocationsKey(nsA)).Err() },
			"HGETALL of B's revocations": func() error { return userA.HGetAll(ctx, rediskeys.RevocationsKey(nsB)).Err() },
		}
		for name, f := range denied {
			if err := f(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
				t.Errorf("%s as %s: %v, want NOPERM", name, wellknown.RedisUser(nsA), err)
			}
		}
		// It reads its own revocations (the sidecar polls them).
		if _, err := userA.HGetAll(ctx, rediskeys.RevocationsKey(nsA)).Result(); err != nil {
			t.Errorf("HGETALL of its own revocations: %v", err)
		}
		// The sidecar's limiter, as A's user with the password file the webhook would mount.
		_, cfg := rendered(t, k, nsA, "chat")
		l := limiter(t, cfg, passwordFile(t, secret(t, k, nsA)))
		if _, err := l.Reserve(ctx, limits.Request{}); err != nil {
			t.Fatalf("Reserve as %s: %v", cfg.Limits.RedisUser, err)
		}
	})

	t.Run("a Redis restart is healed", func(t *testing.T) {
		srv.Stop()
		wait.For(t, 30*time.Second, "", func() error {
			return hasEvent(ctx, k, nsA, policyA.Name, corev1.EventTypeWarning, v1alpha1.ReasonSharedLimitsUnavailable)
		})
		srv.Start(t) // empty: no ACL users, no function library
		wait.For(t, 30*time.Second, "", func() error {
			// The user has no PING: a function call on its own keys proves both exist again.
			return once(ctx, userClient(t, srv, nsA, password(t, k, nsA)), nsA, "y")
		})
		wait.For(t, 30*time.Second, "", func() error {
			return hasEvent(ctx, k, nsA, policyA.Name, corev1.EventTypeNormal, v1alpha1.ReasonSharedLimitsReady)
		})
		// Events and logs never carry the credentials.
		var list eventsv1.EventList
		if err := k.List(ctx, &list, client.InNamespace(nsA)); err != nil {
			t.Fatal(err)
		}
		for _, e := range list.Items {
			if strings.Contains(e.Note, adminPassword) || strings.Contains(e.Note, password(t, k, nsA)) {
				t.Fatalf("event %s holds a password: %s", e.Reason, e.Note)
			}
		}
	})

	t.Run("deleting the last Redis policy removes the user and the Secret", func(t *testing.T) {
		if err := k.Delete(ctx, policyA); err != nil {
			t.Fatal(err)
		}
		wait.For(t, 30*time.Second, "", func() error {
			if s := secret(t, k, nsA); s != nil {
				return fmt.Errorf("Secret %s/%s is still there", nsA, wellknown.RedisSecretName)
			}
			users, err := admin.Namespaces(ctx)
			if err != nil {
				return err
			}
			if slices.Contains(users, nsA) || !slices.Contains(users, nsB) {
				return fmt.Errorf("Redis users of namespaces %v, want %s only", users, nsB)
			}
			return nil
		})
	})

	t.Run("a namespace deleted and created again gets a new password", func(t *testing.T) {
		ns := namespace(t, k, "team-r")
		p := redisPolicy(ns, "chat", v1alpha1.LimitBackendRedis)
		if err := k.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		old := waitForPassword(t, k, srv, ns)
		// What the namespace controller of a real cluster does (envtest has none): the policy goes,
		// then the namespace.
		if err := k.Delete(ctx, p); err != nil {
			t.Fatal(err)
		}
		wait.For(t, 30*time.Second, "", func() error {
			err := k.Get(ctx, client.ObjectKeyFromObject(p), p)
			switch {
			case apierrors.IsNotFound(err):
				return nil
			case err != nil:
				return err
			}
			return fmt.Errorf("policy %s/%s is still there", ns, p.Name)
		})
		deleteNamespace(t, k, ns)
		if err := k.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
		if err := k.Create(ctx, redisPolicy(ns, "chat", v1alpha1.LimitBackendRedis)); err != nil {
			t.Fatal(err)
		}
		fresh := waitForPassword(t, k, srv, ns)
		if fresh == old {
			t.Fatal("the recreated namespace got its old password")
		}
		if err := once(ctx, userClient(t, srv, ns, old), ns, "z"); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
			t.Fatalf("the old namespace's password against the new one: %v, want WRONGPASS", err)
		}
	})

	t.Run("a user left behind is swept", func(t *testing.T) {
		ghost := namespace(t, k, "ghost")
		if err := admin.EnsureUser(ctx, ghost, namespaceUID(t, k, ghost)); err != nil {
			t.Fatal(err)
		}
		wait.For(t, 30*time.Second, "", func() error {
			n, err := rc.Do(ctx, "ACL", "USERS").StringSlice()
			if err != nil {
				return err
			}
			if slices.Contains(n, wellknown.RedisUser(ghost)) {
				return fmt.Errorf("user %s of a namespace without policies is still there", wellknown.RedisUser(ghost))
			}
			return nil
		})
	})
}

// waitForPassword waits until ns's Secret holds the password derived from ns's current UID and Redis
// accepts it, and returns it.
// startBackend starts a password-protected Redis without the function library (the manager loads it),
// the manager's admin connection to it and an API server, and returns them with the Redis URL sidecars
// get (no credentials).
func startBackend(t *testing.T) (*testservers.Redis, *redisacl.Admin, string, *testenv.Env) {
	t.Helper()
	srv := testservers.StartRedis(t, testservers.RedisOptions{Password: adminPassword, NoFunctions: true})
	admin, err := redisacl.NewAdmin(srv.URL, master)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	public, err := redisacl.PublicURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	return srv, admin, public, env
}

func waitForPassword(t *testing.T, k client.Client, srv *testservers.Redis, ns string) string {
	t.Helper()
	want := password(t, k, ns)
	wait.For(t, 30*time.Second, "", func() error {
		if s := secret(t, k, ns); s == nil || string(s.Data[wellknown.RedisSecretKey]) != want {
			return fmt.Errorf("Secret %s/%s does not hold the password of the namespace's UID yet", ns, wellknown.RedisSecretName)
		}
		return once(context.Background(), userClient(t, srv, ns, want), ns, "w")
	})
	return want
}

// deleteNamespace deletes ns and, as envtest runs no namespace controller, finalizes it, then waits
// until it is gone.
func deleteNamespace(t *testing.T, k client.Client, ns string) {
	t.Helper()
	ctx := context.Background()
	n := &corev1.Namespace{}
	if err := k.Get(ctx, client.ObjectKey{Name: ns}, n); err != nil {
		t.Fatal(err)
	}
	if err := k.Delete(ctx, n); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 30*time.Second, "", func() error {
		if err := k.Get(ctx, client.ObjectKey{Name: ns}, n); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
		n.Spec.Finalizers = nil
		if err := k.SubResource("finalize").Update(ctx, n); err != nil {
			return err
		}
		return fmt.Errorf("namespace %s is still there", ns)
	})
}

func redisPolicy(ns, name string, backend v1alpha1.LimitBackend) *v1alpha1.ClaudeAccessPolicy {
	return &v1alpha1.ClaudeAccessPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.ClaudeAccessPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "chat"}},
			Credentials: v1alpha1.CredentialSource{Vault: &v1alpha1.VaultCredentials{AuthMethod: v1alpha1.VaultAuthCert, Role: "team", Path: "anthropic"}},
			Models:      v1alpha1.ModelPolicy{Allow: []v1alpha1.ModelPattern{"claude-haiku-*"}},
			Limits: &v1alpha1.LimitPolicy{Backend: backend,
				Rules: []v1alpha1.RateLimit{{Name: "rpm", Window: "Minute", Requests: ptr.To[int64](60)}}},
		},
	}
}

func namespace(t *testing.T, k client.Client, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := k.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// secret returns the namespace's Redis password Secret, or nil.
func secret(t *testing.T, k client.Client, ns string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	err := k.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: wellknown.RedisSecretName}, s)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rendered(t *testing.T, k client.Client, ns, policy string) (string, *policyconfig.Config) {
	t.Helper()
	var cfg *policyconfig.Config
	var raw string
	wait.For(t, 30*time.Second, "", func() error {
		cm := &corev1.ConfigMap{}
		if err := k.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: wellknown.ConfigMapName(policy)}, cm); err != nil {
			return err
		}
		raw = cm.Data[wellknown.ConfigKey]
		var err error
		cfg, err = policyconfig.Parse([]byte(raw))
		return err
	})
	return raw, cfg
}

// once calls claude-guard's replay function on key name of namespace ns, as the sidecar does.
func once(ctx context.Context, c *redis.Client, ns, name string) error {
	return c.FCall(ctx, redislib.Once, []string{limits.NamespaceKeyPrefix(ns) + "jti:" + name}, "60000").Err()
}

// namespaceUID returns the UID of namespace ns.
func namespaceUID(t *testing.T, k client.Client, ns string) string {
	t.Helper()
	var n corev1.Namespace
	if err := k.Get(context.Background(), client.ObjectKey{Name: ns}, &n); err != nil {
		t.Fatal(err)
	}
	return string(n.UID)
}

// password is the password ns's user must have: derived from the master secret, ns and its UID.
func password(t *testing.T, k client.Client, ns string) string {
	t.Helper()
	return redisacl.Password(master, ns, namespaceUID(t, k, ns))
}

// userClient logs in as ns's user with password pw.
func userClient(t *testing.T, srv *testservers.Redis, ns, pw string) *redis.Client {
	t.Helper()
	o := srv.Options()
	o.Username, o.Password = wellknown.RedisUser(ns), pw
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func passwordFile(t *testing.T, s *corev1.Secret) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), wellknown.RedisSecretKey)
	if err := os.WriteFile(path, s.Data[wellknown.RedisSecretKey], 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func limiter(t *testing.T, cfg *policyconfig.Config, pwFile string) *limits.Redis {
	t.Helper()
	rs, err := limits.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := limits.NewRedis(limits.RedisOptions{URL: cfg.Limits.RedisURL, Username: cfg.Limits.RedisUser, PasswordFile: pwFile,
		Rules: rs, Timeout: 2 * time.Second, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func hasEvent(ctx context.Context, k client.Client, ns, name, eventType, reason string) error {
	var list eventsv1.EventList
	if err := k.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return err
	}
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Type == eventType && e.Reason == reason {
			return nil
		}
	}
	return fmt.Errorf("no %s event %s for %s/%s among %d events", eventType, reason, ns, name, len(list.Items))
}
