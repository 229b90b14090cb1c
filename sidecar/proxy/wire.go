package proxy

import (
	"net/http"
	"strings"

	"github.com/claude-guard/claude-guard/sidecar/decide"
)

// RuleProtocol names refusals of HTTP framing the proxy does not speak (protocol upgrades).
const RuleProtocol = "protocol"

// ProbePath is Claude Code's connectivity probe (HEAD /api/hello, sent when non-essential traffic is
// on). The sidecar answers it itself: the upstream's answer would say nothing about the policy, and
// the probe must not cost a request against the limits.
const ProbePath = "/api/hello"

// WithProbe answers the connectivity probe before anything is counted or audited.
func WithProbe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != ProbePath || (r.Method != http.MethodHead && r.Method != http.MethodGet) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte("{}\n")) // a failed write means the prober left
		}
	})
}

// WithWire decides the framing questions before any stage reads the request, so nothing is
// forwarded by accident:
//   - a protocol upgrade (Upgrade: websocket, h2c) is refused: the reverse proxy would otherwise
//     tunnel bytes the policy never sees;
//   - a request framed by Transfer-Encoding is answered and its connection closed. net/http reads it by
//     Transfer-Encoding alone and drops any Content-Length, so the proxy cannot tell the
//     smuggling-shaped case (both headers) apart; RFC 9112 §6.1 requires closing the connection after
//     it, and closing after every chunked request costs the SDKs nothing: they send Content-Length.
//     Upstream, the body always goes with its own Content-Length (it was read whole);
//   - method-override headers are removed, so an upstream or a proxy in between cannot read a
//     different method from the one the policy checked.
func WithWire(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := FromContext(r.Context())
		if up := r.Header.Get("Upgrade"); up != "" || headerHasToken(r.Header, "Connection", "upgrade") {
			w.Header().Set("Connection", "close")
			ex.refuse(w, &decide.Denial{Rule: RuleProtocol, Status: http.StatusBadRequest, Type: decide.TypeInvalidRequest,
				Message: "claude-guard: protocol upgrades are not supported: send plain HTTP/1.1 or HTTP/2 requests (rule protocol)"}, false, 0)
			return
		}
		if len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
		}
		for name := range r.Header {
			if methodOverrideHeaders[normalHeaderName(name)] {
				r.Header.Del(name)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// methodOverrideHeaders are the headers frameworks read to replace a request's method.
var methodOverrideHeaders = map[string]bool{"x-http-method-override": true, "x-http-method": true, "x-method-override": true}

// credentialHeaders are removed from every outbound request in any spelling a server might normalise
// to them (X_Api_Key, authorization_, " x-api-key"): the workload's own credentials (a placeholder key,
// an end-user token) must never reach the upstream.
var credentialHeaders = map[string]bool{"x-api-key": true, "authorization": true, "proxy-authorization": true, "cookie": true, "anthropic-api-key": true}

// normalHeaderName is a header name the way lenient servers read it: case-folded, underscores as
// dashes, surrounding dashes and spaces dropped.
func normalHeaderName(name string) string {
	return strings.Trim(strings.ReplaceAll(strings.ToLower(name), "_", "-"), "- \t")
}

// stripCredentials removes every credential header, and the end-user header when one is set, in any
// spelling.
func stripCredentials(h http.Header, endUserHeader string) {
	eu := ""
	if endUserHeader != "" {
		eu = normalHeaderName(endUserHeader)
	}
	for name := range h {
		n := normalHeaderName(name)
		if credentialHeaders[n] || (eu != "" && n == eu) {
			delete(h, name)
		}
	}
}

// headerHasToken reports whether a comma-separated header (Connection) lists token.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
