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

// setRateLimitHeaders reports the most constraining request and token quotas: the limit, what remains
// after this request's reservation, and when the window resets (RFC 3339, as Anthropic's headers). A
// kind with no rule gets no headers.
func setRateLimitHeaders(h http.Header, s limits.Status) {
	set := func(limit, remaining, reset string, q limits.Quota) {
		if q.Limit == 0 {
			return
		}
		h.Set(limit, strconv.FormatInt(q.Limit, 10))
		h.Set(remaining, strconv.FormatInt(q.Remaining, 10))
		h.Set(reset, q.Reset.UTC().Format(time.RFC3339))
	}
	set(HeaderRequestsLimit, HeaderRequestsRemaining, HeaderRequestsReset, s.Requests)
	set(HeaderTokensLimit, HeaderTokensRemaining, HeaderTokensReset, s.Tokens)
}
