package inject

import (
	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

// Plan is what a policy's sidecar mounts besides its config and the SPIFFE socket. It is read from the
// policy's rendered config (PlanFor), the document the sidecar obeys, never from the policy's spec: the
// two differ when the controller renders deny-all (no credentials at all) or the Local backend for a
// policy that asked for Redis (no Redis password).
type Plan struct {
	// Secret is the Kubernetes Secret key holding the API key (credentials.secret).
	Secret *policyconfig.SecretSource
	// VaultToken mounts a projected service account token for Vault's kubernetes auth method.
	VaultToken bool
	// RedisUser mounts the namespace's Redis password: the Redis backend, with per-namespace users.
	RedisUser bool
	// SPIFFE mounts the Workload API socket: the config names a trust domain and the operator delivers
	// the socket (Config.Socket). Without one no SPIFFE volume is added, so a pod of a tenant without
	// SPIFFE never waits for a CSI driver the cluster may not have.
	SPIFFE bool
}

// PlanFor returns the mounts the sidecar needs to obey c under the operator's settings op.
func PlanFor(c *policyconfig.Config, op Config) Plan {
	var p Plan
	if c == nil || c.Deny != nil {
		// A deny-all config refuses every call: its sidecar holds no credential at all.
		return p
	}
	p.SPIFFE = op.Socket != SocketNone && c.Identity.TrustDomain != ""
	cr := &c.Credentials
	if cr.Secret != nil {
		s := *cr.Secret
		p.Secret = &s
	}
	p.VaultToken = cr.Vault != nil && cr.Vault.AuthMethod == policyconfig.VaultAuthKubernetes
	// With the credential broker the sidecar gets the password with its SVID: no Secret is mounted (and
	// the Redis user controller writes none).
	p.RedisUser = op.RedisPassword && c.Limits.Backend == policyconfig.BackendRedis && c.Limits.RedisBroker == nil
	return p
}
