package main

import (
	"fmt"
	"os"
	"time"

	"github.com/claude-guard/claude-guard/internal/inject"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
)

// The interleaved run's sidecars that export telemetry: otlpVariant as the chart configures it by
// default (telemetry.otlp.traceSampleRatio), and two diagnostics: metrics only, and every trace.
const (
	otlpVariant        = "otlp"
	otlpMetricsVariant = "otlp metrics"
	otlpAllVariant     = "otlp all traces"
)

// startCollector runs an OpenTelemetry Collector (hack/otelcol.sh) whose debug exporter counts the
// otlp variants' metrics and spans and drops them, so the run measures what exporting costs the sidecar,
// not a backend. stop ends it and removes its directory.
func startCollector(binDir string) (col *testservers.Collector, stop func(), err error) {
	dir, err := os.MkdirTemp("", "cg-bench-otelcol-")
	if err != nil {
		return nil, nil, err
	}
	if col, err = testservers.RunCollector(binDir, dir, testservers.CollectorOptions{}); err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, err
	}
	return col, func() { col.Stop(); _ = os.RemoveAll(dir) }, nil
}

// collectorVariants are the exporting sidecars, each with the environment the webhook injects for
// telemetry.otlp.endpoint (inject.Telemetry), the SDK's 60 s metric interval shortened to 10 s so the
// run includes pushes.
func collectorVariants(col *testservers.Collector) []variant {
	env := func(ratio string, extra ...string) []string {
		t := inject.Telemetry{OTLPEndpoint: col.Endpoint, TraceSampleRatio: ratio, MetricExportInterval: 10 * time.Second}
		for _, e := range t.Env() {
			extra = append(extra, e.Name+"="+e.Value)
		}
		return extra
	}
	return []variant{
		{name: otlpVariant, env: env(inject.DefaultTraceSampleRatio)},
		{name: otlpMetricsVariant, env: env("", "OTEL_TRACES_EXPORTER=none")},
		{name: otlpAllVariant, env: env("1")},
	}
}

// telemetryFigures are what exporting costs as the chart sets it up: the otlp variant's CPU per request
// and added latency p50 over the plain sidecar's (which records the same GenAI metrics for /metrics),
// in percent; the note gives the diagnostics' CPU.
func telemetryFigures(byName map[string]*peerRun) []figure {
	on, metricsOnly, every := byName["sidecar "+otlpVariant], byName["sidecar "+otlpMetricsVariant], byName["sidecar "+otlpAllVariant]
	if on == nil {
		return nil
	}
	d, off := *byName["direct"], *byName["sidecar"]
	extraCPU := func(r *peerRun) float64 {
		return 100 * (float64(r.perRequest()) - float64(off.perRequest())) / float64(off.perRequest())
	}
	added := func(r peerRun) float64 { return float64(pct(r.lat, 50) - pct(d.lat, 50)) }
	return []figure{
		{Name: "OTLP export on: extra CPU per request", Value: extraCPU(on), Unit: "%", Target: 10,
			Note: fmt.Sprintf("sidecar %s; exporting metrics and %s of traces %s; metrics only %+.0f %%, every trace %+.0f %%",
				us(off.perRequest()), inject.DefaultTraceSampleRatio, us(on.perRequest()), extraCPU(metricsOnly), extraCPU(every))},
		{Name: "OTLP export on: extra added latency p50", Value: 100 * (added(*on) - added(off)) / max(added(off), 1), Unit: "%", Target: 10},
	}
}
