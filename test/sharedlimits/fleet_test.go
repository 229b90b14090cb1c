//go:build integration

// Package sharedlimits runs several sidecars against one real Redis, as the replicas of a workload (or a
// gateway) would: each is an in-process proxy on its own listener with its own Redis limiter, in front of
// the fake Anthropic upstream, and the tests check what the fleet admits together.
package sharedlimits

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/internal/test/logbuf"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
	"github.com/claude-guard/claude-guard/sidecar/config"
	"github.com/claude-guard/claude-guard/sidecar/credentials"
	"github.com/claude-guard/claude-guard/sidecar/enduser"
	"github.com/claude-guard/claude-guard/sidecar/enduser/oidctest"
	"github.com/claude-guard/claude-guard/sidecar/limits"
	"github.com/claude-guard/claude-guard/sidecar/metrics"
	"github.com/claude-guard/claude-guard/sidecar/proxy"
)

const (
	apiKey        = "sk-ant-shared-limits-test"
	redisPassword = "hunter2-shared-redis"
)

// sidecar is one member of the fleet.
type sidecar struct {
	URL     string
	Limiter *limits.Redis
	Metrics *metrics.Metrics
	Logs    *logbuf.Buffer
}

// fleet is n sidecars with one policy, one Redis and one fake upstream.
type fleet struct {
	Redis    *testservers.Redis
	Fake     *fakeupstream.Server
	Sidecars []*sidecar
	client   *http.Client
}

// policy is a sidecar config for namespace team-a, policy chat, with the given failure mode and the
// limits/budgets YAML appended. The Redis URL is filled in by newFleet.
func policy(failureMode, rules string) string {
	return `apiVersion: sidecar.claudeguard.io/v1
kind: SidecarConfig
policy: {namespace: team-a, name: chat, tenant: acme}
identity: {namespace: team-a}
credentials: {env: {name: UNUSED}}
models: {allow: ["claude-haiku-*"]}
prices: [{model: "claude-haiku-*", inputUSD: "1", outputUSD: "5", cacheReadUSD: "0.1", cacheWrite5mUSD: "1.25"}]
limits:
  backend: Redis
  redisURL: "REDIS_URL"
  failureMode: ` + failureMode + "\n" + rules
}

