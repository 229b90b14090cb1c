// Package managerapp builds and runs the manager process: options, validation, and the controller
// manager with every reconciler. cmd/manager is a thin wrapper around it so the demo and tests can run
// the same code.
package managerapp

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/claude-guard/claude-guard/controllers"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/inject"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/redisacl"
	"github.com/claude-guard/claude-guard/internal/redisconn"
	"github.com/claude-guard/claude-guard/internal/spireentry"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// Options configure the manager.
type Options struct {
	MetricsAddr      string
	ProbeAddr        string
	LeaderElection   bool
	LeaderElectionNS string
	NoTenant         string
	VaultAddress     string
	VaultCAFile      string
	VaultAuthMounts  map[string]string
	// VaultJWTAudiences are the audiences Vault's jwt roles accept; with VaultAudience they are the
	// audiences no federation exchange may use.
	VaultJWTAudiences []string
	RedisURL          string
	// RedisUsers gives every namespace its own Redis ACL user (docs/limits.md, "Security"); off, the
	// --redis-url is rendered into configs as is, credentials included.
	RedisUsers         bool
	RedisACLSecretFile string
	// RedisBrokerURL, with RedisUsers, turns on the Redis credential broker (internal/redisbroker):
	// the https://host:port sidecars reach it at. RedisBrokerListen is where it listens and RedisBrokerID
	// the manager's own SPIFFE ID, which it gets from the Workload API at $SPIFFE_ENDPOINT_SOCKET.
	RedisBrokerURL    string
	RedisBrokerListen string
	RedisBrokerID     string
	Upstream          string
	TrustDomain       string

	// Webhook serving and certificates.
	WebhookHost    string
	WebhookPort    int
	WebhookCertDir string
	CertRotation   bool
	WebhookService string
	WebhookConfig  string
	WebhookSecret  string
	// MetricsTokenSecret is the Secret (in OperatorNamespace) holding the token sidecars require on
	// /metrics; empty leaves sidecar metrics open.
	MetricsTokenSecret string
	// GatewayServiceAccount is the chart's gateway ("namespace/name"): its pods may run the sidecar image.
	GatewayServiceAccount string
	OperatorNamespace     string

	// Injection.
	SidecarImage      string
	SidecarPullPolicy string
	SidecarCommand    []string
	SidecarResources  corev1.ResourceRequirements
	SidecarPort       int32
	SidecarMaxProcs   int32
	SidecarTelemetry  inject.Telemetry
	// SidecarPrometheusAnnotations marks injected pods with the prometheus.io annotations.
	SidecarPrometheusAnnotations bool
	SPIFFESocket                 string
	SPIFFECSI                    string
	SPIFFEHostPath               string
	SPIFFEFile                   string
	VaultAudience                string

	// SPIFFE registration (docs/install.md, "SPIRE").
	SPIRERegistration string
	SPIREClusterName  string
	SPIREClassName    string

	zap zap.Options
	// rotatorName overrides the certificate rotator's controller name (names are unique per process;
	// tests run more than one).
	rotatorName string
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	ic := inject.DefaultConfig()
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = "claude-guard-system"
	}
	return &Options{
		MetricsAddr:        ":8080",
		ProbeAddr:          ":8081",
		NoTenant:           string(effective.NoTenantDeny),
		Upstream:           policyconfig.DefaultUpstream,
		RedisUsers:         true,
		RedisBrokerListen:  ":9444",
		WebhookPort:        9443,
		WebhookCertDir:     "/tmp/k8s-webhook-server/serving-certs",
		CertRotation:       true,
		WebhookService:     "claude-guard-webhook-service",
		WebhookConfig:      "claude-guard-injector",
		WebhookSecret:      "claude-guard-webhook-certs",
		MetricsTokenSecret: "claude-guard-metrics-token",
		OperatorNamespace:  ns,
		SidecarImage:       ic.Image,
		SidecarPullPolicy:  string(ic.ImagePullPolicy),
		SidecarCommand:     ic.Command,
		SidecarResources:   ic.Resources,
		SidecarPort:        ic.Port,
		SidecarMaxProcs:    ic.MaxProcs,
		SPIFFESocket:       string(ic.Socket),
		SPIFFECSI:          ic.CSIDriver,
		SPIFFEHostPath:     ic.HostPath,
		SPIFFEFile:         ic.SocketFile,
		VaultAudience:      ic.VaultAudience,
		VaultJWTAudiences:  []string{"vault"},
		SPIRERegistration:  RegistrationNone,
		zap:                zap.Options{Development: false, TimeEncoder: zapcore.ISO8601TimeEncoder},
	}
}

