package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The interleaved run's sidecars that export telemetry: otlpVariant as the chart configures it by
// default (telemetry.otlp.traceSampleRatio), and two diagnostics: metrics only, and every trace.
const (
	otlpVariant        = "otlp"
	otlpMetricsVariant = "otlp metrics"
	otlpAllVariant     = "otlp all traces"
	// defaultSampleRatio is the chart's telemetry.otlp.traceSampleRatio.
	defaultSampleRatio = "0.1"
)

// collector is an OpenTelemetry Collector (hack/otelcol.sh) that receives the otlp variant's metrics
// and spans and drops them after its debug exporter counts them, so the run measures what exporting
// costs the sidecar, not a backend.
type collector struct {
	cmd      *exec.Cmd
	endpoint string
	dir      string
}

func startCollector(binDir string) (*collector, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	_ = l.Close()
	dir, err := os.MkdirTemp("", "cg-bench-otelcol-")
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`receivers: {otlp: {protocols: {http: {endpoint: %q}}}}
processors: {batch: {}}
exporters: {debug: {verbosity: basic}}
service:
  telemetry: {metrics: {level: none}, logs: {level: warn}}
  pipelines:
    metrics: {receivers: [otlp], processors: [batch], exporters: [debug]}
    traces: {receivers: [otlp], processors: [batch], exporters: [debug]}
`, addr)
	config := filepath.Join(dir, "otelcol.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "otelcol.log"))
	if err != nil {
		return nil, err
	}
	c := &collector{cmd: exec.Command(filepath.Join(binDir, "otelcol"), "--config="+config), endpoint: "http://" + addr, dir: dir}
	c.cmd.Stdout, c.cmd.Stderr = log, log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("otelcol: %w", err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Post(c.endpoint+"/v1/traces", "application/json", strings.NewReader("{}"))
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, nil
			}
		}
	}
	c.stop()
	return nil, fmt.Errorf("otelcol did not answer on %s within 30 s (log in %s)", addr, dir)
}

func (c *collector) stop() {
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
	_ = os.RemoveAll(c.dir)
}

// variants are the exporting sidecars, each with what the injector sets for telemetry.otlp.endpoint
// (the SDK's 60 s metric interval shortened to 10 s so the run includes pushes).
func (c *collector) variants() []variant {
	env := func(extra ...string) []string {
		return append([]string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + c.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
			"OTEL_SERVICE_NAME=claude-guard-sidecar", "OTEL_TRACES_SAMPLER=parentbased_traceidratio",
			"OTEL_METRIC_EXPORT_INTERVAL=10000"}, extra...)
	}
	return []variant{
		{name: otlpVariant, env: env("OTEL_TRACES_SAMPLER_ARG=" + defaultSampleRatio)},
		{name: otlpMetricsVariant, env: env("OTEL_TRACES_EXPORTER=none")},
		{name: otlpAllVariant, env: env("OTEL_TRACES_SAMPLER_ARG=1")},
	}
}

// telemetryFigures are what exporting costs as the chart sets it up: the otlp variant's CPU per request
// and added latency p50 over the plain sidecar's (which records the same GenAI metrics for /metrics),
// in percent; the note gives the diagnostics' CPU.
func telemetryFigures(all []peer, runs []peerRun) []figure {
	byName := map[string]*peerRun{}
	for i := range all {
		byName[all[i].name] = &runs[i]
	}
	on, metricsOnly, every := byName["sidecar "+otlpVariant], byName["sidecar "+otlpMetricsVariant], byName["sidecar "+otlpAllVariant]
	if on == nil {
		return nil
	}
	d, off := runs[0], runs[3]
	extraCPU := func(r *peerRun) float64 {
		return 100 * (float64(r.perRequest()) - float64(off.perRequest())) / float64(off.perRequest())
	}
	added := func(r peerRun) float64 { return float64(pct(r.lat, 50) - pct(d.lat, 50)) }
	return []figure{
		{Name: "OTLP export on: extra CPU per request", Value: extraCPU(on), Unit: "%", Target: 10,
			Note: fmt.Sprintf("sidecar %s; exporting metrics and %s of traces %s; metrics only %+.0f %%, every trace %+.0f %%",
				us(off.perRequest()), defaultSampleRatio, us(on.perRequest()), extraCPU(metricsOnly), extraCPU(every))},
		{Name: "OTLP export on: extra added latency p50", Value: 100 * (added(*on) - added(off)) / max(added(off), 1), Unit: "%", Target: 10},
	}
}
