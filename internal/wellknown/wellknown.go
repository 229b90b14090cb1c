// Package wellknown holds the names the controller, the injection webhook and the sidecar must agree on:
// labels, annotations, environment variables, container and volume names, ports and file paths.
//
// It is a leaf package (standard library only) so that the sidecar can import it without linking
// controller-runtime or client-go.
package wellknown

// Prefix of every label and annotation the project owns.
const Prefix = "claudeguard.io/"

// Labels and annotations.
const (
	// LabelInject on a namespace ("enabled") opts it in; on a pod ("false") opts the pod out.
	LabelInject = Prefix + "inject"
	// AnnotationPolicy on an injected pod names the ClaudeAccessPolicy that applied; on a rendered
	// ConfigMap it names its policy.
	AnnotationPolicy = Prefix + "policy"
	// AnnotationStatus on a pod records the injection decision ("injected", or "skipped: <reason>").
	AnnotationStatus = Prefix + "status"
	// AnnotationConfigHash carries the content hash of a rendered config.
	AnnotationConfigHash = Prefix + "config-hash"
	// LabelPolicy on a rendered ConfigMap names its policy (so it can be listed by label).
	LabelPolicy = Prefix + "policy"
	// LabelSidecar on an injected pod ("injected") lets a PodMonitor, and kubectl, select the pods that
	// run a sidecar.
	LabelSidecar = Prefix + "sidecar"
	// LabelManagedBy value for everything the operator creates.
	ManagedBy = "claude-guard"
)

// Injection status values.
const (
	StatusInjected = "injected"
	StatusSkipped  = "skipped"
)

// Rendered config.
const (
	// ConfigMapPrefix is prepended to a policy's name to name its rendered ConfigMap.
	ConfigMapPrefix = "claude-guard-"
	// ConfigKey is the ConfigMap key holding the rendered document.
	ConfigKey = "config.json"
	// ConfigMountDir is where the webhook mounts the rendered config in the sidecar.
	ConfigMountDir = "/etc/claude-guard"
)

// Sidecar.
const (
	SidecarContainerName = "claude-guard-sidecar"
	// SidecarPort is the loopback port apps reach the proxy on.
	SidecarPort = 8787
	// SidecarMetricsPort serves /metrics, /healthz and /readyz.
	SidecarMetricsPort = 9787
	// EnvBaseURL is what Anthropic SDKs read to find the API.
	EnvBaseURL = "ANTHROPIC_BASE_URL"
	// EnvAPIKey is what SDKs that insist on a key read; the webhook sets a placeholder, never a real key.
	EnvAPIKey = "ANTHROPIC_API_KEY"
	// EnvSidecarAPIKey is the standalone sidecar's key variable.
	EnvSidecarAPIKey = "CLAUDE_GUARD_API_KEY"
	// PlaceholderAPIKey is the value of EnvAPIKey in app containers: the sidecar strips it.
	PlaceholderAPIKey = "claude-guard-placeholder"
)

// Programs inside the images (`make images`, internal/imagebuild): the chart's and the webhook's pod specs
// run them by these paths.
const (
	// ManagerBinary is the manager's path in its image (also the image's entrypoint).
	ManagerBinary = "/usr/local/bin/manager"
	// SidecarBinary is the sidecar's path in its image: the injected container's and the gateway's command.
	SidecarBinary = "/usr/local/bin/sidecar"
	// SidecarServiceName is the OpenTelemetry service.name of sidecars and the gateway.
	SidecarServiceName = "claude-guard-sidecar"
)

// Files the webhook mounts into the sidecar container only (never into app containers).
const (
	// ConfigFile is the rendered config's path inside the sidecar.
	ConfigFile = ConfigMountDir + "/" + ConfigKey
	// SecretMountDir holds the API key of a secretRef credential source.
	SecretMountDir = "/var/run/secrets/claude-guard"
	// SecretFile is the key file inside SecretMountDir.
	SecretFile = SecretMountDir + "/api-key"
	// ServiceAccountTokenDir holds the projected service-account token for Vault's kubernetes auth.
	ServiceAccountTokenDir = "/var/run/secrets/claude-guard-vault"
	// ServiceAccountTokenFile is the token file inside ServiceAccountTokenDir.
	ServiceAccountTokenFile = ServiceAccountTokenDir + "/token"
	// SPIFFESocketDir is where the SPIFFE Workload API socket directory is mounted.
	SPIFFESocketDir = "/spiffe-workload-api"
	// EnvSPIFFESocket is the variable go-spiffe reads the Workload API address from.
	EnvSPIFFESocket = "SPIFFE_ENDPOINT_SOCKET"
	// RedisPasswordDir holds the password of the namespace's Redis ACL user (shared rate limits).
	RedisPasswordDir = "/var/run/claude-guard/redis"
	// RedisPasswordFile is the password file inside RedisPasswordDir.
	RedisPasswordFile = RedisPasswordDir + "/" + RedisSecretKey
)

// Shared rate limits: the operator gives every namespace with a Redis policy its own Redis ACL user
// (docs/limits.md, "Security") and keeps its password in this Secret of the namespace.
const (
	// RedisSecretName is the Secret in each such namespace that holds its Redis user's password.
	RedisSecretName = "claude-guard-redis"
	// RedisSecretKey is the Secret's key holding the password.
	RedisSecretKey = "password"
	// RedisUserPrefix is prepended to a namespace's name to name its Redis ACL user.
	RedisUserPrefix = "cg-"
)

// RedisUser returns the name of a namespace's Redis ACL user.
func RedisUser(namespace string) string { return RedisUserPrefix + namespace }

// ConfigMapName returns the name of a policy's rendered ConfigMap.
func ConfigMapName(policy string) string { return ConfigMapPrefix + policy }
