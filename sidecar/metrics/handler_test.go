package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

// TestReadinessDetailsNeedTheToken: a sidecar that is not ready says why only to the token's bearer;
// the kubelet still sees the 503.
func TestReadinessDetailsNeedTheToken(t *testing.T) {
	const token = "t0ken"
	h := New().Handler(func() string { return "no SPIFFE identity: spiffe://cluster.example/ns/acme/sa/chat" }, policyconfig.MetricsTokenHash(token))
	for _, tc := range []struct {
		bearer, want, never string
	}{
		{"", "not ready: details need the metrics token", "spiffe://"},
		{token, "not ready: no SPIFFE identity: spiffe://cluster.example/ns/acme/sa/chat", ""},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/readyz", nil)
		if tc.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+tc.bearer)
		}
		h.ServeHTTP(rec, req)
		body := rec.Body.String()
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(body, tc.want) || (tc.never != "" && strings.Contains(body, tc.never)) {
			t.Errorf("bearer %q: %d %q, want 503 with %q", tc.bearer, rec.Code, body, tc.want)
		}
	}
}
