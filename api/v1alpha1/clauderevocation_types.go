package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClaudeRevocationSpec names the end-user tokens to refuse: one token (issuer and jti) or every token of
// one user (issuer and subject). It cannot be changed: a revocation edited to name another token would
// quietly lift the first one. Delete it to lift it.
//
// +kubebuilder:validation:XValidation:rule="has(self.jti) != has(self.subject)",message="set exactly one of jti (one token) and subject (every token of one user)"
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: delete this revocation to lift it, and create another"
type ClaudeRevocationSpec struct {
	// issuer is the token's issuer, exactly as the policy's endUser.issuers[].url lists it (its iss
	// claim).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s]+$`
	Issuer string `json:"issuer"`

	// jti revokes the one token carrying this jti claim, for the rest of its lifetime.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	JTI string `json:"jti,omitempty"`

	// subject revokes every token of one user: tokens whose subject claim (the policy's
	// endUser.subjectClaim, default sub: what audit records show as endUser) has this value.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Subject string `json:"subject,omitempty"`

	// expiresAt ends the revocation: after it the token or user is accepted again, and the revocation
	// stays only as a record. Without it the revocation lasts until it is deleted. For a jti, the
	// token's own exp is a good value: the token is refused for the rest of its lifetime either way.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// reason is for the people reading the revocation. It is never returned to the caller and not
	// written to audit records (they name the revocation).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason,omitempty"`
}

// ClaudeRevocationStatus is what the controller observed.
type ClaudeRevocationStatus struct {
	// conditions of the revocation. Ready is True while it is in force for at least one policy of
	// the namespace that trusts its issuer.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// policies lists the namespace's policies that trust the revocation's issuer, which refuse the
	// revoked tokens.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	Policies []string `json:"policies,omitempty"`

	// sharedAt is when the revocation was first written to the namespace's Redis, from which sidecars
	// with the Redis limit backend read it within seconds. Sidecars with the Local backend get it with
	// their rendered config instead (the kubelet refreshes it in about a minute).
	// +optional
	SharedAt *metav1.Time `json:"sharedAt,omitempty"`
}

// ClaudeRevocation refuses end-user tokens in its namespace: one token (jti) or every token of one
// user (subject) of one issuer, on every policy of the namespace that trusts that issuer, until it is
// deleted or expires.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=crev,categories=claude-guard
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Issuer",type=string,JSONPath=`.spec.issuer`
// +kubebuilder:printcolumn:name="Subject",type=string,JSONPath=`.spec.subject`
// +kubebuilder:printcolumn:name="JTI",type=string,JSONPath=`.spec.jti`
// +kubebuilder:printcolumn:name="Expires",type=date,JSONPath=`.spec.expiresAt`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClaudeRevocation struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what is revoked.
	// +required
	Spec ClaudeRevocationSpec `json:"spec"`

	// status is what the controller observed.
	// +optional
	Status ClaudeRevocationStatus `json:"status,omitempty"`
}

// ClaudeRevocationList is a list of ClaudeRevocation.
//
// +kubebuilder:object:root=true
type ClaudeRevocationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClaudeRevocation `json:"items"`
}

// Active reports whether the revocation is in force at now.
func (r *ClaudeRevocation) Active(now metav1.Time) bool {
	return r.DeletionTimestamp == nil && (r.Spec.ExpiresAt == nil || now.Before(r.Spec.ExpiresAt))
}

// GetConditions returns the revocation's status conditions (internal/conditions).
func (r *ClaudeRevocation) GetConditions() []metav1.Condition { return r.Status.Conditions }

// SetConditions replaces the revocation's status conditions.
func (r *ClaudeRevocation) SetConditions(c []metav1.Condition) { r.Status.Conditions = c }
