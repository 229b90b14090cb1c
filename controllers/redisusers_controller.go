package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/redisacl"
	"github.com/claude-guard/claude-guard/internal/redisbroker"
	"github.com/claude-guard/claude-guard/internal/redislib"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// DefaultRedisResync is how often each namespace's Redis user is set again. ACL users live in Redis
// memory: a Redis that restarted without them refuses the namespace's sidecars until this runs.
const DefaultRedisResync = time.Minute

// RedisUsersOptions turn on per-namespace Redis ACL users (nil: the manager renders --redis-url as is).
type RedisUsersOptions struct {
	Admin *redisacl.Admin
	// Resync is how often every namespace's user is set again; DefaultRedisResync when zero. A
	// namespace whose Redis update failed is retried after min(Resync, 10s).
	Resync time.Duration
}

// RedisUserReconciler keeps, for every namespace whose rendered configs use the Redis backend with a
// namespace user (limits.redisUser), a Redis ACL user restricted to the namespace's keys and to calling
// claude-guard's Redis functions, and the Secret holding its password, and removes both when the
// namespace's last such config goes. It also keeps the function library loaded, which those users call.
//
// It works per namespace (requests carry the namespace as Name) and reads the rendered ConfigMaps, not
// the policies: a config is what sidecars run, and an unadmitted policy renders a deny-all config
// without limits, which needs no user.
//
// The Secret has no owner: it belongs to the namespace rather than to one policy (several policies
// share it, and it must outlive any one of them). It is removed explicitly with the last Redis policy,
// and with the namespace otherwise.
type RedisUserReconciler struct {
	client.Client
	// APIReader reads Secrets from the API server: the manager caches no Secrets (a cluster-wide
	// Secret informer would hold every tenant's credentials in memory).
	APIReader client.Reader
	Recorder  events.EventRecorder
	RedisUsersOptions

	// failing holds the namespaces whose last Redis update failed, so an outage is reported once when
	// it starts and once when it ends rather than at every retry.
	failing sync.Map
}

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;patch;delete

