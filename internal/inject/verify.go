package inject

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/utils/ptr"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// Verify reports whether the stored pod's sidecar is exactly what Apply renders for policy p, with the
// mounts of plan (PlanFor of p's rendered config), under cfg:
// the same container (image, command, arguments, environment, mounts, probes, hooks, security context)
// and the same sources behind each volume it mounts. The SPIRE registration controller issues a
// workload identity only to a sidecar that passes, so a tenant who writes a container named like the
// sidecar, with its image but other arguments, a lifecycle hook or another config volume, gets none.
//
// Fields the API server defaults (probe schemes, termination message path, default file modes) are
// compared after the same defaulting of both sides. The error names the first field that differs.
func Verify(pod *corev1.Pod, p *v1alpha1.ClaudeAccessPolicy, plan Plan, cfg Config) error {
	i := slices.IndexFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == wellknown.SidecarContainerName })
	if i < 0 {
		return fmt.Errorf("the pod has no init container named %s", wellknown.SidecarContainerName)
	}
	got := *pod.Spec.InitContainers[i].DeepCopy()

	// What the webhook writes for this pod: Apply on a copy without the sidecar and its volumes.
	want := pod.DeepCopy()
	want.Spec.InitContainers = slices.Delete(want.Spec.InitContainers, i, i+1)
	want.Spec.Volumes = slices.DeleteFunc(want.Spec.Volumes, func(v corev1.Volume) bool { return slices.Contains(SidecarVolumes, v.Name) })
	if r := Apply(want, p, plan, cfg); r.Outcome != Injected {
		return fmt.Errorf("policy %s would not inject this pod now: %s", p.Name, r.Reason)
	}
	wantC := want.Spec.InitContainers[0]
	got.VolumeMounts = slices.DeleteFunc(slices.Clone(got.VolumeMounts), func(m corev1.VolumeMount) bool {
		return isServiceAccountMount(m, pod.Spec.Volumes)
	})
	// Both sides defaulted: a stored pod is, and a pod at admission may not be yet (re-invocation).
	defaultContainer(&wantC, &got)
	defaultContainer(&got, &got)
	if f := firstDifference(wantC, got); f != "" {
		return fmt.Errorf("initContainers[%d] (%s): field %s differs from what injection renders", i, got.Name, f)
	}
	for _, m := range wantC.VolumeMounts {
		wv, gv := volume(want.Spec.Volumes, m.Name), volume(pod.Spec.Volumes, m.Name)
		if gv == nil {
			return fmt.Errorf("the pod has no volume %s, which the sidecar mounts", m.Name)
		}
		w, g := wv.VolumeSource.DeepCopy(), gv.VolumeSource.DeepCopy()
		defaultVolume(w)
		defaultVolume(g)
		if !equality.Semantic.DeepEqual(*w, *g) {
			return fmt.Errorf("volume %s differs from what injection renders", m.Name)
		}
	}
	return nil
}

// The ServiceAccount admission plugin mounts the pod's API token into every container (init containers
// too) after the webhook ran: a projected volume named kube-api-access-<random>.
const (
	serviceAccountMountPath    = "/var/run/secrets/kubernetes.io/serviceaccount"
	serviceAccountVolumePrefix = "kube-api-access-"
)

// isServiceAccountMount reports whether m is that mount: its name, path and read-only flag, and a volume
// of exactly the plugin's shape (the token, the cluster's CA and the namespace). Anything else a tenant
// mounts there, or calls by that name, is a difference.
func isServiceAccountMount(m corev1.VolumeMount, vols []corev1.Volume) bool {
	if !strings.HasPrefix(m.Name, serviceAccountVolumePrefix) || m.MountPath != serviceAccountMountPath || !m.ReadOnly ||
		m.SubPath != "" || m.SubPathExpr != "" {
		return false
	}
	v := volume(vols, m.Name)
	if v == nil || v.Projected == nil || len(v.Projected.Sources) != 3 {
		return false
	}
	src := v.Projected.Sources
	tok, ca, ns := src[0].ServiceAccountToken, src[1].ConfigMap, src[2].DownwardAPI
	return tok != nil && tok.Path == "token" && tok.Audience == "" &&
		ca != nil && ca.Name == "kube-root-ca.crt" && len(ca.Items) == 1 && ca.Items[0].Key == "ca.crt" && ca.Items[0].Path == "ca.crt" &&
		ns != nil && len(ns.Items) == 1 && ns.Items[0].Path == "namespace" && ns.Items[0].FieldRef != nil && ns.Items[0].FieldRef.FieldPath == "metadata.namespace"
}

