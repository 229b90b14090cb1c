package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Condition types beyond ConditionReady.
const (
	// ConditionConflict on a ClaudeAccessPolicy is True when another policy in the namespace selects
	// some of the same pods.
	ConditionConflict = "Conflict"
	// ConditionDegraded on an admitted ClaudeAccessPolicy is True when part of it does not take effect
	// as written: a rule no call can reach, or a setting the operator had to downgrade.
	ConditionDegraded = "Degraded"
)

// Reasons of the conditions and events the operator writes: one list, so what a user can see in
// `kubectl describe` is all here.
const (
	// ClaudeAccessPolicy Ready, True.
	ReasonAdmitted = "Admitted"
	// ClaudeAccessPolicy Ready, False: the policy is not admitted, and its pods are denied every call.
	ReasonNoTenant              = "NoTenant"
	ReasonTenantConflict        = "TenantConflict"
	ReasonExceedsTenantCeiling  = "ExceedsTenantCeiling"
	ReasonCredentialsNotAllowed = "CredentialsNotAllowed"
	ReasonInvalidSelector       = "InvalidSelector"
	// The credential needs a SPIFFE identity (Vault cert or jwt auth, federation) and none applies.
	ReasonSPIFFERequired = "SPIFFERequired"
	// A USD budget applies and an allowed model has no price (ClaudePriceTable, built-in prices).
	ReasonUnpricedModel = "UnpricedModel"
	// The tenant sets limits or budgets and the operator has no shared backend (Redis) to count them in;
	// also the ClaudeTenant's Ready, False.
	ReasonNoSharedBackend = "NoSharedBackend"
	// ClaudeAccessPolicy Ready, False, although admitted: injected pods cannot start because a volume
	// of their sidecar does not mount (a secretRef Secret that does not exist, no SPIFFE CSI driver).
	ReasonSidecarVolumeUnavailable = "SidecarVolumeUnavailable"
	// ClaudeAccessPolicy Ready, False: the controller could not render or write the config (the
	// message has the API server's answer). The webhook refuses the policy's new pods meanwhile.
	ReasonRenderFailed = "RenderFailed"

	// Event on a ClaudeAccessPolicy: a ConfigMap under its rendered config's name was not the
	// controller's, and was replaced (status.renderedConfig.replacedForeign).
	ReasonReplacedForeignConfig = "ReplacedForeignConfig"

	// ClaudeAccessPolicy Degraded.
	ReasonAsWritten        = "AsWritten"
	ReasonLimitsDowngraded = "LimitsDowngraded"
	ReasonRuleHasNoEffect  = "RuleHasNoEffect"

	// ClaudeAccessPolicy Conflict.
	ReasonNoConflict        = "NoConflict"
	ReasonOverlappingPolicy = "OverlappingSelector"

	// ClaudeTenant Ready.
	ReasonTenantReady       = "Selecting"
	ReasonNamespaceConflict = "NamespaceConflict"

	// ClaudePriceTable Ready, True: its prices are rendered into every policy with a USD budget.
	ReasonPricesInForce = "InForce"

	// ClaudeRevocation Ready. True: in force for the namespace's policies that trust its issuer.
	ReasonRevoked = "Revoked"
	// False: no policy of the namespace trusts the issuer (nothing to refuse yet), the revocation has
	// expired, or the namespace has more revocations in force than the operator renders
	// (MaxRevocationsPerNamespace; the oldest are kept).
	ReasonNoPolicyTrustsIssuer = "NoPolicyTrustsIssuer"
	ReasonRevocationExpired    = "Expired"
	ReasonTooManyRevocations   = "TooManyRevocations"

	// Events of the Redis user controller, on a namespace's Redis-backed policies.
	ReasonSharedLimitsUnavailable = "SharedLimitsUnavailable"
	ReasonSharedLimitsReady       = "SharedLimitsReady"

	// Event of the injection webhook, on a skipped pod's controller (or its policy, for a bare pod).
	ReasonInjectionSkipped = "InjectionSkipped"

	// Events of the SPIFFE registration controller, on pods.
	ReasonSidecarNotVerified = "SidecarNotVerified"
	ReasonRegistered         = "SPIFFERegistered"
)

// GetConditions returns the policy's status conditions (internal/conditions).
func (p *ClaudeAccessPolicy) GetConditions() []metav1.Condition { return p.Status.Conditions }

// SetConditions replaces the policy's status conditions.
func (p *ClaudeAccessPolicy) SetConditions(c []metav1.Condition) { p.Status.Conditions = c }

// GetConditions returns the tenant's status conditions (internal/conditions).
func (t *ClaudeTenant) GetConditions() []metav1.Condition { return t.Status.Conditions }

// SetConditions replaces the tenant's status conditions.
func (t *ClaudeTenant) SetConditions(c []metav1.Condition) { t.Status.Conditions = c }
