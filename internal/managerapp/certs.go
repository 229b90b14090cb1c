package managerapp

import (
	"fmt"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
)

// +kubebuilder:rbac:groups="",namespace=system,resources=secrets,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations,verbs=get;list;watch;update;patch

// addCertRotator makes the manager create and rotate the webhook's CA and serving certificate (OPA's
// cert-controller, as Gatekeeper does) in a Secret of its namespace, and keep the webhook configuration's
// caBundle in sync. The Secret is mounted at the webhook's cert directory; ready closes once the files
// there match it.
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
