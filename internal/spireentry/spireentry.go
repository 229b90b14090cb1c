// Package spireentry builds the SPIRE registration entry that gives one injected pod's sidecar its
// SPIFFE ID: a ClusterStaticEntry of the SPIRE Controller Manager (spire.spiffe.io/v1alpha1), which
// that controller writes into the SPIRE server. It is pure: the registration controller
// (controllers/registration.go) decides when an entry is due and applies what Entry returns.
//
// The entry selects exactly one container of one pod: the pod's UID, the sidecar's container name and
// its image. A pod UID is never reused, and the container name and image are what the controller
// verified against the webhook's render, so no other pod (a hand-written copy of the sidecar included)
// and no other container of the pod matches it.
package spireentry

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// GVK of the SPIRE Controller Manager's static entries.
var GVK = schema.GroupVersionKind{Group: "spire.spiffe.io", Version: "v1alpha1", Kind: "ClusterStaticEntry"}

// Labels and annotations on every entry the operator writes (with app.kubernetes.io/managed-by). Names
// of pods and policies can be longer than a label value may be, so they are annotations.
const (
	LabelPodNamespace = wellknown.Prefix + "pod-namespace"
	LabelPodUID       = wellknown.Prefix + "pod-uid"
	AnnotationPodName = wellknown.Prefix + "pod-name"
	// AnnotationSpecHash is the hash of the spec as written, so an entry edited since is told apart.
	AnnotationSpecHash = wellknown.Prefix + "spec-hash"
	// AnnotationPolicy (wellknown.AnnotationPolicy) names the policy that injected the pod.
)

// Options are the cluster's SPIRE settings (the manager's --spire-* flags).
type Options struct {
	// ClusterName is the cluster name of the SPIRE agents' k8s_psat node attestor: the agents' SPIFFE
	// IDs, the parents of the entries, are spiffe://<trust domain>/spire/agent/k8s_psat/<cluster>/<node UID>.
	ClusterName string
	// ClassName is set on the entries for a SPIRE Controller Manager that syncs only its class.
	ClassName string
}

// Validate reports what is missing.
func (o Options) Validate() error {
	if o.ClusterName == "" {
		return fmt.Errorf("the SPIRE cluster name (--spire-cluster-name) is required: it is part of the agents' SPIFFE IDs")
	}
	return nil
}

// Pod is what an entry is built from: the verified pod and what its policy renders.
type Pod struct {
	Namespace, Name, ServiceAccount string
	UID                             types.UID
	NodeUID                         types.UID
	// Image is the sidecar container's image, as the pod spec names it.
	Image string
	// Policy names the policy that injected the pod.
	Policy string
	// TrustDomain is the rendered config's identity.trustDomain.
	TrustDomain string
}

// Name is the name of pod uid's entry (cluster-scoped, one per pod).
func Name(uid types.UID) string { return wellknown.ConfigMapPrefix + string(uid) }

// SPIFFEID is the identity the sidecar expects: spiffe://<trust domain>/ns/<namespace>/sa/<service account>.
func SPIFFEID(trustDomain, namespace, serviceAccount string) string {
	return fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", trustDomain, namespace, serviceAccount)
}

// AgentID is the SPIFFE ID SPIRE's k8s_psat node attestor gives the agent on the node with nodeUID.
func AgentID(trustDomain, cluster string, nodeUID types.UID) string {
	return fmt.Sprintf("spiffe://%s/spire/agent/k8s_psat/%s/%s", trustDomain, cluster, nodeUID)
}

// DNSName is the X.509-SVID's DNS name. Vault's cert auth takes its alias from the certificate's Subject
// CN, which SPIRE sets only from the first DNS name.
func DNSName(namespace, serviceAccount string) string {
	return "ns-" + namespace + "-sa-" + serviceAccount
}

// Selectors are the k8s workload attestor selectors of the pod's sidecar container.
func Selectors(p Pod) []string {
	return []string{
		"k8s:pod-uid:" + string(p.UID),
		"k8s:container-name:" + wellknown.SidecarContainerName,
		"k8s:container-image:" + p.Image,
	}
}

// Entry returns the ClusterStaticEntry of pod p.
func Entry(o Options, p Pod) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(GVK)
	u.SetName(Name(p.UID))
	u.SetLabels(map[string]string{
		"app.kubernetes.io/managed-by": wellknown.ManagedBy,
		LabelPodNamespace:              p.Namespace,
		LabelPodUID:                    string(p.UID),
	})
	u.Object["spec"] = spec(o, p)
	u.SetAnnotations(map[string]string{AnnotationPodName: p.Name, wellknown.AnnotationPolicy: p.Policy, AnnotationSpecHash: specHash(u)})
	return u
}

func spec(o Options, p Pod) map[string]any {
	spec := map[string]any{
		"spiffeID":  SPIFFEID(p.TrustDomain, p.Namespace, p.ServiceAccount),
		"parentID":  AgentID(p.TrustDomain, o.ClusterName, p.NodeUID),
		"selectors": toAny(Selectors(p)),
		"dnsNames":  []any{DNSName(p.Namespace, p.ServiceAccount)},
	}
	if o.ClassName != "" {
		spec["className"] = o.ClassName
	}
	return spec
}

// Current reports whether e, an entry written for a pod, still names the trust domain and the cluster
// settings o: the rest of an entry (the pod's UID, service account, node and verified image) never
// changes for a pod, so such an entry needs neither the pod nor its node read again.
func Current(e *unstructured.Unstructured, o Options, trustDomain string) bool {
	if e.GetAnnotations()[AnnotationSpecHash] != specHash(e) {
		return false // edited since it was written: it is written again
	}
	id, _, _ := unstructured.NestedString(e.Object, "spec", "spiffeID")
	parent, _, _ := unstructured.NestedString(e.Object, "spec", "parentID")
	class, _, _ := unstructured.NestedString(e.Object, "spec", "className")
	return strings.HasPrefix(id, "spiffe://"+trustDomain+"/") &&
		strings.HasPrefix(parent, AgentID(trustDomain, o.ClusterName, "")) && class == o.ClassName
}

// SameSpec reports whether two entries ask SPIRE for the same registration.
func SameSpec(a, b *unstructured.Unstructured) bool { return specKey(a) == specKey(b) }

// specHash is a short hash of specKey.
func specHash(u *unstructured.Unstructured) string {
	sum := sha256.Sum256([]byte(specKey(u)))
	return hex.EncodeToString(sum[:8])
}

// specKey is the part of an entry's spec that Entry writes, as one comparable string.
func specKey(u *unstructured.Unstructured) string {
	var parts []string
	for _, f := range []string{"spiffeID", "parentID", "className"} {
		v, _, _ := unstructured.NestedString(u.Object, "spec", f)
		parts = append(parts, v)
	}
	for _, f := range []string{"selectors", "dnsNames"} {
		v, _, _ := unstructured.NestedStringSlice(u.Object, "spec", f)
		parts = append(parts, strings.Join(v, ","))
	}
	return strings.Join(parts, "\n")
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
