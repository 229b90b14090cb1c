package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/sidecar/config"
	"github.com/claude-guard/claude-guard/sidecar/credentials"
	"github.com/claude-guard/claude-guard/sidecar/limits"
	"github.com/claude-guard/claude-guard/sidecar/metrics"
	"github.com/claude-guard/claude-guard/sidecar/proxy"
)

const apiKey = "sk-ant-redisbench"

// proxyConfig is the policy of the end-to-end run: the limits of benchConfig, shared through Redis.
const proxyConfig = `apiVersion: sidecar.claudeguard.io/v1
kind: SidecarConfig
policy: {namespace: team-a, name: chat, tenant: acme}
credentials: {env: {name: UNUSED}}
models: {allow: ["claude-*"]}
prices: [{model: "claude-*", inputUSD: "3", outputUSD: "15"}]
limits:
  backend: Redis
  redisURL: REDIS_URL
  rules:
  - {name: rpm, key: Workload, window: Minute, requests: 1000000000}
  - {name: tpm, key: Workload, window: Minute, tokens: 1000000000000}
  - {name: user-tph, key: EndUser, window: Hour, tokens: 1000000000000}
  - {name: ns-rpd, source: tenant, key: Namespace, window: Day, requests: 1000000000}
  - {name: ns-tpd, source: tenant, key: Namespace, window: Day, tokens: 1000000000000}
budgets: [{name: usd, key: Namespace, window: Month, usd: "1000000"}]
`

// endToEnd serves the sidecar's handler twice on loopback, once with the in-memory limiter and once with
// the Redis one (same policy), in front of the fake upstream, and paces rate requests/s through each in
// alternating rounds. It returns the client-side latencies of each.
func endToEnd(ctx context.Context, redisURL string, rate int, duration time.Duration) (mem, red []time.Duration, errs int, err error) {
	up, err := serve(fakeupstream.New(apiKey))
	if err != nil {
		return nil, nil, 0, err
	}
	defer up.Close()
	cfg, err := config.Compile([]byte(strings.Replace(proxyConfig, "REDIS_URL", redisURL, 1)), nil)
	if err != nil {
		return nil, nil, 0, err
	}
	rl, err := limits.NewRedis(limits.RedisOptions{URL: redisURL, Rules: cfg.Rules, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, nil, 0, err
	}
	defer rl.Close()
	upURL, _ := url.Parse("http://" + up.Addr)
	handler := func(l limits.Limiter) http.Handler {
		return proxy.New(proxy.Options{Upstream: upURL, Policy: config.NewStore(cfg).Policy, Credentials: credentials.Static(apiKey),
			Limiter: l, Metrics: metrics.New(), Log: slog.New(slog.DiscardHandler), Workload: "bench"})
	}
	ms, err := serve(handler(limits.NewMemory(cfg.Rules)))
	if err != nil {
		return nil, nil, 0, err
	}
	defer ms.Close()
	rs, err := serve(handler(rl))
	if err != nil {
		return nil, nil, 0, err
	}
	defer rs.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true}, Timeout: 30 * time.Second}
	body := `{"model":"claude-haiku-4-5","max_tokens":256,"messages":[{"role":"user","content":"` + strings.Repeat("x", 2000) + `"}]}`
	warm := min(duration, time.Second)
	pace(ctx, client, "http://"+ms.Addr, body, rate, warm)
	pace(ctx, client, "http://"+rs.Addr, body, rate, warm)
	for range 2 { // alternate, so that other load on the host hits both alike
		m, e1 := pace(ctx, client, "http://"+ms.Addr, body, rate, duration/2)
		r, e2 := pace(ctx, client, "http://"+rs.Addr, body, rate, duration/2)
		mem, red, errs = append(mem, m...), append(red, r...), errs+e1+e2
	}
	return mem, red, errs, nil
}

type server struct {
	Addr string
	srv  *http.Server
}

func (s *server) Close() { _ = s.srv.Close() }

func serve(h http.Handler) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{Addr: ln.Addr().String(), srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			fmt.Println("redisbench: server stopped:", err)
		}
	}()
	return s, nil
}

// pace sends rate Messages requests/s to base for d (open loop, paced like the limiter runs) and returns
// their latencies and the number that failed.
func pace(ctx context.Context, c *http.Client, base, body string, rate int, d time.Duration) ([]time.Duration, int) {
	res := paced(rate, d, func(int) (time.Duration, error) {
		t0 := time.Now()
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/messages", strings.NewReader(body))
		req.Header.Set("anthropic-version", "2023-06-01")
		req.Header.Set("content-type", "application/json")
		resp, err := c.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		return time.Since(t0), err
	})
	return res.total, res.errors
}
