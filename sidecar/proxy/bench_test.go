package proxy_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/sidecar/audit"
	"github.com/claude-guard/claude-guard/sidecar/config"
	"github.com/claude-guard/claude-guard/sidecar/credentials"
	"github.com/claude-guard/claude-guard/sidecar/limits"
	"github.com/claude-guard/claude-guard/sidecar/metrics"
	"github.com/claude-guard/claude-guard/sidecar/proxy"
)

func body2KB() []byte {
	var b strings.Builder
	b.WriteString(`{"model":"claude-haiku-4-5","max_tokens":1024,"messages":[{"role":"user","content":"`)
	for b.Len() < 2000 {
		b.WriteString(`Explain how a token bucket differs from a fixed window rate limiter. `)
	}
	b.WriteString(`"}]}`)
	return []byte(b.String())
}

// BenchmarkRoundTrip compares a request sent to the fake upstream directly, through a bare
// httputil.ReverseProxy (the cost of the hop itself), and through the full chain (limits, audit to
// io.Discard, metrics), all over loopback HTTP in one process.
func BenchmarkRoundTrip(b *testing.B) {
	up := httptest.NewServer(fakeupstream.New(realKey))
	defer up.Close()
	cfg, err := config.Compile([]byte(baseConfig+"limits: {rules: [{name: r, key: Workload, window: Minute, requests: 1000000000}, {name: t, key: Workload, window: Minute, tokens: 1000000000000}]}\n"), nil)
	if err != nil {
		b.Fatal(err)
	}
	store := config.NewStore(cfg)
	upURL, _ := url.Parse(up.URL)
	h := proxy.New(proxy.Options{Upstream: upURL, Policy: store.Policy, Credentials: credentials.Static(realKey),
		Limiter: limits.NewMemory(cfg.Rules), Audit: audit.New(io.Discard), Metrics: metrics.New(),
		Log: slog.New(slog.NewJSONHandler(io.Discard, nil)), Workload: "w"})
	srv := httptest.NewServer(h)
	defer srv.Close()
	// The cost of the extra hop alone: a bare reverse proxy with no policy.
	bare := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(upURL) }})
	defer bare.Close()
	body := body2KB()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for _, tc := range []struct{ name, url string }{{"direct", up.URL}, {"bare-reverse-proxy", bare.URL}, {"sidecar", srv.URL}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest("POST", tc.url+"/v1/messages", bytes.NewReader(body))
				req.Header.Set("anthropic-version", "2023-06-01")
				req.Header.Set("x-api-key", realKey)
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil {
					b.Fatal(err)
				}
				if resp.StatusCode != 200 {
					b.Fatal(resp.Status)
				}
			}
		})
	}
}
