package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClaudeTenantSpec is what the platform team lets the namespaces of one tenant do. A ClaudeAccessPolicy
// in a selected namespace can only narrow it.
type ClaudeTenantSpec struct {
	// namespaceSelector selects the tenant's namespaces. A namespace selected by two tenants belongs to
	// neither: its policies are not admitted until the overlap is removed. It must name at least one
	// label: an empty selector would select every namespace, kube-system and other tenants' included.
	// +required
	// +kubebuilder:validation:XValidation:rule="(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && size(self.matchExpressions) > 0)",message="must select by at least one label (matchLabels or matchExpressions): an empty selector would select every namespace, kube-system and other tenants' included",reason=FieldValueRequired
	NamespaceSelector metav1.LabelSelector `json:"namespaceSelector"`

	// models bounds the models and max_tokens any policy of the tenant may allow.
	// +required
	Models TenantModels `json:"models"`

	// credentials bounds the credential sources the tenant's policies may use.
	// +optional
	Credentials TenantCredentials `json:"credentials,omitempty"`

	// limits are enforced for every policy of the tenant in addition to the policy's own limits.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(r, !has(r.key) || r.key != 'Session')",message="a tenant ceiling cannot be counted per Session: the client chooses its session ids, so such a ceiling bounds nothing; use Workload, EndUser or Namespace"
	Limits []RateLimit `json:"limits,omitempty"`

	// budgets are enforced for every policy of the tenant in addition to the policy's own budgets.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(r, !has(r.key) || r.key != 'Session')",message="a tenant ceiling cannot be counted per Session: the client chooses its session ids, so such a ceiling bounds nothing; use Workload, EndUser or Namespace"
	Budgets []Budget `json:"budgets,omitempty"`

	// limitsFailureMode is what the tenant's limits and budgets do while the operator's Redis is
	// unreachable: FailClosed (the default: the tenant's policies refuse requests, 503) or FailOpen (each
	// sidecar counts on its own meanwhile, so a fleet of N pods may admit N times a ceiling). The
	// tenant's limits and budgets always count in the operator's Redis, shared by every pod of the
	// namespace, whatever backend a policy chooses; without one they are not admitted (NoSharedBackend).
	// A policy's own failureMode applies only if it is no stricter than this: FailOpen needs both.
	// +optional
	// +kubebuilder:default=FailClosed
	LimitsFailureMode FailureMode `json:"limitsFailureMode,omitempty"`

	// maxRequestBytes bounds the request body size of every policy. Default 33554432 (32 MiB).
	// +optional
	// +kubebuilder:validation:Minimum=1024
	// +kubebuilder:validation:Maximum=33554432
	MaxRequestBytes *int64 `json:"maxRequestBytes,omitempty"`

	// spiffe sets the workload identity the tenant's sidecars must prove.
	// +optional
	SPIFFE *TenantSPIFFE `json:"spiffe,omitempty"`

	// allowShadowMode lets the tenant's policies use shadowMode, which stops enforcing (and so lifts
	// this tenant's ceilings) while recording decisions. Default false.
	// +optional
	AllowShadowMode bool `json:"allowShadowMode,omitempty"`
}

// TenantModels is the model ceiling of a tenant.
type TenantModels struct {
	// allow lists the models (names or globs) the tenant's policies may allow. Each policy allow entry
	// must be covered by one of these.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	Allow []ModelPattern `json:"allow"`

	// maxTokens is the largest max_tokens any request of the tenant may ask for. Unset: no ceiling
	// beyond the model's own.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	MaxTokens *int64 `json:"maxTokens,omitempty"`
}

// CredentialSourceKind names a credential source.
// +kubebuilder:validation:Enum=Vault;SecretRef;WorkloadIdentityFederation
type CredentialSourceKind string

// Credential source kinds.
const (
	SourceVault                      CredentialSourceKind = "Vault"
	SourceSecretRef                  CredentialSourceKind = "SecretRef"
	SourceWorkloadIdentityFederation CredentialSourceKind = "WorkloadIdentityFederation"
)

