// Package v1alpha1 contains the claude-guard API: ClaudeAccessPolicy and ClaudeRevocation (namespaced,
// written by tenants), ClaudeTenant and ClaudePriceTable (cluster-scoped, written by the platform team).
//
// This package imports only apimachinery and core types, never controller-runtime, so that clients and
// the API's own tests can depend on it cheaply.
//
// +kubebuilder:object:generate=true
// +groupName=claudeguard.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "claudeguard.io", Version: "v1alpha1"}

	// SchemeBuilder registers the types with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types in this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&ClaudeAccessPolicy{}, &ClaudeAccessPolicyList{},
		&ClaudeTenant{}, &ClaudeTenantList{},
		&ClaudeRevocation{}, &ClaudeRevocationList{},
		&ClaudePriceTable{}, &ClaudePriceTableList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
