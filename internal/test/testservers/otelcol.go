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

	"github.com/claude-guard/claude-guard/internal/test/ports"
)

var otelcolDir = sync.OnceValues(func() (string, error) { return ToolDir("CLAUDE_GUARD_OTELCOL_DIR", "otelcol.sh") })

// Collector is a running OpenTelemetry Collector (hack/otelcol.sh): an OTLP/HTTP receiver on
// Endpoint, batching, and OTLP/HTTP exporters to where CollectorOptions say.
type Collector struct {
	// Endpoint is the receiver's base URL, what OTEL_EXPORTER_OTLP_ENDPOINT names.
	Endpoint string
	proc     *process
}

// CollectorOptions say where the collector forwards each signal (full OTLP/HTTP URLs). A signal
// without a destination goes to the debug exporter, which counts it and drops it: what a benchmark
// needs to measure what exporting costs the sender, not a backend.
type CollectorOptions struct {
	MetricsTo string // e.g. Prometheus.OTLPMetricsURL
	TracesTo  string // e.g. an OTLP trace sink's /v1/traces
}

// StartCollector starts the collector on a free loopback port and waits until its receiver answers. It
// stops with the test and prints its log if the test failed.
func StartCollector(t testing.TB, o CollectorOptions) *Collector {
	t.Helper()
	binDir, err := otelcolDir()
	if err != nil {
		t.Fatal(err)
	}
	c, err := RunCollector(binDir, runDir(t, "cg-otelcol-"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	c.proc.logOnFailure(t)
	return c
}

// RunCollector is StartCollector for programs without a testing.TB (test/bench): the otelcol binary of
// binDir (hack/otelcol.sh prints it) runs with its config and log in dir, until Stop. An error includes
// the end of the collector's log.
func RunCollector(binDir, dir string, o CollectorOptions) (*Collector, error) {
	port, err := ports.Free("127.0.0.1")
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	config := filepath.Join(dir, "otelcol.yaml")
	if err := os.WriteFile(config, []byte(collectorConfig(addr, o)), 0o600); err != nil {
		return nil, err
	}
	c := &Collector{Endpoint: "http://" + addr}
	c.proc, err = startProcess("otelcol", filepath.Join(dir, "otelcol.log"), baseEnv(dir), filepath.Join(binDir, "otelcol"), "--config="+config)
	if err != nil {
		return nil, err
	}
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
		c.Stop()
		return nil, fmt.Errorf("%w; otelcol log:\n%s", err, c.proc.logTail())
	}
	return c, nil
}

// Stop ends the collector; it is safe to call more than once.
func (c *Collector) Stop() { c.proc.stop() }

// collectorConfig receives OTLP/HTTP on addr, batches, and sends each signal where o says.
func collectorConfig(addr string, o CollectorOptions) string {
	exporters := []string{"  debug: {verbosity: basic}"}
	var pipelines []string
	add := func(signal, key, to string) {
		exporter := "debug"
		if to != "" {
			exporter = "otlp_http/" + signal
			exporters = append(exporters, fmt.Sprintf("  %s: {%s: %q, compression: gzip, retry_on_failure: {initial_interval: 100ms, max_interval: 1s}}", exporter, key, to))
		}
		pipelines = append(pipelines, fmt.Sprintf("    %s: {receivers: [otlp], processors: [batch], exporters: [%s]}", signal, exporter))
	}
	add("metrics", "metrics_endpoint", o.MetricsTo)
	add("traces", "traces_endpoint", o.TracesTo)
	return strings.Join([]string{
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
}