// BindFlags registers the options on the default flag set and parses the command line.
func (o *Options) BindFlags() {
	o.AddFlags(flag.CommandLine)
	flag.Parse()
}

// Parse parses args (without the program name) into the options, as the manager's command line would:
// tests and the demo run the manager in-process with the arguments of a rendered Deployment.
func (o *Options) Parse(args []string) error {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("failed to parse the manager's arguments: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected positional arguments: %q", fs.Args())
	}
	return nil
}

// AddFlags registers the options on fs.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", o.MetricsAddr, "Address the metrics endpoint binds to (\"0\" disables it).")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", o.ProbeAddr, "Address the health probes bind to.")
	fs.BoolVar(&o.LeaderElection, "leader-elect", o.LeaderElection, "Elect a leader so that only one replica reconciles.")
	fs.StringVar(&o.LeaderElectionNS, "leader-election-namespace", o.LeaderElectionNS, "Namespace of the leader election lease (default: the pod's).")
	fs.StringVar(&o.NoTenant, "no-tenant", o.NoTenant, "What to do with policies in namespaces no ClaudeTenant selects: Deny (render deny-all) or Allow (admit as written).")
	fs.StringVar(&o.VaultAddress, "vault-address", o.VaultAddress, "Vault address rendered into sidecar configs that use Vault.")
	fs.StringVar(&o.VaultCAFile, "vault-ca-file", o.VaultCAFile, "PEM file with the CA bundle that verifies Vault; rendered into sidecar configs (empty: system roots).")
	fs.Var(listFlag{&o.VaultJWTAudiences}, "vault-jwt-audiences", "Audiences Vault's jwt auth roles accept, separated by commas. With --vault-audience they are refused as workload identity federation audiences (a JWT-SVID for them must not leave for a token endpoint).")
	fs.Var(mapFlag{&o.VaultAuthMounts}, "vault-auth-mounts", "Vault auth mount paths of methods not mounted at their own name, as method=path pairs separated by commas (e.g. kubernetes=kubernetes-prod).")
	fs.StringVar(&o.RedisURL, "redis-url", o.RedisURL, "Redis URL of the Redis limit backend. With --redis-per-namespace-users its credentials are the manager's admin connection (allowed to run ACL, FUNCTION LIST and FUNCTION LOAD) and never leave the manager; without, the URL is rendered into sidecar configs as is (and the manager still loads claude-guard's Redis functions over it if its user may).")
	fs.BoolVar(&o.RedisUsers, "redis-per-namespace-users", o.RedisUsers, "Give every namespace with a Redis policy its own Redis ACL user, limited to its own keys, whose password the webhook mounts into the sidecar.")
	fs.StringVar(&o.RedisBrokerURL, "redis-broker-url", o.RedisBrokerURL, "https://host:port at which sidecars reach the manager's Redis credential broker, which hands a namespace's Redis password to that namespace's sidecars for their X.509-SVID, so no Secret holds it (empty: off; needs --redis-per-namespace-users, a SPIFFE socket and --redis-broker-id).")
	fs.StringVar(&o.RedisBrokerListen, "redis-broker-listen", o.RedisBrokerListen, "Address the Redis credential broker listens on.")
	fs.StringVar(&o.RedisBrokerID, "redis-broker-id", o.RedisBrokerID, "The manager's own SPIFFE ID (spiffe://<trust domain>/ns/<namespace>/sa/<service account>), which the broker presents and sidecars require; it comes from the Workload API at $"+wellknown.EnvSPIFFESocket+".")
	fs.StringVar(&o.RedisACLSecretFile, "redis-acl-secret-file", o.RedisACLSecretFile, "File with the master secret (at least 32 bytes) the Redis users' passwords are derived from (default: generated once and kept in Secret "+redisacl.MasterSecretName+" in the operator's namespace).")
	fs.StringVar(&o.Upstream, "upstream", o.Upstream, "Anthropic API base URL rendered into sidecar configs.")
	fs.StringVar(&o.TrustDomain, "trust-domain", o.TrustDomain, "Default SPIFFE trust domain for tenants that set none (empty disables SPIFFE).")
	fs.StringVar(&o.WebhookHost, "webhook-host", o.WebhookHost, "Address the injection webhook binds to (default: all).")
	fs.IntVar(&o.WebhookPort, "webhook-port", o.WebhookPort, "Port of the injection webhook.")
	fs.StringVar(&o.WebhookCertDir, "webhook-cert-dir", o.WebhookCertDir, "Directory holding tls.crt and tls.key for the webhook.")
	fs.BoolVar(&o.CertRotation, "cert-rotation", o.CertRotation, "Create and rotate the webhook's serving certificate and patch the webhook's caBundle (disable when cert-manager provides them).")
	fs.StringVar(&o.WebhookService, "webhook-service", o.WebhookService, "Name of the webhook Service (the certificate's DNS name).")
	fs.StringVar(&o.WebhookConfig, "webhook-config", o.WebhookConfig, "Name of the MutatingWebhookConfiguration whose caBundle is kept in sync.")
	fs.StringVar(&o.GatewayServiceAccount, "gateway-service-account", "", "The gateway's service account as namespace/name (chart gateway.enabled): its pods may run the sidecar image, which the webhook refuses in any other container but the injected sidecar.")
	fs.StringVar(&o.MetricsTokenSecret, "metrics-token-secret", o.MetricsTokenSecret, "Secret in the operator namespace whose key token sidecars require on /metrics (filled with a random token when empty); empty leaves sidecar metrics open.")
	fs.StringVar(&o.WebhookSecret, "webhook-secret", o.WebhookSecret, "Name of the Secret holding the webhook's CA and serving certificate.")
	fs.StringVar(&o.OperatorNamespace, "operator-namespace", o.OperatorNamespace, "The operator's namespace (never injected; holds the webhook Secret). Default $POD_NAMESPACE.")
	fs.StringVar(&o.SidecarImage, "sidecar-image", o.SidecarImage, "Image of the injected sidecar.")
	fs.StringVar(&o.SidecarPullPolicy, "sidecar-image-pull-policy", o.SidecarPullPolicy, "Pull policy of the injected sidecar's image: Always, IfNotPresent or Never.")
	fs.Var(jsonFlag[[]string]{&o.SidecarCommand}, "sidecar-command", `Command of the injected sidecar as a JSON array, e.g. ["/usr/local/bin/claude-guard-sidecar"].`)
	fs.Var(jsonFlag[corev1.ResourceRequirements]{&o.SidecarResources}, "sidecar-resources", `Resources of the injected sidecar as JSON, e.g. {"requests":{"cpu":"20m","memory":"32Mi"},"limits":{"memory":"128Mi"}}.`)
	fs.Var(int32Flag{&o.SidecarMaxProcs}, "sidecar-max-procs", "GOMAXPROCS cap of injected sidecars (--max-procs; 0: follow the sidecar's CPU limit).")
	fs.StringVar(&o.SidecarTelemetry.OTLPEndpoint, "sidecar-otlp-endpoint", "", "OTLP/HTTP base URL injected sidecars push GenAI metrics and spans to (OTEL_EXPORTER_OTLP_ENDPOINT); empty: Prometheus only.")
	fs.StringVar(&o.SidecarTelemetry.TraceSampleRatio, "sidecar-trace-sample-ratio", "", "Share of new traces (without a sampled parent) injected sidecars record, 0 to 1 (empty: "+inject.DefaultTraceSampleRatio+").")
	fs.DurationVar(&o.SidecarTelemetry.MetricExportInterval, "sidecar-metric-export-interval", 0, "How often injected sidecars push metrics over OTLP (0: the SDK's 60s).")
	fs.BoolVar(&o.SidecarPrometheusAnnotations, "sidecar-prometheus-annotations", false, "Add prometheus.io/scrape, port and path annotations to injected pods.")
	fs.Var(int32Flag{&o.SidecarPort}, "sidecar-port", "Loopback port of the injected proxy; app containers get ANTHROPIC_BASE_URL=http://127.0.0.1:<port>.")
	fs.StringVar(&o.SPIFFESocket, "spiffe-socket", o.SPIFFESocket, "How the SPIFFE Workload API socket reaches the sidecar: CSI, HostPath or None.")
	fs.StringVar(&o.SPIFFECSI, "spiffe-csi-driver", o.SPIFFECSI, "CSI driver that mounts the Workload API socket.")
	fs.StringVar(&o.SPIFFEHostPath, "spiffe-host-path", o.SPIFFEHostPath, "Node directory holding the Workload API socket (HostPath mode).")
	fs.StringVar(&o.SPIFFEFile, "spiffe-socket-file", o.SPIFFEFile, "File name of the Workload API socket inside its directory.")
	fs.StringVar(&o.VaultAudience, "vault-audience", o.VaultAudience, "Audience of the projected service-account token for Vault's kubernetes auth.")
	fs.StringVar(&o.SPIRERegistration, "spire-registration", o.SPIRERegistration, "How injected pods get their SPIRE registration entries: ClusterStaticEntry (one per verified pod, synced by the SPIRE Controller Manager) or None (the platform team registers them).")
	fs.StringVar(&o.SPIREClusterName, "spire-cluster-name", o.SPIREClusterName, "Cluster name of the SPIRE agents' k8s_psat node attestor (part of the agents' SPIFFE IDs, the entries' parents).")
	fs.StringVar(&o.SPIREClassName, "spire-class-name", o.SPIREClassName, "className set on the entries, for a SPIRE Controller Manager that syncs one class only (empty: none).")
	o.zap.BindFlags(fs)
}

