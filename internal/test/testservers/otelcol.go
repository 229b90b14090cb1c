package testservers

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var otelcolDir = sync.OnceValues(func() (string, error) { return ToolDir("CLAUDE_GUARD_OTELCOL_DIR", "otelcol.sh") })

// Collector is a running OpenTelemetry Collector (hack/otelcol.sh): an OTLP/HTTP receiver on
// Endpoint, batching, and OTLP/HTTP exporters to where CollectorOptions say.
type Collector struct {
	// Endpoint is the receiver's base URL, what OTEL_EXPORTER_OTLP_ENDPOINT names.
	Endpoint string
	proc     *process
}

// CollectorOptions say where the collector forwards each signal (full OTLP/HTTP URLs).
type CollectorOptions struct {
	MetricsTo string // e.g. Prometheus.OTLPMetricsURL
	TracesTo  string // e.g. an OTLP trace sink's /v1/traces
}

// StartCollector starts the collector on a free loopback port and waits until its receiver answers.
func StartCollector(t testing.TB, o CollectorOptions) *Collector {
	t.Helper()
	binDir, err := otelcolDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := runDir(t, "cg-otelcol-")
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	var exporters, pipelines []string
	add := func(signal, key, to string) {
		if to == "" {
			return
		}
		exporters = append(exporters, fmt.Sprintf("  otlp_http/%s: {%s: %q, compression: gzip, retry_on_failure: {initial_interval: 100ms, max_interval: 1s}}", signal, key, to))
		pipelines = append(pipelines, fmt.Sprintf("    %s: {receivers: [otlp], processors: [batch], exporters: [otlp_http/%s]}", signal, signal))
	}
	add("metrics", "metrics_endpoint", o.MetricsTo)
	add("traces", "traces_endpoint", o.TracesTo)
	cfg := strings.Join([]string{
		"receivers:",
		fmt.Sprintf("  otlp: {protocols: {http: {endpoint: %q}}}", addr),
		"processors:",
		"  batch: {timeout: 200ms}",
		"exporters:",
		strings.Join(exporters, "\n"),
		"service:",
		// No self-metrics server: it would bind :8888 for every collector a test starts.
		"  telemetry: {metrics: {level: none}, logs: {level: warn}}",
		"  pipelines:",
		strings.Join(pipelines, "\n"),
	}, "\n") + "\n"
	config := filepath.Join(dir, "otelcol.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &Collector{Endpoint: "http://" + addr}
	c.proc, err = startProcess("otelcol", filepath.Join(dir, "otelcol.log"), baseEnv(dir), filepath.Join(binDir, "otelcol"), "--config="+config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.proc.stop)
	c.proc.logOnFailure(t)
	// An empty export request is a valid no-op: 200 once the receiver serves.
	if err := waitFor(c.proc, 60*time.Second, "the collector's OTLP receiver", func() error {
		resp, err := http.Post(c.Endpoint+"/v1/traces", "application/json", strings.NewReader("{}"))
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return c
}