// Reconcile brings one namespace's Redis user and Secret in line with its rendered configs.
func (r *RedisUserReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ns := req.Name
	policies, mounted, err := r.redisPolicies(ctx, ns)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(policies) == 0 {
		return ctrl.Result{}, r.remove(ctx, ns)
	}
	uid, err := r.namespaceUID(ctx, ns)
	if err != nil {
		return ctrl.Result{}, err
	}
	// The Secret first: pods mount it (optionally) and pick the password up once it exists, and a
	// Redis outage must not keep it from being written. Where every sidecar gets the password from the
	// credential broker no Secret is kept, so the namespace's admins have nothing to read.
	if mounted {
		err = r.applySecret(ctx, ns, uid)
	} else {
		_, err = r.deleteSecret(ctx, ns)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.prepareRedis(ctx, ns, uid); err != nil {
		r.reportFailure(ctx, ns, policies, err)
		// Not returned: an unreachable Redis would otherwise back off exponentially (to many minutes)
		// and the error would be logged at every retry. A fixed retry heals a restarted Redis quickly.
		return ctrl.Result{RequeueAfter: min(r.resync(), 10*time.Second)}, nil
	}
	r.reportRecovery(ctx, ns, policies)
	return ctrl.Result{RequeueAfter: r.resync()}, nil
}

// prepareRedis makes sure Redis has the function library the namespace's sidecars call, then their user.
// Both live in Redis memory: a Redis restarted without persistence has neither until this runs again.
func (r *RedisUserReconciler) prepareRedis(ctx context.Context, ns, uid string) error {
	loaded, err := r.Admin.EnsureFunctions(ctx)
	if err != nil {
		return err
	}
	if loaded {
		ctrl.LoggerFrom(ctx).Info("Loaded claude-guard's function library into Redis", "library", redislib.Library, "redis", r.Admin.Addr())
	}
	return r.Admin.EnsureUser(ctx, ns, uid)
}

// namespaceUID returns the UID of namespace ns, which its Redis password is derived from (a namespace
// deleted and created again gets a new one). It reads the manager's metadata cache of namespaces.
func (r *RedisUserReconciler) namespaceUID(ctx context.Context, ns string) (string, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := r.Get(ctx, types.NamespacedName{Name: ns}, m); err != nil {
		// Not found too: its ConfigMaps are in the cache, so the namespace is too, soon.
		return "", fmt.Errorf("failed to get namespace %s: %w", ns, err)
	}
	return string(m.UID), nil
}

func (r *RedisUserReconciler) resync() time.Duration {
	if r.Resync > 0 {
		return r.Resync
	}
	return DefaultRedisResync
}

// redisPolicies returns the policies of ns whose rendered config uses the Redis backend as the
// namespace's user, and whether any of them reads the password from the mounted Secret (rather than
// from the credential broker).
func (r *RedisUserReconciler) redisPolicies(ctx context.Context, ns string) ([]v1alpha1.ClaudeAccessPolicy, bool, error) {
	cfgs, err := NamespaceUserConfigs(ctx, r.Client, ns)
	if err != nil || len(cfgs) == 0 {
		return nil, false, err
	}
	mounted := false
	for _, c := range cfgs {
		mounted = mounted || c.Limits.RedisBroker == nil
	}
	var list v1alpha1.ClaudeAccessPolicyList
	if err := r.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, false, fmt.Errorf("failed to list policies in %s: %w", ns, err)
	}
	var out []v1alpha1.ClaudeAccessPolicy
	for _, p := range list.Items {
		if cfgs[p.Name] != nil && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out, mounted, nil
}

// NamespaceUserConfigs returns the rendered configs of namespace ns that use the Redis backend as the
// namespace's user, by policy name. It reads the ConfigMaps the controller writes (the manager's
// cache): a config is what sidecars run, and an unadmitted policy renders a deny-all config without
// limits, which needs no user. The Redis credential broker asks it too.
func NamespaceUserConfigs(ctx context.Context, c client.Reader, ns string) (map[string]*policyconfig.Config, error) {
	var cms corev1.ConfigMapList
	if err := c.List(ctx, &cms, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/managed-by": wellknown.ManagedBy}); err != nil {
		return nil, fmt.Errorf("failed to list rendered ConfigMaps in %s: %w", ns, err)
	}
	out := map[string]*policyconfig.Config{}
	for _, cm := range cms.Items {
		if cm.DeletionTimestamp != nil {
			continue
		}
		cfg, err := policyconfig.Parse([]byte(cm.Data[wellknown.ConfigKey]))
		if err != nil {
			// The controller wrote it; an unparsable one cannot be running with Redis.
			continue
		}
		if cfg.Limits.Backend == policyconfig.BackendRedis && cfg.Limits.RedisUser == wellknown.RedisUser(ns) {
			out[cm.Annotations[wellknown.AnnotationPolicy]] = cfg
		}
	}
	return out, nil
}

// applySecret writes the namespace's password Secret with server-side apply: a no-op when unchanged,
// and a Secret someone edited or deleted is restored at the next resync.
func (r *RedisUserReconciler) applySecret(ctx context.Context, ns, uid string) error {
	s := corev1ac.Secret(wellknown.RedisSecretName, ns).
		WithLabels(map[string]string{"app.kubernetes.io/managed-by": wellknown.ManagedBy}).
		WithType(corev1.SecretTypeOpaque).
		WithData(map[string][]byte{wellknown.RedisSecretKey: []byte(r.Admin.Password(ns, uid))})
	if err := r.Apply(ctx, s, FieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("failed to apply Secret %s/%s: %w", ns, wellknown.RedisSecretName, err)
	}
	return nil
}

// remove deletes the namespace's Secret (only if the operator made it), then its Redis user.
func (r *RedisUserReconciler) remove(ctx context.Context, ns string) error {
	hadSecret, err := r.deleteSecret(ctx, ns)
	if err != nil {
		return err
	}
	if err := r.Admin.DeleteUser(ctx, ns); err != nil {
		if !hadSecret {
			// Most namespaces reconciled here never had a user (their policies count locally): an
			// outage must not turn each of their ConfigMap events into retries and error logs. A user
			// left behind is found by the sweep once Redis answers.
			ctrl.LoggerFrom(ctx).V(1).Info("Could not make sure the namespace has no Redis user; the sweep retries", "namespace", ns, "error", err.Error())
			return nil
		}
		return err
	}
	r.failing.Delete(ns)
	if hadSecret {
		ctrl.LoggerFrom(ctx).Info("Removed the Redis user of a namespace without Redis policies", "namespace", ns)
	}
	return nil
}

// deleteSecret deletes the namespace's password Secret if the operator made it, and reports whether it
// did.
func (r *RedisUserReconciler) deleteSecret(ctx context.Context, ns string) (bool, error) {
	var s corev1.Secret
	key := types.NamespacedName{Namespace: ns, Name: wellknown.RedisSecretName}
	if err := r.APIReader.Get(ctx, key, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("failed to get Secret %s: %w", key, err)
	}
	if s.Labels["app.kubernetes.io/managed-by"] != wellknown.ManagedBy {
		return false, nil
	}
	// The UID precondition keeps a Secret recreated meanwhile by someone else.
	if err := r.Delete(ctx, &s, client.Preconditions{UID: &s.UID}); err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("failed to delete Secret %s: %w", key, err)
	}
	return true, nil
}

