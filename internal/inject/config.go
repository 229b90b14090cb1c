// Package inject decides whether a pod gets the claude-guard sidecar and, if so, mutates it. Everything
// here is a pure function of (pod, policy, operator config): no client calls, so every case is covered by
// golden files (testdata/<case>.yaml -> <case>.injected.yaml).
package inject

import (
	"cmp"
	"fmt"
	"net/url"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// SocketMode says how the SPIFFE Workload API socket reaches the sidecar.
type SocketMode string

// Socket delivery modes.
const (
	// SocketCSI mounts the socket with the SPIFFE CSI driver (csi.spiffe.io): no hostPath in tenant pods.
	SocketCSI SocketMode = "CSI"
	// SocketHostPath mounts the SPIRE agent's socket directory from the node.
	SocketHostPath SocketMode = "HostPath"
	// SocketNone disables SPIFFE (Vault kubernetes auth or secretRef only).
	SocketNone SocketMode = "None"
)

// Config is the operator's injection configuration (Helm values end up here).
type Config struct {
	// Image and Command of the sidecar; Command is explicit so the pod spec says exactly what runs.
	Image           string
	Command         []string
	ImagePullPolicy corev1.PullPolicy
	Resources       corev1.ResourceRequirements
	// Port is the loopback port the proxy listens on and app containers are pointed at
	// (ANTHROPIC_BASE_URL). Moving it frees 8787 for apps that already use it.
	Port int32
	// MaxProcs caps the sidecar's GOMAXPROCS (--max-procs); 0 leaves it to the container's CPU limit.
	MaxProcs int32
	// RunAsUser of the sidecar (non-root).
	RunAsUser int64
	// SPIFFE socket delivery.
	Socket     SocketMode
	CSIDriver  string
	HostPath   string
	SocketFile string
	// VaultAudience is the audience of the projected service-account token for Vault's kubernetes auth.
	VaultAudience string
	// Telemetry is where sidecars send OpenTelemetry; without an endpoint they serve Prometheus only.
	Telemetry Telemetry
	// PrometheusAnnotations adds prometheus.io/scrape, /port and /path to injected pods, for a
	// Prometheus that discovers pods by annotation (its scrape job needs the metrics token, see
	// docs/observability.md).
	PrometheusAnnotations bool
	// RedisPassword mounts the namespace's Redis password Secret into the sidecar of policies with
	// backend Redis: the operator runs per-namespace Redis users (--redis-per-namespace-users).
	RedisPassword bool
}

// Telemetry is the OpenTelemetry export of injected sidecars, set as the SDK's standard OTEL_*
// environment variables.
type Telemetry struct {
	// OTLPEndpoint is the collector's OTLP/HTTP base URL (http://collector.observability:4318); empty
	// exports nothing over OTLP.
	OTLPEndpoint string
	// TraceSampleRatio is the share of traces without a sampled parent that are recorded
	// (parentbased_traceidratio): a caller's sampled trace is always followed. Empty is
	// DefaultTraceSampleRatio.
	TraceSampleRatio string
	// MetricExportInterval is how often metrics are pushed (OTEL_METRIC_EXPORT_INTERVAL).
	MetricExportInterval time.Duration
}

// DefaultTraceSampleRatio is the chart's telemetry.otlp.traceSampleRatio: exporting metrics and a span
// for every request cost about 16 % more CPU per request, with one trace in ten about 8 %
// (docs/observability.md, "Cost").
const DefaultTraceSampleRatio = "0.1"

// Env is the OTEL_* variables for t, none without an endpoint. The chart gives the gateway the same ones
// (claude-guard.otelEnv; test/chart TestGatewayTelemetryIsTheInjectedSidecars).
func (t Telemetry) Env() []corev1.EnvVar {
	if t.OTLPEndpoint == "" {
		return nil
	}
	env := []corev1.EnvVar{
		{Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Value: t.OTLPEndpoint},
		{Name: "OTEL_EXPORTER_OTLP_PROTOCOL", Value: "http/protobuf"},
		{Name: "OTEL_SERVICE_NAME", Value: wellknown.SidecarServiceName},
		{Name: "OTEL_TRACES_SAMPLER", Value: "parentbased_traceidratio"},
		{Name: "OTEL_TRACES_SAMPLER_ARG", Value: cmp.Or(t.TraceSampleRatio, DefaultTraceSampleRatio)},
	}
	if t.MetricExportInterval > 0 {
		env = append(env, corev1.EnvVar{Name: "OTEL_METRIC_EXPORT_INTERVAL", Value: strconv.FormatInt(t.MetricExportInterval.Milliseconds(), 10)})
	}
	return env
}

// DefaultConfig returns the defaults of the Helm chart.
func DefaultConfig() Config {
	return Config{
		Image:           "ghcr.io/claude-guard/sidecar:v0.1.0",
		Command:         []string{wellknown.SidecarBinary},
		ImagePullPolicy: corev1.PullIfNotPresent,
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("20m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
		},
		Port:          wellknown.SidecarPort,
		MaxProcs:      1,
		RunAsUser:     65532,
		Socket:        SocketCSI,
		CSIDriver:     "csi.spiffe.io",
		HostPath:      "/run/spire/agent-sockets",
		SocketFile:    "spire-agent.sock",
		VaultAudience: "vault",
	}
}

// ProxyListen is the sidecar's proxy address for port: loopback only, so only the pod's own containers
// reach it. The controller renders it into every config and the webhook passes the same flag, so the
// flag changes nothing and the sidecar's config hash is the rendered document's.
func ProxyListen(port int32) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// MetricsListen is the sidecar's metrics and probe address: on the pod IP, where the kubelet probes it
// and the operator asks it which config it enforces.
func MetricsListen() string { return fmt.Sprintf("0.0.0.0:%d", wellknown.SidecarMetricsPort) }

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	switch {
	case c.Image == "" || len(c.Command) == 0:
		return fmt.Errorf("sidecar image and command must be set")
	case c.Port < 1 || c.Port > 65535:
		return fmt.Errorf("sidecar port must be between 1 and 65535, got %d", c.Port)
	case c.Port == wellknown.SidecarMetricsPort:
		return fmt.Errorf("sidecar port %d is the sidecar's metrics port", c.Port)
	case c.Socket != SocketCSI && c.Socket != SocketHostPath && c.Socket != SocketNone:
		return fmt.Errorf("SPIFFE socket mode must be CSI, HostPath or None, got %q", c.Socket)
	case c.Socket == SocketCSI && c.CSIDriver == "":
		return fmt.Errorf("the CSI socket mode needs a CSI driver name")
	case c.Socket == SocketHostPath && c.HostPath == "":
		return fmt.Errorf("the HostPath socket mode needs a host path")
	case c.Socket != SocketNone && c.SocketFile == "":
		return fmt.Errorf("the SPIFFE socket file name must be set")
	}
	return c.Telemetry.Validate()
}