// newFleet starts Redis (with a password), the fake upstream and n sidecars for configYAML.
func newFleet(t *testing.T, n int, configYAML string) *fleet {
	t.Helper()
	f := &fleet{
		Redis:  testservers.StartRedis(t, testservers.RedisOptions{Password: redisPassword}),
		Fake:   fakeupstream.New(apiKey),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 0}, Timeout: 30 * time.Second},
	}
	f.Fake.Record = true
	up := httptest.NewServer(f.Fake)
	t.Cleanup(up.Close)
	upURL, _ := url.Parse(up.URL)
	cfg, err := config.Compile([]byte(strings.Replace(configYAML, "REDIS_URL", f.Redis.URL, 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		s := &sidecar{Metrics: metrics.New(), Logs: &logbuf.Buffer{}}
		log := slog.New(slog.NewJSONHandler(s.Logs, nil))
		s.Limiter, err = limits.NewRedis(limits.RedisOptions{
			URL: cfg.Policy.Config.Limits.RedisURL, Rules: cfg.Rules, Log: log,
			// Production's 200 ms assumes a Redis next door and a CPU to spare; 200 clients on a shared
			// 2-core test machine can starve a dial for longer. The outage tests do not depend on it.
			Timeout:         time.Second,
			BreakerInterval: 250 * time.Millisecond,
			OnFailOpen:      func(op string) { s.Metrics.LimiterFailOpen.WithLabelValues(op).Inc() },
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Limiter.Close() })
		o := proxy.Options{
			Upstream: upURL, Policy: config.NewStore(cfg).Policy, Credentials: credentials.Static(apiKey),
			Limiter: s.Limiter, Metrics: s.Metrics, Log: log, Workload: fmt.Sprintf("team-a/chat-%d", i),
		}
		if eu := cfg.Policy.Config.EndUser; eu != nil {
			// As sidecar/app wires it: the limiter is the end users' replay store.
			a := startEndUsers(t, eu, s.Limiter, log)
			o.EndUser = func() *enduser.Authenticator { return a }
		}
		srv := httptest.NewServer(proxy.New(o))
		t.Cleanup(srv.Close)
		s.URL = srv.URL
		f.Sidecars = append(f.Sidecars, s)
	}
	t.Cleanup(func() { f.assertNoSecrets(t) })
	return f
}

// startEndUsers starts end-user verification with replay state in store and waits for its issuers.
func startEndUsers(t *testing.T, c *policyconfig.EndUser, store enduser.ReplayStore, log *slog.Logger) *enduser.Authenticator {
	t.Helper()
	return oidctest.StartAuthenticator(t, enduser.Options{Config: c, Replay: store, Log: log})
}

// result is what a client saw.
type result struct {
	Status int
	Header http.Header
	Body   string
}

// messages sends one Messages request (streamed when stream is set) to sidecar i and reads the response.
func (f *fleet) messages(t *testing.T, i int, maxTokens int, stream bool) result {
	t.Helper()
	return f.messagesWith(t, i, maxTokens, stream, nil)
}

// messagesWith is messages with extra request headers.
func (f *fleet) messagesWith(t *testing.T, i int, maxTokens int, stream bool, header http.Header) result {
	t.Helper()
	body := fmt.Sprintf(`{"model":"claude-haiku-4-5","max_tokens":%d,"stream":%v,"messages":[{"role":"user","content":"hello from client"}]}`, maxTokens, stream)
	req, err := http.NewRequest("POST", f.Sidecars[i%len(f.Sidecars)].URL+"/v1/messages", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("content-type", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		t.Errorf("request to sidecar %d: %v", i%len(f.Sidecars), err)
		return result{}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("reading from sidecar %d: %v", i%len(f.Sidecars), err)
	}
	return result{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// counter reads the Redis counter whose key matches pattern (exactly one must).
func (f *fleet) counter(t *testing.T, pattern string) (requests, amount int64) {
	t.Helper()
	c := f.Redis.Client(t)
	keys, err := c.Keys(context.Background(), pattern).Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys matching %q: %v, %v; want exactly one", pattern, keys, err)
	}
	v, err := c.HMGet(context.Background(), keys[0], "r", "a").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := func(x any) int64 { s, _ := x.(string); i, _ := strconv.ParseInt(s, 10, 64); return i }
	return n(v[0]), n(v[1])
}

// samplePeak samples the amount field of the counters matching pattern every 5 ms until the returned
// function is called, which returns the highest value seen.
func (f *fleet) samplePeak(t *testing.T, pattern string) func() int64 {
	stop := make(chan struct{})
	sampled := make(chan int64, 1)
	go func() {
		var peak int64
		defer func() { sampled <- peak }()
		c := f.Redis.Client(t)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			keys, _ := c.Keys(t.Context(), pattern).Result()
			for _, k := range keys {
				if a, err := c.HGet(t.Context(), k, "a").Int64(); err == nil && a > peak {
					peak = a
				}
			}
		}
	}()
	return func() int64 {
		close(stop)
		return <-sampled
	}
}

// scrape returns sidecar i's metrics text.
func (f *fleet) scrape(i int) string {
	rec := httptest.NewRecorder()
	f.Sidecars[i].Metrics.Handler(func() string { return "" }, "").ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// assertNoSecrets: neither the Redis password nor the API key reaches a log or a metric.
func (f *fleet) assertNoSecrets(t *testing.T) {
	for i, s := range f.Sidecars {
		for name, text := range map[string]string{"logs": s.Logs.String(), "metrics": f.scrape(i)} {
			for _, secret := range []string{redisPassword, apiKey} {
				if strings.Contains(text, secret) {
					t.Errorf("sidecar %d %s contain %q", i, name, secret)
				}
			}
		}
	}
}