// TenantCredentials bounds the credentials of a tenant.
// +kubebuilder:validation:XValidation:rule="!has(self.allowedSources) || !self.allowedSources.exists(s, s == 'Vault') || has(self.vault)",message="vault must be set when allowedSources includes Vault",fieldPath=".vault",reason=FieldValueRequired
type TenantCredentials struct {
	// allowedSources lists the credential sources policies may use. Default: Vault only.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=3
	AllowedSources []CredentialSourceKind `json:"allowedSources,omitempty"`

	// vault confines the tenant's Vault use.
	// +optional
	Vault *TenantVault `json:"vault,omitempty"`

	// workloadIdentityFederation bounds where the tenant's policies may send their JWT-SVIDs. Without
	// it, a policy may exchange only at the upstream's own token endpoint.
	// +optional
	WorkloadIdentityFederation *TenantFederation `json:"workloadIdentityFederation,omitempty"`
}

// TenantFederation bounds the tenant's workload identity federation: a JWT-SVID sent to a token
// endpoint is a bearer credential there, so the platform decides which endpoints and audiences.
type TenantFederation struct {
	// tokenURLs are the token endpoints the tenant's policies may use (exact URLs). Default: only the
	// upstream's own, <upstream>/v1/oauth/token.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=2048
	// +kubebuilder:validation:items:XValidation:rule="isURL(self) && url(self).getScheme() == 'https'",message="must be an https URL"
	TokenURLs []string `json:"tokenURLs,omitempty"`

	// audiences the tenant's policies may put in their JWT-SVIDs. Default: any, except the audiences the
	// operator's Vault accepts (the manager's --vault-audiences), which are always refused.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Audiences []string `json:"audiences,omitempty"`
}

// TenantVault confines a tenant to its own part of Vault.
type TenantVault struct {
	// pathPrefix is the KV path prefix every policy path is placed under, e.g. "tenants/team-a". A
	// policy's path "anthropic" becomes "tenants/team-a/anthropic".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$') && !self.matches('(^|/)[.][.]?(/|$)')",message="must be a relative path of letters, digits, '_', '.' and '-' segments, with no leading '/', empty, '.' or '..' segments"
	PathPrefix string `json:"pathPrefix"`

	// mount is the KV v2 mount the tenant's secrets live in. Default "secret".
	// +optional
	// +kubebuilder:default=secret
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_.-]+$`
	Mount string `json:"mount,omitempty"`

	// roles lists the Vault roles the tenant's policies may log in as.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=128
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9_.-]+$`
	// +kubebuilder:validation:items:MinLength=1
	Roles []string `json:"roles"`
}

// TenantSPIFFE is the tenant's workload identity.
type TenantSPIFFE struct {
	// trustDomain of the tenant's SVIDs, e.g. "prod.example.org".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^[a-z0-9._-]+$`
	TrustDomain string `json:"trustDomain"`
}

// ClaudeTenantStatus is the observed state of a ClaudeTenant.
type ClaudeTenantStatus struct {
	// conditions are the tenant's observations: Ready says whether it is in force and, if not, why.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// namespaces is the number of namespaces the tenant selects.
	// +optional
	Namespaces int32 `json:"namespaces"`

	// policies is the number of ClaudeAccessPolicies in those namespaces.
	// +optional
	Policies int32 `json:"policies"`

	// spend is what the tenant's budgets counted per Namespace have spent in their current windows, one
	// entry per budget and namespace, tightest first (at most 32), read from the shared Redis about every
	// 30 seconds.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Spend []BudgetSpend `json:"spend,omitempty"`
}

// ClaudeTenant sets what the namespaces of one tenant can never exceed.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=claude-guard
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Namespaces",type=integer,JSONPath=`.status.namespaces`
// +kubebuilder:printcolumn:name="Policies",type=integer,JSONPath=`.status.policies`
// +kubebuilder:printcolumn:name="Spent",type=string,JSONPath=`.status.spend[0].spent`
// +kubebuilder:printcolumn:name="Remaining",type=string,JSONPath=`.status.spend[0].remaining`
// +kubebuilder:printcolumn:name="Tightest",type=string,JSONPath=`.status.spend[0].namespace`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClaudeTenant struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the tenant's ceiling.
	// +required
	Spec ClaudeTenantSpec `json:"spec"`

	// status is what the controller observed.
	// +optional
	Status ClaudeTenantStatus `json:"status,omitempty"`
}

// ClaudeTenantList is a list of ClaudeTenant.
//
// +kubebuilder:object:root=true
type ClaudeTenantList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClaudeTenant `json:"items"`
}
