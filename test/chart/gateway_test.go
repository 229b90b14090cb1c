//go:build integration

package chart

import (
	"bytes"
	"flag"
	"io"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/claude-guard/claude-guard/internal/wellknown"
	"github.com/claude-guard/claude-guard/sidecar/app"
)

// checkGateway checks the gateway objects of a rendered manifest (want: the values enable it): the
// sidecar binary accepts the Deployment's arguments with its own flag parsing and validation and would
// start as a gateway (TLS configured); every file an argument names is mounted from the right volume;
// the pod is never injected, probes and the Service point at the ports the arguments listen on, and the
// config is the policy's rendered ConfigMap at the path the webhook uses for injected sidecars.
func checkGateway(t *testing.T, manifest []byte, want bool) {
	t.Helper()
	gw := gatewayObjects(t, manifest)
	if !want {
		if gw.deployment != nil || gw.service != nil {
			t.Fatal("the gateway is rendered but the values do not enable it")
		}
		return
	}
	if gw.deployment == nil || gw.service == nil || gw.serviceAccount == nil {
		t.Fatalf("gateway objects missing: Deployment %v, Service %v, ServiceAccount %v", gw.deployment != nil, gw.service != nil, gw.serviceAccount != nil)
	}
	d := gw.deployment
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("gateway pod has %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	// It runs the sidecar's image under its own container name, which the webhook refuses for every pod
	// but those of the service account the manager is told is the gateway's.
	if want := "--gateway-service-account=" + d.Namespace + "/" + pod.ServiceAccountName; !bytes.Contains(manifest, []byte(want)) {
		t.Errorf("the manager is not given %s: the webhook would refuse the gateway's pods", want)
	}

	// The sidecar's own flags and validation, as cmd/sidecar runs them.
	var o app.Options
	fs := flag.NewFlagSet("sidecar", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.BindFlags(fs)
	if err := fs.Parse(c.Args); err != nil {
		t.Fatalf("the sidecar refuses the gateway's arguments %q: %v", c.Args, err)
	}
	if fs.NArg() > 0 {
		t.Fatalf("the sidecar would ignore arguments %q", fs.Args())
	}
	if err := o.Validate(); err != nil {
		t.Fatalf("the sidecar refuses the gateway's arguments %q: %v", c.Args, err)
	}
	// What sidecar/app's checkGateway requires of the flags before it serves.
	if !o.Gateway || (o.TLSCertFile == "" && o.ClientTrustDomain == "") {
		t.Fatalf("the gateway must run with --gateway and TLS (--tls-cert-file or --client-trust-domain): %q", c.Args)
	}
	if !slices.Equal(c.Command, []string{wellknown.SidecarBinary}) {
		t.Errorf("command = %q, want the sidecar binary", c.Command)
	}

	// Every file named by a flag is mounted, and comes from the volume it should.
	set := map[string]string{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = f.Value.String() })
	files := []struct {
		flag, key string
		// volume returns whether v provides key (the file name inside the mount).
		provides func(v corev1.Volume, key string) bool
	}{
		{"config", "", func(v corev1.Volume, key string) bool {
			cm := v.ConfigMap
			return cm != nil && cm.Name == wellknown.ConfigMapName(gw.policy) && hasItem(cm.Items, wellknown.ConfigKey, key)
		}},
		{"tls-cert-file", "", func(v corev1.Volume, key string) bool {
			return v.Secret != nil && hasItem(v.Secret.Items, "tls.crt", key)
		}},
		{"tls-key-file", "", func(v corev1.Volume, key string) bool {
			return v.Secret != nil && hasItem(v.Secret.Items, "tls.key", key)
		}},
		{"secret-dir", path.Base(wellknown.SecretFile), func(v corev1.Volume, key string) bool {
			return v.Secret != nil && slices.ContainsFunc(v.Secret.Items, func(i corev1.KeyToPath) bool { return i.Path == key })
		}},
		{"vault-token-file", "", func(v corev1.Volume, key string) bool {
			return v.Projected != nil && len(v.Projected.Sources) == 1 && v.Projected.Sources[0].ServiceAccountToken != nil && v.Projected.Sources[0].ServiceAccountToken.Path == key
		}},
	}
	for _, f := range files {
		p, ok := set[f.flag]
		if !ok {
			continue
		}
		if f.key != "" {
			p = path.Join(p, f.key)
		}
		v, key, ok := mountedAt(pod, c, p)
		if !ok || !f.provides(v, key) {
			t.Errorf("--%s: %s is not mounted from the right volume (mounts %+v)", f.flag, p, c.VolumeMounts)
		}
	}
	if set["config"] != wellknown.ConfigFile {
		t.Errorf("--config=%s, want %s like an injected sidecar", set["config"], wellknown.ConfigFile)
	}
	if _, ok := set["tls-cert-file"]; !ok && o.ClientTrustDomain == "" {
		t.Error("no TLS certificate and no SVID")
	}

	// The SPIFFE socket: needed for mTLS, and wherever it is configured it is mounted.
	socket := envVar(c, wellknown.EnvSPIFFESocket)
	if o.ClientTrustDomain != "" && socket == "" {
		t.Errorf("--client-trust-domain without %s", wellknown.EnvSPIFFESocket)
	}
	if socket != "" {
		file, ok := strings.CutPrefix(socket, "unix://")
		_, _, mounted := mountedAt(pod, c, file)
		if !ok || path.Dir(file) != wellknown.SPIFFESocketDir || !mounted {
			t.Errorf("%s=%s is not in a mounted %s", wellknown.EnvSPIFFESocket, socket, wellknown.SPIFFESocketDir)
		}
		if envVar(c, "POD_SERVICE_ACCOUNT") == "" && !hasFieldRef(c, "POD_SERVICE_ACCOUNT", "spec.serviceAccountName") {
			t.Error("POD_SERVICE_ACCOUNT (the SVID's expected ServiceAccount) is not set from the pod")
		}
	}

	// Ports: the Service and the probes reach what the arguments listen on.
	listen, metrics := portOf(t, o.Listen), portOf(t, o.MetricsListen)
	if p := containerPort(c, "https"); p != listen {
		t.Errorf("container port https = %d, --listen port %d", p, listen)
	}
	if p := containerPort(c, "cg-metrics"); p != metrics {
		t.Errorf("container port cg-metrics = %d, --metrics-listen port %d", p, metrics)
	}
	for name, probe := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Port.String() != "cg-metrics" {
			t.Errorf("%s probe %+v does not query the metrics port", name, probe)
		}
	}
	if sp := gw.service.Spec.Ports; len(sp) != 1 || sp[0].TargetPort.String() != "https" {
		t.Errorf("Service ports %+v, want one targeting https", sp)
	}
	if sel := gw.service.Spec.Selector; !labelsMatch(sel, d.Spec.Template.Labels) || sel["app.kubernetes.io/component"] != "gateway" {
		t.Errorf("Service selector %v does not select only the gateway's pods %v", sel, d.Spec.Template.Labels)
	}

	// Never injected, hardened, its own identity, a disruption budget with replicas.
	if d.Spec.Template.Labels[wellknown.LabelInject] != "false" {
		t.Errorf("gateway pod labels %v lack %s: \"false\"", d.Spec.Template.Labels, wellknown.LabelInject)
	}
	sc := c.SecurityContext
	if ps := pod.SecurityContext; ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("gateway security contexts are not hardened: pod %+v, container %+v", pod.SecurityContext, sc)
	}
	if pod.ServiceAccountName != gw.serviceAccount.Name || gw.serviceAccount.Namespace != d.Namespace || gw.service.Namespace != d.Namespace {
		t.Errorf("gateway ServiceAccount %s/%s, Service namespace %s, Deployment %s/%s", gw.serviceAccount.Namespace, gw.serviceAccount.Name, gw.service.Namespace, d.Namespace, pod.ServiceAccountName)
	}
	if replicas := *d.Spec.Replicas; (replicas > 1) != (gw.pdb != nil) {
		t.Errorf("%d replicas, disruption budget rendered: %v", replicas, gw.pdb != nil)
	}
}