// Validate reports the first invalid option.
func (o *Options) Validate() error {
	switch effective.NoTenantMode(o.NoTenant) {
	case effective.NoTenantDeny, effective.NoTenantAllow:
	default:
		return fmt.Errorf("--no-tenant must be Deny or Allow, got %q", o.NoTenant)
	}
	if o.OperatorNamespace == "" {
		return fmt.Errorf("--operator-namespace must be set")
	}
	if g := o.GatewayServiceAccount; g != "" {
		if ns, name, ok := strings.Cut(g, "/"); !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return fmt.Errorf("--gateway-service-account must be namespace/name, got %q", g)
		}
	}
	if err := o.Inject().Validate(); err != nil {
		return err
	}
	switch o.SPIRERegistration {
	case RegistrationNone:
	case RegistrationClusterStaticEntry:
		if err := o.spireEntries().Validate(); err != nil {
			return fmt.Errorf("--spire-registration=%s: %w", o.SPIRERegistration, err)
		}
	default:
		return fmt.Errorf("--spire-registration must be %s or %s, got %q", RegistrationClusterStaticEntry, RegistrationNone, o.SPIRERegistration)
	}
	switch corev1.PullPolicy(o.SidecarPullPolicy) {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		return fmt.Errorf("--sidecar-image-pull-policy must be Always, IfNotPresent or Never, got %q", o.SidecarPullPolicy)
	}
	for method, mount := range o.VaultAuthMounts {
		switch method {
		case "cert", "jwt", "kubernetes":
		default:
			return fmt.Errorf("--vault-auth-mounts: unknown auth method %q (want cert, jwt or kubernetes)", method)
		}
		if mount == "" || strings.HasPrefix(mount, "/") || strings.HasSuffix(mount, "/") {
			return fmt.Errorf("--vault-auth-mounts: the mount of %s must be a path without leading or trailing slash, got %q", method, mount)
		}
	}
	if err := o.validateBroker(); err != nil {
		return err
	}
	for name, v := range map[string]string{"--upstream": o.Upstream, "--vault-address": o.VaultAddress} {
		if v == "" && name != "--upstream" {
			continue
		}
		if u, err := url.Parse(v); err != nil || u.Scheme == "" || u.Host == "" {
			return fmt.Errorf("%s must be an absolute URL, got %q", name, v)
		}
	}
	if o.RedisURL != "" {
		if _, err := redisconn.Parse(o.RedisURL); err != nil {
			return fmt.Errorf("--redis-url: %w", err) // never the value: it may hold a password
		}
	}
	return nil
}

