package inject

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// Outcome is what Apply did to a pod.
type Outcome string

// Outcomes.
const (
	// Injected: the sidecar was added.
	Injected Outcome = "Injected"
	// AlreadyInjected: re-invocation; only app containers added since were given the environment.
	AlreadyInjected Outcome = "AlreadyInjected"
	// Skipped: the pod is left without the sidecar and the reason is recorded on it.
	Skipped Outcome = "Skipped"
)

// Result of Apply.
type Result struct {
	Outcome Outcome
	// Reason explains a skip; it is also written to the pod's status annotation.
	Reason string
}

// SelectPolicy returns the policy that applies to a pod with podLabels: of the policies whose selector
// matches, the oldest (then by name). The controller reports the others as conflicting.
func SelectPolicy(podLabels map[string]string, policies []v1alpha1.ClaudeAccessPolicy) *v1alpha1.ClaudeAccessPolicy {
	var best *v1alpha1.ClaudeAccessPolicy
	for i := range policies {
		p := &policies[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(podLabels)) {
			continue
		}
		if best == nil || Precedes(p, best) {
			best = p
		}
	}
	return best
}

// Precedes reports whether policy a wins over b for a pod both select: the older policy applies, and
// the name breaks ties.
func Precedes(a, b *v1alpha1.ClaudeAccessPolicy) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// Skip records on the pod why it was not injected.
func Skip(pod *corev1.Pod, policy, reason string) Result {
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[wellknown.AnnotationStatus] = wellknown.StatusSkipped + ": " + reason
	if policy != "" {
		pod.Annotations[wellknown.AnnotationPolicy] = policy
	}
	return Result{Outcome: Skipped, Reason: reason}
}

// Apply injects the sidecar for policy p, with the mounts of plan (PlanFor of p's rendered config), into
// pod, or records why it cannot. It never overwrites a field the pod already sets and is idempotent:
// applying it to its own output changes nothing.
func Apply(pod *corev1.Pod, p *v1alpha1.ClaudeAccessPolicy, plan Plan, cfg Config) Result {
	if hasContainer(pod.Spec.InitContainers, wellknown.SidecarContainerName) {
		setAppEnv(pod, cfg.Port)
		return Result{Outcome: AlreadyInjected}
	}
	if reason := blocker(pod, cfg.Port); reason != "" {
		return Skip(pod, p.Name, reason)
	}
	vols, mounts := volumes(p.Name, plan, cfg)
	pod.Spec.Volumes = append(pod.Spec.Volumes, vols...)
	// First among the init containers, so later init containers can use the proxy too.
	sc := sidecar(cfg, plan, mounts)
	// Mounted credential files are named in the arguments, so the pod spec says exactly what runs.
	if plan.Secret != nil {
		sc.Args = append(sc.Args, "--secret-dir="+wellknown.SecretMountDir)
	}
	if plan.VaultToken {
		sc.Args = append(sc.Args, "--vault-token-file="+wellknown.ServiceAccountTokenFile)
	}
	if plan.RedisUser {
		sc.Args = append(sc.Args, "--redis-password-file="+wellknown.RedisPasswordFile)
	}
	if cfg.MaxProcs > 0 {
		sc.Args = append(sc.Args, fmt.Sprintf("--max-procs=%d", cfg.MaxProcs))
	}
	pod.Spec.InitContainers = append([]corev1.Container{sc}, pod.Spec.InitContainers...)
	setAppEnv(pod, cfg.Port)
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[wellknown.AnnotationStatus] = wellknown.StatusInjected
	pod.Annotations[wellknown.AnnotationPolicy] = p.Name
	pod.Annotations[AnnotationSidecarImage] = cfg.Image
	markScrapeable(pod, cfg.PrometheusAnnotations)
	return Result{Outcome: Injected}
}

// markScrapeable labels the pod as running a sidecar (what the chart's PodMonitor selects) and, with
// annotations, adds the prometheus.io ones for the sidecar's metrics port, leaving any the pod set alone:
// a pod that already exports its own metrics by annotation keeps them.
func markScrapeable(pod *corev1.Pod, annotations bool) {
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[wellknown.LabelSidecar] = wellknown.StatusInjected
	if !annotations {
		return
	}
	if _, set := pod.Annotations[AnnotationPrometheusScrape]; set {
		return
	}
	pod.Annotations[AnnotationPrometheusScrape] = "true"
	pod.Annotations[AnnotationPrometheusPort] = strconv.Itoa(int(wellknown.SidecarMetricsPort))
	pod.Annotations[AnnotationPrometheusPath] = "/metrics"
}

