package proxy

import (
	"net/http"
	"strconv"
	"time"

	"github.com/claude-guard/claude-guard/sidecar/limits"
)

// Rate-limit headers the proxy adds. They use claude-guard's own prefix: the upstream's
// anthropic-ratelimit-* headers describe the organisation's limits at Anthropic and pass through
// unchanged, and a client must never mistake the policy's limits for those.
const (
	HeaderRateLimitPrefix = "x-claude-guard-ratelimit-"

	HeaderRequestsLimit     = HeaderRateLimitPrefix + "requests-limit"
	HeaderRequestsRemaining = HeaderRateLimitPrefix + "requests-remaining"
	HeaderRequestsReset     = HeaderRateLimitPrefix + "requests-reset"
	HeaderTokensLimit       = HeaderRateLimitPrefix + "tokens-limit"
	HeaderTokensRemaining   = HeaderRateLimitPrefix + "tokens-remaining"
	HeaderTokensReset       = HeaderRateLimitPrefix + "tokens-reset"
)

// The header names in canonical form, computed once: setting them needs no canonicalisation per request.
var (
	requestHeaders = [3]string{http.CanonicalHeaderKey(HeaderRequestsLimit), http.CanonicalHeaderKey(HeaderRequestsRemaining), http.CanonicalHeaderKey(HeaderRequestsReset)}
	tokenHeaders   = [3]string{http.CanonicalHeaderKey(HeaderTokensLimit), http.CanonicalHeaderKey(HeaderTokensRemaining), http.CanonicalHeaderKey(HeaderTokensReset)}
)

// setRateLimitHeaders reports the most constraining request and token quotas: the limit, what remains
// after this request's reservation, and when the window resets (RFC 3339, as Anthropic's headers). A
// kind with no rule gets no headers. It is on every response, so it allocates one value slice per kind.
func setRateLimitHeaders(h http.Header, s limits.Status) {
	set := func(names *[3]string, q limits.Quota) {
		if q.Limit == 0 {
			return
		}
		vs := []string{strconv.FormatInt(q.Limit, 10), strconv.FormatInt(q.Remaining, 10), q.Reset.UTC().Format(time.RFC3339)}
		for i, name := range names {
			h[name] = vs[i : i+1 : i+1]
		}
	}
	set(&requestHeaders, s.Requests)
	set(&tokenHeaders, s.Tokens)
}
