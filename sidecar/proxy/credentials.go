package proxy

import (
	"net/http"

	"github.com/claude-guard/claude-guard/sidecar/credentials"
	"github.com/claude-guard/claude-guard/sidecar/decide"
)

// WithCredentials loads the API key for the forwarder; without one the request fails with a retryable
// 503 rather than going upstream unauthenticated.
func WithCredentials(src credentials.Source, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := FromContext(r.Context())
		key, err := src.Get(r.Context())
		if err != nil {
			ex.refuse(w, &decide.Denial{Rule: "credentials", Status: http.StatusServiceUnavailable, Type: decide.TypeAPI,
				Message: "claude-guard: no API key is available to the proxy yet"}, true, 0)
			return
		}
		ex.cred.key = key
		if b, ok := src.(credentials.BearerSource); ok && b.Bearer() {
			ex.cred.bearer = true
		}
		next.ServeHTTP(w, r)
	})
}