// The annotations Prometheus' kubernetes_sd pod relabelling conventionally reads.
const (
	AnnotationPrometheusScrape = "prometheus.io/scrape"
	AnnotationPrometheusPort   = "prometheus.io/port"
	AnnotationPrometheusPath   = "prometheus.io/path"
)

// blocker returns why the pod cannot take the sidecar, or "".
func blocker(pod *corev1.Pod, proxyPort int32) string {
	if pod.Spec.HostNetwork {
		return "hostNetwork pods share the node's loopback, so the proxy would be reachable by every hostNetwork pod on the node"
	}
	// A process namespace shared with the app, or the node's, lets other processes read the sidecar's
	// memory and files through /proc, and with them the API key.
	if pod.Spec.HostPID {
		return "hostPID pods share the node's process namespace, where the sidecar's memory and files, and its API key, are readable through /proc"
	}
	if ptr.Deref(pod.Spec.ShareProcessNamespace, false) {
		return "shareProcessNamespace lets the pod's other containers read the sidecar's memory and files, and its API key, through /proc"
	}
	for _, v := range pod.Spec.Volumes {
		if strings.HasPrefix(v.Name, ReservedVolumePrefix) {
			return fmt.Sprintf("the pod already has a volume named %s; volume names starting with %s are reserved for the sidecar's", v.Name, ReservedVolumePrefix)
		}
	}
	if m := mountsReserved(pod); m != "" {
		return fmt.Sprintf("container %s mounts a volume named like the sidecar's (%s*), which would give it the sidecar's credentials", m, ReservedVolumePrefix)
	}
	for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
		for _, port := range c.Ports {
			if port.ContainerPort == proxyPort || port.ContainerPort == wellknown.SidecarMetricsPort {
				return fmt.Sprintf("container %s uses port %d, which the sidecar needs", c.Name, port.ContainerPort)
			}
		}
	}
	return ""
}

