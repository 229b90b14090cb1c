package app

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/claude-guard/claude-guard/internal/identity"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/redisbroker"
	"github.com/claude-guard/claude-guard/internal/wellknown"
	"github.com/claude-guard/claude-guard/sidecar/credentials"
	"github.com/claude-guard/claude-guard/sidecar/metrics"
)

// wiring is the sidecar's workload identity (when SPIFFE is configured) and its credential source.
type wiring struct {
	identity *identity.Provider
	expected identity.Expected
	creds    credentials.Source
	vault    *credentials.Vault
	wif      *credentials.WIF
}

// wire builds the identity and the credential source the config names. Nothing long-lived starts here
// except the Workload API connection, which retries in the background until the agent answers.
func wire(ctx context.Context, c *policyconfig.Config, o *Options, log *slog.Logger) (*wiring, error) {
	w := &wiring{}
	socket := os.Getenv(wellknown.EnvSPIFFESocket)
	if c.Identity.TrustDomain != "" && socket != "" && c.Deny == nil {
		w.expected = identity.Expected{TrustDomain: c.Identity.TrustDomain, Namespace: c.Identity.Namespace, ServiceAccount: os.Getenv("POD_SERVICE_ACCOUNT")}
		w.identity = identity.Start(ctx, socket, w.expected, log)
	}
	switch cr := c.Credentials; {
	case cr.File != nil:
		w.creds = credentials.NewFile(cr.File.Path)
	case cr.Env != nil:
		w.creds = credentials.NewEnv(cr.Env.Name)
	case cr.Secret != nil:
		// The kubelet keeps the mounted Secret up to date; the file source re-reads it after a 401.
		w.creds = credentials.NewFile(filepath.Join(o.SecretDir, filepath.Base(wellknown.SecretFile)))
	case cr.Vault != nil:
		v, err := newVault(cr.Vault, w.identity, o, log)
		if err != nil {
			return nil, err
		}
		w.vault, w.creds = v, v
	case cr.WorkloadIdentityFederation != nil:
		f, err := newWIF(cr.WorkloadIdentityFederation, c.Server.Upstream, w.identity, log)
		if err != nil {
			return nil, err
		}
		w.wif, w.creds = f, f
	case c.Deny != nil:
		w.creds = credentials.Static("")
	default:
		return nil, errors.New("the config names no credential source")
	}
	if cr := c.Credentials; cr.File != nil || cr.Env != nil || cr.Secret != nil {
		// A local key that is missing now is a setup mistake (an unset variable, a wrong path, a Secret
		// not created yet): say so at start rather than only in each refused call.
		if _, err := w.creds.Get(ctx); err != nil {
			log.Warn("Starting without an API key: calls are refused with 503 until one is available", "error", err.Error())
		}
	}
	return w, nil
}

func newWIF(s *policyconfig.WIFSource, upstream string, id *identity.Provider, log *slog.Logger) (*credentials.WIF, error) {
	if id == nil {
		return nil, errors.New("workload identity federation needs the SPIFFE Workload API: set identity.trustDomain in the config and " + wellknown.EnvSPIFFESocket)
	}
	url := s.TokenURL
	if url == "" {
		url = policyconfig.DefaultTokenURL(upstream)
	}
	return credentials.NewWIF(credentials.WIFOptions{
		TokenURL: url, Audience: s.Audience, FederationRuleID: s.FederationRuleID, OrganizationID: s.OrganizationID,
		ServiceAccountID: s.ServiceAccountID, WorkspaceID: s.WorkspaceID, Identity: id, Log: log,
	})
}

func newVault(s *policyconfig.VaultSource, id *identity.Provider, o *Options, log *slog.Logger) (*credentials.Vault, error) {
	vo := credentials.VaultOptions{
		Address: s.Address, CACert: []byte(s.CACert),
		AuthMethod: s.AuthMethod, AuthMount: s.AuthMount, Role: s.Role, Audience: s.Audience, TokenFile: o.VaultTokenFile,
		Mount: s.Mount, Path: s.Path, Field: s.Field,
		RefreshInterval: s.RefreshInterval.Duration, MaxStaleness: s.MaxStaleness.Duration,
		Log: log,
	}
	if s.AuthMethod != policyconfig.VaultAuthKubernetes {
		if id == nil {
			return nil, errors.New("Vault " + s.AuthMethod + " auth needs the SPIFFE Workload API: set identity.trustDomain in the config and " + wellknown.EnvSPIFFESocket)
		}
		vo.Identity = id
	}
	return credentials.NewVault(vo)
}

// start runs the background parts and reports credential reads and health in m.
func (w *wiring) start(ctx context.Context, c *policyconfig.Config, m *metrics.Metrics) {
	m.WatchCredential(credentialKind(c.Credentials), func() bool {
		// Sources answer from what they hold; one that has to fetch first is bounded by the timeout.
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := w.creds.Get(ctx)
		return err == nil
	})
	if w.wif != nil {
		go w.wif.Run(ctx)
	}
	if w.vault == nil {
		return
	}
	w.vault.SetOnRead(func(err error) {
		result := "success"
		if err != nil {
			result = "failure"
		}
		m.CredentialReads.WithLabelValues("vault", result).Inc()
	})
	go w.vault.Run(ctx)
}

// credentialKind names the config's credential source for metrics.
func credentialKind(c policyconfig.Credentials) string {
	switch {
	case c.Vault != nil:
		return "vault"
	case c.Secret != nil:
		return "secret"
	case c.WorkloadIdentityFederation != nil:
		return "workload_identity_federation"
	case c.File != nil:
		return "file"
	default:
		return "env"
	}
}

// workload is the identity written to audit records and used as the Workload limit key: the SPIFFE ID
// when SPIFFE is on (Ready guarantees the SVID is exactly this ID before any request is served), else
// the --workload flag.
func (w *wiring) workload(fallback string) string {
	if w.identity != nil && w.expected.ServiceAccount != "" {
		return w.expected.String()
	}
	return fallback
}

// source is the pod's SPIFFE identity as the credential broker's client uses it, or nil without one.
func (w *wiring) source() redisbroker.Source {
	if w.identity == nil {
		return nil
	}
	return w.identity
}

func (w *wiring) close() {
	if w.identity != nil {
		w.identity.Close()
	}
}
