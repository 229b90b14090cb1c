// Package metrics defines the sidecar's Prometheus metrics and serves them, with the health endpoints,
// on a port separate from the proxy.
package metrics

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the sidecar's collectors.
type Metrics struct {
	Registry *prometheus.Registry

	Requests         *prometheus.CounterVec   // endpoint, decision, model, status
	Tokens           *prometheus.CounterVec   // type, model
	Spend            *prometheus.CounterVec   // namespace, tenant, model: USD charged at the config's prices
	Duration         *prometheus.HistogramVec // endpoint, stream
	UpstreamDuration *prometheus.HistogramVec // endpoint, stream: time to upstream response headers
	LimiterRejected  *prometheus.CounterVec   // rule
	LimiterErrors    *prometheus.CounterVec   // op
	LimiterFailOpen  *prometheus.CounterVec   // op: served by the local fallback while the shared backend was down
	InFlight         prometheus.Gauge
	ConfigReloads    *prometheus.CounterVec // result
	ConfigInfo       *prometheus.GaugeVec   // hash
	CredentialReads  *prometheus.CounterVec // source, result: reads of the API key from its source
	// Per end user, filled only when the policy opts in (audit.endUserMetricLabel): each user is a series.
	EndUserRequests *prometheus.CounterVec // end_user, decision
	EndUserTokens   *prometheus.CounterVec // end_user, type (input, output)

	config atomic.Pointer[ConfigState]
}

// ConfigState is what GET /config reports: which config the sidecar enforces. Hashes only: nothing of
// the config itself, so the endpoint can be read by the operator without exposing policy details.
type ConfigState struct {
	// Document is the hash of the config file as read (the rendered ConfigMap's hash).
	Document string `json:"document"`
	// Hash is the hash of the config in force after flags and defaults (audit records carry it).
	Hash string `json:"hash"`
}

// SetConfig records the config in force, for GET /config and claude_guard_config_info.
func (m *Metrics) SetConfig(st ConfigState) {
	m.config.Store(&st)
	m.ConfigInfo.Reset()
	m.ConfigInfo.WithLabelValues(st.Hash).Set(1)
}

// New registers every metric in a fresh registry (with Go and process collectors).
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	m := &Metrics{
		Registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claude_guard_requests_total", Help: "Requests by endpoint, decision (allow, deny, shadow_deny, error), model and HTTP status.",
		}, []string{"endpoint", "decision", "model", "status"}),
		Tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claude_guard_tokens_total", Help: "Tokens reported by the upstream, by type (input, output, cache_read, cache_creation) and model.",
		}, []string{"type", "model"}),
		Spend: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claude_guard_spend_usd_total", Help: "US dollars charged to budgets at the cluster's prices, by namespace, tenant (the ClaudeTenant that narrowed the policy; empty without one) and model (policies with a USD budget, which carry the prices).",
		}, []string{"namespace", "tenant", "model"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "claude_guard_request_duration_seconds", Help: "Time from request to the end of the response.", Buckets: buckets,
		}, []string{"endpoint", "stream"}),
		UpstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "claude_guard_upstream_response_seconds", Help: "Time from forwarding to the upstream's response headers.", Buckets: buckets,
		}, []string{"endpoint", "stream"}),
		LimiterRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claude_guard_limiter_rejections_total", Help: "Requests refused by a rate limit or budget, by rule.",
		}, []string{"rule"}),
		LimiterErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claude_guard_limiter_errors_total", Help: "Rate limiter failures, by operation (reserve, settle, refund).",
		}, []string{"op"}),
		LimiterFailOpen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claude_guard_limiter_fail_open_total", Help: "Limiter operations (reserve, settle, refund, once) served by this sidecar's local counters because the shared backend was unreachable and the policy fails open.",
		}, []string{"op"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "claude_guard_requests_in_flight", Help: "Requests being proxied, streams included.",
		}),
		ConfigReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claude_guard_config_reloads_total", Help: "Config loads by result (success, failure).",
		}, []string{"result"}),
		ConfigInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "claude_guard_config_info", Help: "1 for the config hash in force.",
		}, []string{"hash"}),
		CredentialReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claude_guard_credential_reads_total", Help: "Attempts to read the API key from its source (vault), by result (success, failure).",
		}, []string{"source", "result"}),
		EndUserRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claude_guard_end_user_requests_total", Help: "Requests by verified end user and decision (only when the policy sets audit.endUserMetricLabel).",
		}, []string{"end_user", "decision"}),
		EndUserTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claude_guard_end_user_tokens_total", Help: "Tokens by verified end user and type (only when the policy sets audit.endUserMetricLabel).",
		}, []string{"end_user", "type"}),
	}
	r.MustRegister(m.Requests, m.Tokens, m.Spend, m.Duration, m.UpstreamDuration, m.LimiterRejected, m.LimiterErrors, m.LimiterFailOpen, m.InFlight, m.ConfigReloads, m.ConfigInfo, m.CredentialReads,
		m.EndUserRequests, m.EndUserTokens)
	return m
}

