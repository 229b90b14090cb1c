package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/sidecar/credentials"
	"github.com/claude-guard/claude-guard/sidecar/decide"
	"github.com/claude-guard/claude-guard/sidecar/usage"
)

// NewTransport returns the upstream transport: pooled HTTP/1.1 and HTTP/2 (negotiated over TLS)
// connections with a timeout on every phase except reading the body, which may stream for minutes.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// A non-streaming Messages call answers only when the whole completion is done.
		ResponseHeaderTimeout: 10 * time.Minute,
		// We ask for identity encoding so usage can be read from the body; never decompress behind
		// the client's back.
		DisableCompression: true,
	}
}

// 8 KiB copy buffers: every open stream holds one for its lifetime, and SSE events are small.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}

type bufferPool struct{}

func (bufferPool) Get() []byte  { return *(bufPool.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { bufPool.Put(&b) }

// newForwarder is the end of the chain: it sends the decided-on body upstream with the injected key,
// streams the response back unbuffered and meters it.
func newForwarder(o Options) http.Handler {
	upstream := o.Upstream
	creds := o.Credentials
	rp := &httputil.ReverseProxy{
		Transport:  o.Transport,
		BufferPool: bufferPool{},
		ErrorLog:   slog.NewLogLogger(o.Log.Handler(), slog.LevelWarn),
		Rewrite: func(pr *httputil.ProxyRequest) {
			ex := FromContext(pr.In.Context())
			if path := ex.Decision.Path; path != "" {
				// An aliased model id in the path: send the model the policy checked. The query is kept.
				pr.Out.URL.Path, pr.Out.URL.RawPath = path, ""
			}
			pr.SetURL(upstream)
			out := pr.Out
			if ex.modelsList != nil {
				out.URL.RawQuery = modelsListQuery
			}
			stripCredentials(out.Header, endUserHeader(ex))
			out.Header.Del("Accept-Encoding")
			if ex.cred.bearer {
				out.Header.Set("Authorization", "Bearer "+ex.cred.key)
				addBeta(out.Header, credentials.OAuthBeta)
			} else {
				out.Header.Set("X-Api-Key", ex.cred.key)
			}
			if ex.Body != nil {
				out.Body = io.NopCloser(bytes.NewReader(ex.Body))
				out.ContentLength = int64(len(ex.Body))
				out.TransferEncoding = nil
				body := ex.Body
				out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
			}
			// Trace context: the sidecar's span becomes the upstream's parent (nothing without tracing).
			o.Telemetry.Inject(pr.In.Context(), out.Header)
			ex.Upstream.Forwarded = true
			// The client's path: the upstream's may have a base path in front.
			ex.Upstream.Messages = pr.In.URL.Path == policyconfig.PathMessages
			ex.Upstream.Start = time.Now()
		},
		ModifyResponse: func(resp *http.Response) error {
			ex := FromContext(resp.Request.Context())
			ex.Upstream.Latency = time.Since(ex.Upstream.Start)
			ex.Upstream.RequestID = resp.Header.Get("request-id")
			if resp.StatusCode == http.StatusUnauthorized {
				// The key may have been rotated: re-read it before the next request.
				creds.Invalidate()
			}
			if ex.modelsList != nil && resp.StatusCode == http.StatusOK {
				if err := filterModelsList(resp, ex); err != nil {
					return err
				}
			}
			m := &meter{rc: resp.Body, ex: ex, ok: resp.StatusCode/100 == 2 && ex.Upstream.Messages}
			mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
			switch {
			case mt == "text/event-stream":
				m.sse = &usage.Stream{}
			case mt == "application/json" && resp.StatusCode == http.StatusOK:
				m.json = &bytes.Buffer{}
			}
			resp.Body = m
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			ex := FromContext(r.Context())
			if errors.Is(err, context.Canceled) || r.Context().Err() != nil {
				ex.ClientAborted = true
				return
			}
			if errors.Is(err, errModelsList) {
				o.Log.Warn("Refusing a model list the sidecar could not filter", "error", err.Error())
				ex.refuse(w, &decide.Denial{Rule: RuleModelsList, Status: http.StatusBadGateway, Type: decide.TypeAPI,
					Message: "claude-guard: the upstream's model list could not be read, so it cannot be filtered by policy"}, true, 0)
				return
			}
			o.Log.Warn("Upstream request failed", "path", r.URL.Path, "error", err.Error())
			status := http.StatusBadGateway
			if errors.Is(err, context.DeadlineExceeded) {
				status = http.StatusGatewayTimeout
			} else {
				// No answer at all (refused, reset, TLS): the upstream did not take the request, so
				// its reservation is refunded rather than charged. A timeout may have been billed.
				ex.Upstream.Unanswered = true
			}
			ex.refuse(w, &decide.Denial{Rule: "upstream", Status: status, Type: decide.TypeAPI,
				Message: "claude-guard: the upstream API could not be reached"}, true, 0)
		},
	}
	return rp
}

// addBeta adds a beta flag to the anthropic-beta header unless the client already sent it; the
// client's own values (repeated headers, comma lists) are kept as they are.
func addBeta(h http.Header, beta string) {
	if !headerLists(h, "Anthropic-Beta", func(b string) bool { return b == beta }) {
		h.Add("Anthropic-Beta", beta)
	}
}