// SidecarVolumes are the volumes Apply may add.
var SidecarVolumes = []string{VolumeConfig, VolumeSecret, VolumeToken, VolumeSPIFFE, VolumeRedis}

func volume(vs []corev1.Volume, name string) *corev1.Volume {
	if i := slices.IndexFunc(vs, func(v corev1.Volume) bool { return v.Name == name }); i >= 0 {
		return &vs[i]
	}
	return nil
}

// firstDifference returns the JSON name of the first field of corev1.Container in which a and b differ
// (semantically: 1Gi equals 1024Mi), or "".
func firstDifference(a, b corev1.Container) string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	t := va.Type()
	for f := range t.NumField() {
		if !equality.Semantic.DeepEqual(va.Field(f).Interface(), vb.Field(f).Interface()) {
			name, _, _ := strings.Cut(t.Field(f).Tag.Get("json"), ",")
			return name
		}
	}
	return ""
}

// defaultContainer applies to want what the API server defaults in a stored container (k8s.io/kubernetes
// pkg/apis/core/v1 defaults), so that a pod the webhook wrote compares equal to its render. got is only
// read, for the one default that depends on the cluster (procMount).
func defaultContainer(want, got *corev1.Container) {
	if want.TerminationMessagePath == "" {
		want.TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	if want.TerminationMessagePolicy == "" {
		want.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	if want.ImagePullPolicy == "" {
		want.ImagePullPolicy = corev1.PullIfNotPresent
		if strings.HasSuffix(want.Image, ":latest") || !strings.Contains(want.Image[strings.LastIndex(want.Image, "/")+1:], ":") {
			want.ImagePullPolicy = corev1.PullAlways
		}
	}
	for i := range want.Ports {
		if want.Ports[i].Protocol == "" {
			want.Ports[i].Protocol = corev1.ProtocolTCP
		}
	}
	for i := range want.Env {
		if fr := want.Env[i].ValueFrom; fr != nil && fr.FieldRef != nil && fr.FieldRef.APIVersion == "" {
			fr.FieldRef.APIVersion = "v1"
		}
	}
	// Requests default to the limits of resources that set only a limit.
	for name, q := range want.Resources.Limits {
		if _, ok := want.Resources.Requests[name]; !ok {
			if want.Resources.Requests == nil {
				want.Resources.Requests = corev1.ResourceList{}
			}
			want.Resources.Requests[name] = q
		}
	}
	for _, p := range []*corev1.Probe{want.StartupProbe, want.ReadinessProbe, want.LivenessProbe} {
		defaultProbe(p)
	}
	if sc := want.SecurityContext; sc != nil && sc.ProcMount == nil && got.SecurityContext != nil &&
		ptr.Deref(got.SecurityContext.ProcMount, "") == corev1.DefaultProcMount {
		sc.ProcMount = ptr.To(corev1.DefaultProcMount)
	}
}

func defaultProbe(p *corev1.Probe) {
	if p == nil {
		return
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = 1
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = 10
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = 3
	}
	if h := p.HTTPGet; h != nil {
		if h.Path == "" {
			h.Path = "/"
		}
		if h.Scheme == "" {
			h.Scheme = corev1.URISchemeHTTP
		}
	}
}

// defaultVolume applies the API server's volume defaults: file modes 0644 and the hostPath type "".
func defaultVolume(v *corev1.VolumeSource) {
	mode := ptr.To(corev1.ConfigMapVolumeSourceDefaultMode)
	switch {
	case v.ConfigMap != nil && v.ConfigMap.DefaultMode == nil:
		v.ConfigMap.DefaultMode = mode
	case v.Secret != nil && v.Secret.DefaultMode == nil:
		v.Secret.DefaultMode = mode
	case v.Projected != nil && v.Projected.DefaultMode == nil:
		v.Projected.DefaultMode = mode
	}
}