type gatewayRendering struct {
	deployment     *appsv1.Deployment
	service        *corev1.Service
	serviceAccount *corev1.ServiceAccount
	pdb            *policyv1.PodDisruptionBudget
	// policy is the policy the config volume names.
	policy string
}

func gatewayObjects(t *testing.T, manifest []byte) gatewayRendering {
	t.Helper()
	var gw gatewayRendering
	for _, doc := range bytes.Split(manifest, []byte("\n---")) {
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		if meta.Metadata.Labels["app.kubernetes.io/component"] != "gateway" {
			continue
		}
		var into any
		switch meta.Kind {
		case "Deployment":
			gw.deployment = &appsv1.Deployment{}
			into = gw.deployment
		case "Service":
			gw.service = &corev1.Service{}
			into = gw.service
		case "ServiceAccount":
			gw.serviceAccount = &corev1.ServiceAccount{}
			into = gw.serviceAccount
		case "PodDisruptionBudget":
			gw.pdb = &policyv1.PodDisruptionBudget{}
			into = gw.pdb
		default:
			continue
		}
		if err := yaml.UnmarshalStrict(doc, into); err != nil {
			t.Fatalf("gateway %s: %v", meta.Kind, err)
		}
	}
	if gw.deployment != nil {
		for _, v := range gw.deployment.Spec.Template.Spec.Volumes {
			if v.ConfigMap != nil {
				gw.policy = strings.TrimPrefix(v.ConfigMap.Name, wellknown.ConfigMapPrefix)
			}
		}
	}
	return gw
}

