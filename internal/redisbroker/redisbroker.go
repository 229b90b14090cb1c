// Package redisbroker hands each namespace's Redis ACL password to that namespace's injected sidecars
// and to nobody else. Without it the password sits in a Secret of the namespace, which the namespace's
// admins can read: with it they could call Redis themselves and fill its memory with keys of their own
// namespace, which every other tenant's limiter shares (docs/threat-model.md).
//
// The broker is an HTTPS endpoint of the manager that requires a client X.509-SVID (SPIFFE mTLS on both
// sides: the manager presents its own SVID, the sidecar requires exactly that ID). A caller whose SVID
// is spiffe://<trust domain>/ns/<namespace>/sa/<service account> gets the password of <namespace>'s
// user, and only if a policy of that namespace renders the broker into its config. The operator
// registers SVIDs of that shape only for sidecars it verified against its own render
// (internal/spireentry), so an app container, a hand-written copy of the sidecar or another pod of the
// namespace has none.
package redisbroker

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-logr/logr"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/claude-guard/claude-guard/internal/identity"
)

// Path is the broker's one endpoint (GET).
const Path = "/v1/redis-credentials"

// Credentials are a namespace's Redis ACL user and password.
type Credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// ErrNotEntitled is returned by a Lookup for a namespace none of whose policies get their Redis
// password from the broker.
var ErrNotEntitled = errors.New("no policy of the namespace gets its Redis password from the broker")

// Lookup returns the credentials of namespace for a caller of trust domain td, or an error wrapping
// ErrNotEntitled.
type Lookup func(ctx context.Context, namespace string, td spiffeid.TrustDomain) (Credentials, error)

// Source is what the broker and its clients present and verify: their own X.509-SVID and the bundles
// that verify the other side (a Workload API source).
type Source interface {
	x509svid.Source
	x509bundle.Source
}

// ServerTLS is the broker's TLS configuration: it presents src's SVID and accepts only clients with an
// SVID of trust domain td (the caller's namespace is checked per request).
func ServerTLS(src Source, td spiffeid.TrustDomain) *tls.Config {
	c := tlsconfig.MTLSServerConfig(src, src, tlsconfig.AuthorizeMemberOf(td))
	c.MinVersion = tls.VersionTLS13
	return c
}

// Handler serves Path.
type Handler struct {
	Lookup Lookup
	Log    logr.Logger
}

// ServeHTTP answers with the credentials of the namespace the client's SVID names. Refusals say why in
// terms of the caller's own identity only.
func (h Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != Path {
		http.Error(w, "not found: the broker serves "+Path+" only", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed: use GET", http.StatusMethodNotAllowed)
		return
	}
	id, ns, err := caller(r.TLS)
	if err != nil {
		http.Error(w, "forbidden: "+err.Error(), http.StatusForbidden)
		return
	}
	creds, err := h.Lookup(r.Context(), ns, id.TrustDomain())
	switch {
	case errors.Is(err, ErrNotEntitled):
		h.Log.Info("Refused Redis credentials", "spiffeID", id.String(), "reason", err.Error())
		http.Error(w, "forbidden: "+err.Error(), http.StatusForbidden)
		return
	case err != nil:
		h.Log.Error(err, "Failed to look up Redis credentials", "spiffeID", id.String())
		http.Error(w, "the broker cannot answer now; retry", http.StatusServiceUnavailable)
		return
	}
	h.Log.V(1).Info("Handed out Redis credentials", "spiffeID", id.String(), "user", creds.Username)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(creds)
}

// caller returns the verified client SVID's ID and the namespace it names.
func caller(cs *tls.ConnectionState) (spiffeid.ID, string, error) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return spiffeid.ID{}, "", errors.New("a client X.509-SVID is required")
	}
	id, err := x509svid.IDFromCert(cs.PeerCertificates[0])
	if err != nil {
		return spiffeid.ID{}, "", fmt.Errorf("the client certificate is not an X.509-SVID: %w", err)
	}
	w, err := identity.Parse(id)
	if err != nil {
		return spiffeid.ID{}, "", err
	}
	return id, w.Namespace, nil
}