// Validate checks the endpoint is an http(s) URL and the ratio a number from 0 to 1.
func (t Telemetry) Validate() error {
	if t.OTLPEndpoint != "" {
		u, err := url.Parse(t.OTLPEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("sidecar OTLP endpoint must be an http:// or https:// URL with a host, got %q", t.OTLPEndpoint)
		}
	}
	if t.TraceSampleRatio != "" {
		if r, err := strconv.ParseFloat(t.TraceSampleRatio, 64); err != nil || r < 0 || r > 1 {
			return fmt.Errorf("sidecar trace sample ratio must be a number from 0 to 1, got %q", t.TraceSampleRatio)
		}
	}
	if t.MetricExportInterval < 0 {
		return fmt.Errorf("sidecar metric export interval must not be negative, got %s", t.MetricExportInterval)
	}
	return nil
}

// Names of what the webhook adds to a pod.
const (
	VolumeConfig = "claude-guard-config"
	VolumeSecret = "claude-guard-api-key"
	VolumeToken  = "claude-guard-vault-token"
	VolumeSPIFFE = "claude-guard-spiffe"
	VolumeRedis  = "claude-guard-redis"

	// AnnotationSidecarImage records the image injected.
	AnnotationSidecarImage = wellknown.Prefix + "sidecar-image"
	// EnvWorkload is the sidecar's workload identity (for audit and Workload-keyed limits) until SPIFFE
	// provides the real one.
	EnvWorkload = "CLAUDE_GUARD_WORKLOAD"
)
