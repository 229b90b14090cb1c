package testservers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var prometheusDir = sync.OnceValues(func() (string, error) { return ToolDir("CLAUDE_GUARD_PROMETHEUS_DIR", "prometheus.sh") })

// ScrapeTarget is one endpoint Prometheus scrapes every second.
type ScrapeTarget struct {
	Job  string
	Addr string // host:port
	// BearerToken is sent as Authorization: Bearer (the sidecar's metrics token); empty sends none.
	BearerToken string
}

// Prometheus is a running Prometheus server with its OTLP receiver on: OTLP metrics pushed to
// OTLPMetricsURL become series like scraped ones (job = service.name).
type Prometheus struct {
	URL            string
	OTLPMetricsURL string
	proc           *process
}

// StartPrometheus starts Prometheus on a free loopback port, scraping targets every second, and waits
// until it is ready. Resource attributes k8s.namespace.name and k8s.pod.name of OTLP metrics are
// promoted to labels. It is stopped when the test ends.
func StartPrometheus(t testing.TB, targets ...ScrapeTarget) *Prometheus {
	t.Helper()
	binDir, err := prometheusDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := runDir(t, "cg-prom-")
	cfg := "global: {scrape_interval: 1s, evaluation_interval: 1s}\n" +
		"otlp: {promote_resource_attributes: [k8s.namespace.name, k8s.pod.name]}\nscrape_configs:\n"
	for i, tg := range targets {
		cfg += fmt.Sprintf("- job_name: %q\n  static_configs: [{targets: [%q]}]\n", tg.Job, tg.Addr)
		if tg.BearerToken != "" {
			tokenFile := filepath.Join(dir, "token-"+strconv.Itoa(i))
			if err := os.WriteFile(tokenFile, []byte(tg.BearerToken), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg += fmt.Sprintf("  authorization: {type: Bearer, credentials_file: %q}\n", tokenFile)
		}
	}
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "http://127.0.0.1:" + strconv.Itoa(freePort(t))
	p := &Prometheus{URL: base, OTLPMetricsURL: base + "/api/v1/otlp/v1/metrics"}
	p.proc, err = startProcess("prometheus", filepath.Join(dir, "prometheus.log"), baseEnv(dir), filepath.Join(binDir, "prometheus"),
		"--config.file="+config, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+strings.TrimPrefix(base, "http://"), "--web.enable-otlp-receiver", "--log.level=warn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.proc.stop)
	p.proc.logOnFailure(t)
	if err := waitFor(p.proc, 60*time.Second, "Prometheus to be ready", func() error { return httpOK(base + "/-/ready") }); err != nil {
		t.Fatal(err)
	}
	return p
}

// Series is one element of an instant query's vector result.
type Series struct {
	Labels map[string]string
	Value  float64
}

// Query runs an instant PromQL query and returns its vector (a scalar comes back as one unlabelled
// series). An error says what Prometheus answered.
func (p *Prometheus) Query(ctx context.Context, promql string) ([]Series, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/api/v1/query?"+url.Values{"query": {promql}}.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status, Error string
		Data          struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		}
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("query %q: HTTP %d: %s", promql, resp.StatusCode, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", promql, r.Error)
	}
	return decodeResult(r.Data.ResultType, r.Data.Result)
}

func decodeResult(typ string, raw json.RawMessage) ([]Series, error) {
	parse := func(v [2]any) (float64, error) {
		s, _ := v[1].(string)
		return strconv.ParseFloat(s, 64)
	}
	switch typ {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(raw, &vec); err != nil {
			return nil, err
		}
		out := make([]Series, 0, len(vec))
		for _, s := range vec {
			f, err := parse(s.Value)
			if err != nil {
				return nil, err
			}
			out = append(out, Series{Labels: s.Metric, Value: f})
		}
		return out, nil
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		f, err := parse(v)
		return []Series{{Value: f}}, err
	default:
		return nil, fmt.Errorf("unexpected result type %q", typ)
	}
}

// httpOK is nil once url answers 200.
func httpOK(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	return nil
}