// mountedAt returns the volume mounted over file p in container c and p's path inside the mount.
func mountedAt(pod corev1.PodSpec, c corev1.Container, p string) (corev1.Volume, string, bool) {
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(p, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok || !m.ReadOnly {
			continue
		}
		i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i >= 0 {
			return pod.Volumes[i], rel, true
		}
	}
	return corev1.Volume{}, "", false
}

func hasItem(items []corev1.KeyToPath, key, p string) bool {
	return slices.ContainsFunc(items, func(i corev1.KeyToPath) bool { return i.Key == key && i.Path == p })
}

func envVar(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func hasFieldRef(c corev1.Container, name, field string) bool {
	return slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == field
	})
}

func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	return int32(n)
}

func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

// TestGatewayTelemetryIsTheInjectedSidecars: the OTEL_* variables the chart gives the gateway are the
// ones the webhook gives injected sidecars for the same values (the manager's flags rendered in the
// same release), so the two kinds of sidecar report alike.
func TestGatewayTelemetryIsTheInjectedSidecars(t *testing.T) {
	for _, set := range [][]string{
		{},
		{"telemetry.otlp.endpoint=http://otel-collector.observability:4318"},
		{"telemetry.otlp.endpoint=https://otel.example:4318", "telemetry.otlp.traceSampleRatio=0.25", "telemetry.otlp.metricExportIntervalSeconds=15"},
	} {
		t.Run(strings.Join(set, ","), func(t *testing.T) {
			out := template(t, helmCLI(t), gateway(set...)...)
			want := managerOptions(t, out).Inject().Telemetry.Env()
			gw := gatewayObjects(t, []byte(out))
			if gw.deployment == nil {
				t.Fatal("no gateway Deployment rendered")
			}
			var got []corev1.EnvVar
			for _, e := range gw.deployment.Spec.Template.Spec.Containers[0].Env {
				if strings.HasPrefix(e.Name, "OTEL_") {
					got = append(got, e)
				}
			}
			if len(set) > 0 && len(want) == 0 {
				t.Fatal("the injected sidecars get no OTEL_* variables although an endpoint is set")
			}
			if !slices.Equal(got, want) {
				t.Errorf("gateway OTEL_* env:\n got %v\nwant %v (the injected sidecars')", got, want)
			}
		})
	}
}