// WatchAuditFailures exports failed, the running count of audit records that could not be written.
func (m *Metrics) WatchAuditFailures(failed func() uint64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "claude_guard_audit_write_failures_total", Help: "Audit records that could not be written.",
	}, func() float64 { return float64(failed()) }))
}

// WatchLimiterBackend exports up, whether the shared rate limit backend (Redis) answered its last call.
func (m *Metrics) WatchLimiterBackend(up func() bool) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "claude_guard_limiter_backend_up", Help: "1 while the shared rate limit backend answers, 0 during an outage.",
	}, func() float64 {
		if up() {
			return 1
		}
		return 0
	}))
}

// WatchCredential exports up, whether the sidecar holds a usable API key from its source right now (a
// stale Vault key past its allowed staleness, a missing file or an expired exchange counts as down).
func (m *Metrics) WatchCredential(source string, up func() bool) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "claude_guard_credential_up", Help: "1 while the sidecar holds a usable API key from its source (vault, secret, file, env, workload_identity_federation), 0 while calls are refused for the lack of one.",
		ConstLabels: prometheus.Labels{"source": source},
	}, func() float64 {
		if up() {
			return 1
		}
		return 0
	}))
}

// Ready reports why the sidecar is not ready, or "" when it is.
type Ready func() string

// Handler serves /metrics, /healthz (the process is up), /readyz (Ready says so) and /config (the
// document in force, by hash). With tokenSHA256 set (policyconfig.Server.MetricsTokenSHA256), /metrics
// and the reason /readyz gives for not being ready are served only to a request bearing the token: the
// port listens on the pod's IP, where every pod of the cluster reaches it, and the metrics say which
// models a tenant uses, how much, and what was refused. Probes (the kubelet) and the operator's
// stale-config check (/config, a hash) need no token.
func (m *Metrics) Handler(ready Ready, tokenSHA256 string) http.Handler {
	authorized := bearerOf(tokenSHA256)
	mux := http.NewServeMux()
	prom := promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Timeout: 10 * time.Second})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="claude-guard-metrics"`)
			http.Error(w, "the sidecar's metrics need its metrics token (Authorization: Bearer)", http.StatusUnauthorized)
			return
		}
		prom.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeOK(w) })
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, _ *http.Request) {
		st := m.config.Load()
		if st == nil {
			http.Error(w, "no config loaded", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if why := ready(); why != "" {
			if !authorized(r) {
				why = "details need the metrics token"
			}
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		writeOK(w)
	})
	return mux
}

// bearerOf returns whether a request carries the token whose SHA-256 is tokenSHA256 (always true when
// it is empty). Hashes are compared in constant time.
func bearerOf(tokenSHA256 string) func(*http.Request) bool {
	if tokenSHA256 == "" {
		return func(*http.Request) bool { return true }
	}
	want, err := hex.DecodeString(tokenSHA256)
	if err != nil {
		return func(*http.Request) bool { return false } // validated with the config; fail closed
	}
	return func(r *http.Request) bool {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			return false
		}
		got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		return subtle.ConstantTimeCompare(got[:], want) == 1
	}
}

func writeOK(w http.ResponseWriter) {
	// A probe that hung up cannot be told anything; the kubelet just probes again.
	_, _ = w.Write([]byte("ok\n"))
}
