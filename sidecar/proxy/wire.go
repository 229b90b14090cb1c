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
//     different method from the one the policy checked;
//   - credential headers (and the end-user header) spelled in a way a lenient server reads as one
//     (X_Api_Key, authorization_) are removed; the forwarder removes the canonical spellings once the
//     end-user check has read them, so no spelling reaches the upstream.
func WithWire(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := FromContext(r.Context())
		if up := r.Header.Get("Upgrade"); up != "" || headerLists(r.Header, "Connection", func(t string) bool { return strings.EqualFold(t, "upgrade") }) {
			w.Header().Set("Connection", "close")
			ex.refuse(w, &decide.Denial{Rule: RuleProtocol, Status: http.StatusBadRequest, Type: decide.TypeInvalidRequest,
				Message: "claude-guard: protocol upgrades are not supported: send plain HTTP/1.1 or HTTP/2 requests (rule protocol)"}, false, 0)
			return
		}
		if len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
		}
		dropSpelledHeaders(r.Header, endUserHeader(ex))
		next.ServeHTTP(w, r)
	})
}

// endUserHeader is the header the policy's end-user tokens come in, "" without end users.
func endUserHeader(ex *Exchange) string {
	if eu := ex.Policy.Config.EndUser; eu != nil {
		return eu.Header
	}
	return ""
}

// dropSpelledHeaders removes method-override headers in any spelling, and credential headers and the
// end-user header in any spelling but the canonical one. It runs on every request, so names are
// normalised into stack buffers, not new strings.
func dropSpelledHeaders(h http.Header, endUser string) {
	var nameBuf, euBuf [maxNormalName]byte
	eu, euOK := normalHeaderName(&euBuf, endUser)
	euOK = euOK && endUser != ""
	euCanonical := http.CanonicalHeaderKey(endUser)
	for name := range h {
		n, ok := normalHeaderName(&nameBuf, name)
		if !ok {
			continue
		}
		canonical, credential := credentialHeaders[string(n)]
		switch {
		case methodOverrideHeaders[string(n)],
			credential && name != canonical,
			euOK && string(n) == string(eu) && name != euCanonical:
			delete(h, name)
		}
	}
}

// methodOverrideHeaders are the headers frameworks read to replace a request's method.
var methodOverrideHeaders = map[string]bool{"x-http-method-override": true, "x-http-method": true, "x-method-override": true}

// credentialHeaders are the workload's own credential headers (a placeholder key, an end-user token,
// cookies), by normalised name, with their canonical spelling: none may reach the upstream.
var credentialHeaders = map[string]string{"x-api-key": "X-Api-Key", "authorization": "Authorization",
	"proxy-authorization": "Proxy-Authorization", "cookie": "Cookie", "anthropic-api-key": "Anthropic-Api-Key"}

// stripCredentials removes the canonical credential headers and the end-user header from an outbound
// request (WithWire removed every other spelling).
func stripCredentials(h http.Header, endUserHeader string) {
	for _, name := range credentialHeaders {
		h.Del(name)
	}
	if endUserHeader != "" {
		h.Del(endUserHeader)
	}
}

// maxNormalName bounds the header names worth normalising: longer ones match none of the names above.
const maxNormalName = 32

// normalHeaderName writes name into buf the way lenient servers read it: surrounding dashes,
// underscores and spaces dropped, case-folded, underscores as dashes. ok is false for a name too long
// to be one of the names looked for.
func normalHeaderName(buf *[maxNormalName]byte, name string) (n []byte, ok bool) {
	name = strings.Trim(name, "-_ \t")
	if len(name) > len(buf) {
		return nil, false
	}
	n = buf[:len(name)]
	for i := range len(name) {
		switch c := name[i]; {
		case c >= 'A' && c <= 'Z':
			n[i] = c + 'a' - 'A'
		case c == '_':
			n[i] = '-'
		default:
			n[i] = c
		}
	}
	return n, true
}

// headerLists reports whether a comma-separated list header (Connection, anthropic-beta), in any of
// its lines, has an element match accepts.
func headerLists(h http.Header, name string, match func(string) bool) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if match(strings.TrimSpace(t)) {
				return true
			}
		}
	}
	return false
}