// reportFailure logs and records on each policy, once per outage, that shared limits are unavailable.
// err names the user and scheme://host:port only; the Admin never puts a password in it.
func (r *RedisUserReconciler) reportFailure(ctx context.Context, ns string, policies []v1alpha1.ClaudeAccessPolicy, err error) {
	if _, already := r.failing.LoadOrStore(ns, true); already {
		return
	}
	ctrl.LoggerFrom(ctx).Error(err, "Failed to prepare Redis for the namespace's sidecars; retrying", "namespace", ns)
	for i := range policies {
		r.Recorder.Eventf(&policies[i], nil, corev1.EventTypeWarning, v1alpha1.ReasonSharedLimitsUnavailable, eventActionReconcile,
			"The Redis user %s or claude-guard's Redis functions could not be set, so sidecars may not reach the shared limits (the policy's failureMode applies); retrying: %v",
			wellknown.RedisUser(ns), err)
	}
}

func (r *RedisUserReconciler) reportRecovery(ctx context.Context, ns string, policies []v1alpha1.ClaudeAccessPolicy) {
	if _, was := r.failing.LoadAndDelete(ns); !was {
		return
	}
	ctrl.LoggerFrom(ctx).Info("Set the namespace's Redis user again", "namespace", ns)
	for i := range policies {
		r.Recorder.Eventf(&policies[i], nil, corev1.EventTypeNormal, v1alpha1.ReasonSharedLimitsReady, eventActionReconcile,
			"The Redis user %s is set again", wellknown.RedisUser(ns))
	}
}

// BrokerCredentials is the Redis credential broker's lookup (redisbroker.Lookup): namespace ns's user
// and password, for a sidecar whose SVID is of trust domain td, if a config of ns gets its password
// from the broker in that trust domain.
func (r *RedisUserReconciler) BrokerCredentials(ctx context.Context, ns string, td spiffeid.TrustDomain) (redisbroker.Credentials, error) {
	cfgs, err := NamespaceUserConfigs(ctx, r.Client, ns)
	if err != nil {
		return redisbroker.Credentials{}, err
	}
	entitled := false
	for _, c := range cfgs {
		entitled = entitled || (c.Limits.RedisBroker != nil && c.Identity.TrustDomain == td.Name())
	}
	if !entitled {
		return redisbroker.Credentials{}, fmt.Errorf("namespace %s: %w", ns, redisbroker.ErrNotEntitled)
	}
	uid, err := r.namespaceUID(ctx, ns)
	if err != nil {
		return redisbroker.Credentials{}, err
	}
	return redisbroker.Credentials{Username: wellknown.RedisUser(ns), Password: r.Admin.Password(ns, uid)}, nil
}
