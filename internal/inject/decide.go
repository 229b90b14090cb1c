package inject

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// Namespace is what the decision needs to know of the pod's namespace.
type Namespace struct {
	Name   string
	Labels map[string]string
	// Policies are the ClaudeAccessPolicies in the namespace.
	Policies []v1alpha1.ClaudeAccessPolicy
	// Render returns a policy's rendered config, which decides the sidecar's mounts: in the webhook, the
	// policy's ConfigMap when its status vouches for it.
	Render func(*v1alpha1.ClaudeAccessPolicy) (*policyconfig.Config, error)
}

// Operator is what the decision needs to know of the operator.
type Operator struct {
	// Namespace the operator runs in; never injected.
	Namespace string
	Config    Config
	// Gateway is the chart's gateway service account ("namespace/name"), empty without a gateway. Its
	// pods run the sidecar's image as the gateway (under another container name); any pod of that
	// service account holds the gateway's identity already, so the image gives it nothing more.
	Gateway string
}

// Decision is the outcome for one pod, with the policy that applied, if any.
type Decision struct {
	Result
	Policy *v1alpha1.ClaudeAccessPolicy
}

// Mutate decides whether pod is injected and mutates it accordingly. A pod is injected when its
// namespace is opted in (label claudeguard.io/inject=enabled) or a policy there selects it, unless the
// pod opted out (label claudeguard.io/inject=false). kube-system, the operator's namespace and
// namespaces labelled claudeguard.io/inject=false or =disabled are never touched. A pod nobody asked to
// inject is returned unchanged with an empty Outcome. The error is a Refusal (the pod declares what only
// injection adds) or the policy's config not being available (Namespace.Render): the pod is then left
// unchanged, and the webhook refuses it rather than inject mounts it cannot know.
func Mutate(pod *corev1.Pod, ns Namespace, op Operator) (Decision, error) {
	if ns.Name == "kube-system" || ns.Name == op.Namespace {
		return Decision{}, nil
	}
	image := op.Config.Image
	if op.Gateway != "" && op.Gateway == ns.Name+"/"+pod.Spec.ServiceAccountName {
		image = "" // the gateway (Operator.Gateway)
	}
	if err := checkReserved(pod, image, func() error { return verifyOwn(pod, ns, op) }); err != nil {
		return Decision{}, err
	}
	if v := ns.Labels[wellknown.LabelInject]; v == "false" || v == "disabled" {
		return Decision{}, nil
	}
	policy := SelectPolicy(pod.Labels, ns.Policies)
	nsEnabled := ns.Labels[wellknown.LabelInject] == "enabled"
	if policy == nil && !nsEnabled {
		return Decision{}, nil
	}
	name := ""
	if policy != nil {
		name = policy.Name
	}
	if pod.Labels[wellknown.LabelInject] == "false" {
		return Decision{Result: Skip(pod, name, "the pod opted out with label "+wellknown.LabelInject+"=false"), Policy: policy}, nil
	}
	if policy == nil {
		return Decision{Result: Skip(pod, "", "namespace "+ns.Name+" asks for injection but no ClaudeAccessPolicy there selects this pod")}, nil
	}
	if hasContainer(pod.Spec.InitContainers, wellknown.SidecarContainerName) {
		// Re-invocation (checkReserved verified the sidecar): Apply adds no mounts.
		return Decision{Result: Apply(pod, policy, Plan{}, op.Config), Policy: policy}, nil
	}
	cfg, err := ns.Render(policy)
	if err != nil {
		return Decision{}, fmt.Errorf("ClaudeAccessPolicy %s/%s selects this pod, and its config cannot be used: %w", ns.Name, policy.Name, err)
	}
	return Decision{Result: Apply(pod, policy, PlanFor(cfg, op.Config), op.Config), Policy: policy}, nil
}

// verifyOwn checks that the pod's sidecar is exactly what injection wrote for the policy the pod names:
// the webhook sees its own output again when it is re-invoked, and anything else is a look-alike.
func verifyOwn(pod *corev1.Pod, ns Namespace, op Operator) error {
	name := pod.Annotations[wellknown.AnnotationPolicy]
	i := slices.IndexFunc(ns.Policies, func(p v1alpha1.ClaudeAccessPolicy) bool { return p.Name == name })
	if name == "" || i < 0 {
		return fmt.Errorf("the pod names no ClaudeAccessPolicy of namespace %s in annotation %s", ns.Name, wellknown.AnnotationPolicy)
	}
	p := &ns.Policies[i]
	cfg, err := ns.Render(p)
	if err != nil {
		return fmt.Errorf("the config of ClaudeAccessPolicy %s cannot be used: %w", p.Name, err)
	}
	return Verify(pod, p, PlanFor(cfg, op.Config), op.Config)
}