func sidecar(cfg Config, plan Plan, mounts []corev1.VolumeMount) corev1.Container {
	metrics := intstr.FromInt32(wellknown.SidecarMetricsPort)
	probe := func(path string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: metrics}},
			PeriodSeconds:    period,
			FailureThreshold: failures,
			TimeoutSeconds:   1,
		}
	}
	env := []corev1.EnvVar{
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "POD_SERVICE_ACCOUNT", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.serviceAccountName"}}},
		{Name: EnvWorkload, Value: "ns/$(POD_NAMESPACE)/sa/$(POD_SERVICE_ACCOUNT)"},
	}
	env = append(env, cfg.Telemetry.Env()...)
	if plan.SPIFFE {
		env = append(env, corev1.EnvVar{Name: wellknown.EnvSPIFFESocket, Value: "unix://" + wellknown.SPIFFESocketDir + "/" + cfg.SocketFile})
	}
	return corev1.Container{
		Name:            wellknown.SidecarContainerName,
		Image:           cfg.Image,
		ImagePullPolicy: cfg.ImagePullPolicy,
		Command:         slices.Clone(cfg.Command),
		Args: []string{
			"--config=" + wellknown.ConfigFile,
			"--listen=" + ProxyListen(cfg.Port),
			"--metrics-listen=" + MetricsListen(),
			"--workload=$(" + EnvWorkload + ")",
		},
		Env:   env,
		Ports: []corev1.ContainerPort{{Name: "cg-metrics", ContainerPort: wellknown.SidecarMetricsPort, Protocol: corev1.ProtocolTCP}},
		// A native sidecar: it starts before the app containers, keeps running beside them, and does not
		// keep a Job's pod from completing.
		RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
		// App containers start only once the proxy has its config and a credential.
		StartupProbe:   probe("/readyz", 1, 120),
		ReadinessProbe: probe("/readyz", 5, 3),
		LivenessProbe:  probe("/healthz", 10, 3),
		Resources:      *cfg.Resources.DeepCopy(),
		VolumeMounts:   mounts,
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			RunAsUser:                ptr.To(cfg.RunAsUser),
			ReadOnlyRootFilesystem:   ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

// volumes returns the volumes the sidecar needs and their mounts. Credentials are mounted into the
// sidecar only: app containers never see them.
func volumes(policy string, plan Plan, cfg Config) ([]corev1.Volume, []corev1.VolumeMount) {
	vols := []corev1.Volume{{
		Name: VolumeConfig,
		VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: wellknown.ConfigMapName(policy)},
			Items:                []corev1.KeyToPath{{Key: wellknown.ConfigKey, Path: wellknown.ConfigKey}},
		}},
	}}
	mounts := []corev1.VolumeMount{{Name: VolumeConfig, MountPath: wellknown.ConfigMountDir, ReadOnly: true}}

	// Secret files are world-readable (0444): the pod sets no fsGroup (it is the tenant's), so the kubelet
	// writes them owned by root, and 0440 would lock out the sidecar's non-root user. Only the sidecar
	// container mounts these volumes; no other container of the pod sees the files.
	if s := plan.Secret; s != nil {
		vols = append(vols, corev1.Volume{Name: VolumeSecret, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName:  s.Name,
			Items:       []corev1.KeyToPath{{Key: s.Key, Path: "api-key"}},
			DefaultMode: ptr.To[int32](0o444),
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: VolumeSecret, MountPath: wellknown.SecretMountDir, ReadOnly: true})
	}
	if plan.VaultToken {
		vols = append(vols, corev1.Volume{Name: VolumeToken, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: cfg.VaultAudience, ExpirationSeconds: ptr.To[int64](3600), Path: "token",
			}}},
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: VolumeToken, MountPath: wellknown.ServiceAccountTokenDir, ReadOnly: true})
	}
	if plan.RedisUser {
		// Optional: the controller creates the Secret once the policy is admitted (an unadmitted policy
		// renders no limits at all), and the pod must not wait for it. The kubelet fills the volume in
		// when the Secret appears, and the sidecar reads the file for every new Redis connection.
		vols = append(vols, corev1.Volume{Name: VolumeRedis, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName:  wellknown.RedisSecretName,
			Items:       []corev1.KeyToPath{{Key: wellknown.RedisSecretKey, Path: wellknown.RedisSecretKey}},
			DefaultMode: ptr.To[int32](0o444),
			Optional:    ptr.To(true),
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: VolumeRedis, MountPath: wellknown.RedisPasswordDir, ReadOnly: true})
	}
	switch {
	case !plan.SPIFFE:
	case cfg.Socket == SocketCSI:
		vols = append(vols, corev1.Volume{Name: VolumeSPIFFE, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
			Driver: cfg.CSIDriver, ReadOnly: ptr.To(true),
		}}})
	case cfg.Socket == SocketHostPath:
		vols = append(vols, corev1.Volume{Name: VolumeSPIFFE, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
			Path: cfg.HostPath, Type: ptr.To(corev1.HostPathDirectory),
		}}})
	}
	if plan.SPIFFE {
		mounts = append(mounts, corev1.VolumeMount{Name: VolumeSPIFFE, MountPath: wellknown.SPIFFESocketDir, ReadOnly: true})
	}
	return vols, mounts
}

// setAppEnv points every app container at the proxy, unless the container already sets the variable.
// The API key variable gets a placeholder so SDKs that insist on one start; the sidecar strips it.
// A variable set through envFrom cannot be seen here: env wins over envFrom, so such a container is
// still routed through the proxy (which is the point of injection).
func setAppEnv(pod *corev1.Pod, proxyPort int32) {
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if !hasEnv(c.Env, wellknown.EnvBaseURL) {
			c.Env = append(c.Env, corev1.EnvVar{Name: wellknown.EnvBaseURL, Value: fmt.Sprintf("http://127.0.0.1:%d", proxyPort)})
		}
		if !hasEnv(c.Env, wellknown.EnvAPIKey) && !hasEnv(c.Env, "ANTHROPIC_AUTH_TOKEN") {
			c.Env = append(c.Env, corev1.EnvVar{Name: wellknown.EnvAPIKey, Value: wellknown.PlaceholderAPIKey})
		}
	}
}

func hasEnv(env []corev1.EnvVar, name string) bool {
	return slices.ContainsFunc(env, func(e corev1.EnvVar) bool { return e.Name == name })
}

func hasContainer(cs []corev1.Container, name string) bool {
	return slices.ContainsFunc(cs, func(c corev1.Container) bool { return c.Name == name })
}
