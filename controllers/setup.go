package controllers

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// NewScheme returns a scheme with the core types and the claude-guard API.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// CacheOptions limits what the manager caches: only the ConfigMaps the operator renders, not every
// ConfigMap in the cluster. Pods and namespaces are watched as metadata only (see the reconcilers).
func CacheOptions() cache.Options {
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.ConfigMap{}: {Label: labels.SelectorFromSet(labels.Set{"app.kubernetes.io/managed-by": wellknown.ManagedBy})},
		// Only the kubelet's volume failures (mountfailures.go), not the cluster's every event.
		&corev1.Event{}: {Field: fields.OneTermEqualSelector("reason", reasonFailedMount)},
	}}
}

// Setup registers every reconciler with mgr. redis turns on per-namespace Redis users (nil: off);
// revocations is where revocations are shared with sidecars of the Redis backend, and spend where
// budgets' spend is read (nil: no Redis).
func Setup(mgr ctrl.Manager, opts effective.Options, redis *RedisUsersOptions, revocations RevocationStore, spend *SpendOptions) error {
	if err := (&TenantReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("claude-guard-tenant"),
		SharedBackend: opts.RedisURL != ""}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the tenant controller: %w", err)
	}
	if err := (&PolicyReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("claude-guard-policy"), Options: opts,
		APIReader: mgr.GetAPIReader(), SidecarConfig: ReadSidecarConfig}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the policy controller: %w", err)
	}
	if err := (&PriceTableReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("claude-guard-prices")}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the price table controller: %w", err)
	}
	if err := (&RevocationReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("claude-guard-revocation"),
		Store: revocations}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the revocation controller: %w", err)
	}
	if spend != nil {
		if err := (&PolicySpendReconciler{Client: mgr.GetClient(), SpendOptions: *spend}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("failed to set up the policy spend controller: %w", err)
		}
		if err := (&TenantSpendReconciler{Client: mgr.GetClient(), SpendOptions: *spend}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("failed to set up the tenant spend controller: %w", err)
		}
	}
	if redis != nil {
		if err := (&RedisUserReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
			Recorder: mgr.GetEventRecorder("claude-guard-redis-users"), RedisUsersOptions: *redis}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("failed to set up the Redis user controller: %w", err)
		}
	}
	return nil
}