// Effective returns the operator-wide inputs of every effective policy.
func (o *Options) Effective() (effective.Options, error) {
	ca := ""
	if o.VaultCAFile != "" {
		b, err := os.ReadFile(o.VaultCAFile)
		if err != nil {
			return effective.Options{}, fmt.Errorf("failed to read --vault-ca-file: %w", err)
		}
		ca = string(b)
	}
	redisURL := o.RedisURL
	if o.redisUsers() {
		// Sidecars get the address only; they authenticate as their namespace's user.
		u, err := redisacl.PublicURL(o.RedisURL)
		if err != nil {
			return effective.Options{}, fmt.Errorf("--redis-url: %w", err)
		}
		redisURL = u
	}
	return effective.Options{
		NoTenant:        effective.NoTenantMode(o.NoTenant),
		VaultAddress:    o.VaultAddress,
		VaultCACert:     ca,
		VaultAuthMounts: o.VaultAuthMounts,
		VaultAudiences:  append(slices.Clone(o.VaultJWTAudiences), o.VaultAudience),
		RedisURL:        redisURL,
		RedisUsers:      o.redisUsers(),
		RedisBroker:     o.redisBroker(),
		Upstream:        o.Upstream,
		Listen:          inject.ProxyListen(o.SidecarPort),
		MetricsListen:   inject.MetricsListen(),
		TrustDomain:     o.TrustDomain,
	}, nil
}

