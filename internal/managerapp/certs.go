package managerapp

import (
	"fmt"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
)

// +kubebuilder:rbac:groups="",namespace=system,resources=secrets,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations,verbs=get;list;watch;update;patch

// addCertRotator makes the manager create and rotate the webhook's CA and serving certificate (OPA's
// cert-controller, as Gatekeeper does) in a Secret of its namespace, and keep the webhook configuration's
// caBundle in sync. certFiles copies the Secret into the webhook's cert directory; ready closes once the
// files there exist and the caBundle is injected.
func addCertRotator(mgr ctrl.Manager, o *Options, ready chan struct{}) error {
	err := rotator.AddRotator(mgr, &rotator.CertRotator{
		SecretKey:      types.NamespacedName{Namespace: o.OperatorNamespace, Name: o.WebhookSecret},
		CertDir:        o.WebhookCertDir,
		CAName:         "claude-guard-ca",
		CAOrganization: "claude-guard",
		DNSName:        fmt.Sprintf("%s.%s.svc", o.WebhookService, o.OperatorNamespace),
		IsReady:        ready,
		Webhooks:       []rotator.WebhookInfo{{Name: o.WebhookConfig, Type: rotator.Mutating}},
		// Every replica serves the webhook, so every replica needs the certificate, not only the leader.
		RequireLeaderElection: false,
		ControllerName:        o.rotatorName,
	})
	if err != nil {
		return fmt.Errorf("failed to set up webhook certificate rotation: %w", err)
	}
	return nil
}

// addCertFiles keeps the webhook's cert directory equal to the rotator's Secret (certFiles).
func addCertFiles(mgr ctrl.Manager, o *Options) error {
	cs, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("failed to create a clientset: %w", err)
	}
	cf := &certFiles{client: cs, secret: types.NamespacedName{Namespace: o.OperatorNamespace, Name: o.WebhookSecret}, dir: o.WebhookCertDir}
	if err := mgr.Add(cf); err != nil {
		return fmt.Errorf("failed to add the webhook certificate files: %w", err)
	}
	return nil
}