// Inject returns the injection configuration.
func (o *Options) Inject() inject.Config {
	c := inject.DefaultConfig()
	c.Image = o.SidecarImage
	c.ImagePullPolicy = corev1.PullPolicy(o.SidecarPullPolicy)
	c.Command = slices.Clone(o.SidecarCommand)
	c.Resources = *o.SidecarResources.DeepCopy()
	c.Port = o.SidecarPort
	c.MaxProcs = o.SidecarMaxProcs
	c.Telemetry = o.SidecarTelemetry
	c.PrometheusAnnotations = o.SidecarPrometheusAnnotations
	c.Socket = inject.SocketMode(o.SPIFFESocket)
	c.CSIDriver, c.HostPath, c.SocketFile = o.SPIFFECSI, o.SPIFFEHostPath, o.SPIFFEFile
	c.VaultAudience = o.VaultAudience
	c.RedisPassword = o.redisUsers()
	return c
}

// Values of --spire-registration.
const (
	RegistrationNone               = "None"
	RegistrationClusterStaticEntry = "ClusterStaticEntry"
)

func (o *Options) spireEntries() spireentry.Options {
	return spireentry.Options{ClusterName: o.SPIREClusterName, ClassName: o.SPIREClassName}
}

// registration returns the SPIFFE registration controller, or nil when it is off: asked for None, or
// no Workload API socket is injected (an SVID would reach no sidecar).
func (o *Options) registration(mgr ctrl.Manager) *controllers.RegistrationReconciler {
	if o.SPIRERegistration != RegistrationClusterStaticEntry {
		return nil
	}
	if inject.SocketMode(o.SPIFFESocket) == inject.SocketNone {
		ctrl.Log.Info("SPIFFE registration is off: --spiffe-socket=None injects no Workload API socket")
		return nil
	}
	return &controllers.RegistrationReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder("claude-guard-spire-registration"), Inject: o.Inject(), Entries: o.spireEntries()}
}

// redisUsers reports whether sidecars authenticate to Redis as per-namespace users.
func (o *Options) redisUsers() bool { return o.RedisURL != "" && o.RedisUsers }

// redisFunctions returns the connection that keeps claude-guard's function library loaded when sidecars
// share --redis-url (per-namespace users off; with them, the Redis user controller loads it), or nil.
func (o *Options) redisFunctions() (*redisacl.Functions, error) {
	if o.RedisURL == "" || o.redisUsers() {
		return nil, nil
	}
	return redisacl.NewFunctions(o.RedisURL)
}

// redisCounters returns the connection the spend controllers read budgets' counters over, or nil
// without Redis.
func (o *Options) redisCounters() (*redisacl.Counters, error) {
	if o.RedisURL == "" {
		return nil, nil
	}
	return redisacl.NewCounters(o.RedisURL)
}

// spendOptions runs the spend controllers over c (nil without Redis).
func spendOptions(c *redisacl.Counters) *controllers.SpendOptions {
	if c == nil {
		return nil
	}
	return &controllers.SpendOptions{Counters: c}
}

// redisUsersOptions builds the admin connection of the Redis user controller, or nil when it is off.
func (o *Options) redisUsersOptions(ctx context.Context, mgr ctrl.Manager) (*controllers.RedisUsersOptions, error) {
	if !o.redisUsers() {
		return nil, nil
	}
	master, err := redisacl.LoadMaster(ctx, o.RedisACLSecretFile, mgr.GetAPIReader(), mgr.GetClient(), o.OperatorNamespace)
	if err != nil {
		return nil, err
	}
	admin, err := redisacl.NewAdmin(o.RedisURL, master)
	if err != nil {
		return nil, err
	}
	return &controllers.RedisUsersOptions{Admin: admin}, nil
}
