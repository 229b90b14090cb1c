// Package telemetry is the sidecar's OpenTelemetry: the GenAI semantic conventions' client metrics
// (gen_ai.client.token.usage, gen_ai.client.operation.duration, gen_ai.client.operation.time_to_first_chunk)
// and a client span per proxied request, joined to the caller's W3C trace context and propagated to the
// upstream.
//
// The metrics always appear on the sidecar's Prometheus endpoint (through the OpenTelemetry Prometheus
// exporter, in the sidecar's own registry) and, when the standard OTEL_EXPORTER_OTLP_* variables name a
// collector, are pushed over OTLP/HTTP too. Spans exist only when a traces endpoint is set: without one
// no span is started and the caller's trace headers pass through unchanged.
//
// Nothing here ever sees a prompt, a key or a token: Record takes a Call, which holds labels the proxy has
// already bounded (docs/observability.md lists them and their cardinality).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/claude-guard/claude-guard/internal/wellknown"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of everything the sidecar records.
const ScopeName = "github.com/claude-guard/claude-guard/sidecar"

// DefaultServiceName is service.name when OTEL_SERVICE_NAME does not set one.
const DefaultServiceName = wellknown.SidecarServiceName

// Options configure New.
type Options struct {
	// Registry is the sidecar's Prometheus registry; the GenAI metrics are registered in it.
	Registry prometheus.Registerer
	// Resource holds attributes every signal carries (k8s.namespace.name, k8s.pod.name, ...), merged
	// under what OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME say.
	Resource []attribute.KeyValue
	Log      *slog.Logger
}

// Telemetry records calls. The zero value is not usable; a nil *Telemetry records nothing.
type Telemetry struct {
	tracer     trace.Tracer // nil without a traces endpoint: no spans
	propagator propagation.TextMapPropagator
	inst       instruments
	sets       attrCache
	shutdown   []func(context.Context) error
}

// New builds the meter and tracer providers the environment asks for.
func New(ctx context.Context, o Options) (_ *Telemetry, err error) {
	t := &Telemetry{propagator: propagation.TraceContext{}}
	defer func() {
		if err != nil {
			_ = t.Shutdown(context.WithoutCancel(ctx))
		}
	}()
	res, err := newResource(ctx, o)
	if err != nil {
		return nil, err
	}
	readers, err := t.metricReaders(ctx, o)
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(append(readers, sdkmetric.WithResource(res))...)
	t.shutdown = append(t.shutdown, mp.Shutdown)
	if t.inst, err = newInstruments(mp.Meter(ScopeName)); err != nil {
		return nil, err
	}
	if exporting("TRACES") {
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("OTLP trace exporter (OTEL_EXPORTER_OTLP_*): %w", err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		t.shutdown = append(t.shutdown, tp.Shutdown)
		t.tracer = tp.Tracer(ScopeName)
	}
	if o.Log != nil {
		o.Log.Info("Telemetry", "otlpMetrics", exporting("METRICS"), "otlpTraces", t.tracer != nil)
	}
	return t, nil
}

// metricReaders are the Prometheus exporter (always) and an OTLP periodic reader (when configured).
func (t *Telemetry) metricReaders(ctx context.Context, o Options) ([]sdkmetric.Option, error) {
	prom, err := otelprom.New(otelprom.WithRegisterer(o.Registry), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	opts := []sdkmetric.Option{sdkmetric.WithReader(prom)}
	if exporting("METRICS") {
		exp, err := otlpmetrichttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("OTLP metric exporter (OTEL_EXPORTER_OTLP_*): %w", err)
		}
		// The interval comes from OTEL_METRIC_EXPORT_INTERVAL (60 s by default).
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
	}
	return opts, nil
}

// exporting reports whether the environment names an OTLP endpoint for signal (METRICS or TRACES)
// and does not turn that signal's exporter off (OTEL_<signal>_EXPORTER=none).
// The exporters read the same variables (and the headers, timeout, TLS and compression ones) themselves.
func exporting(signal string) bool {
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_"+signal+"_EXPORTER")), "none") || os.Getenv("OTEL_SDK_DISABLED") == "true" {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
}

func newResource(ctx context.Context, o Options) (*resource.Resource, error) {
	base := append([]attribute.KeyValue{attribute.String("service.name", DefaultServiceName)}, o.Resource...)
	// WithFromEnv reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME through the process environment;
	// they win over the defaults above.
	res, err := resource.New(ctx, resource.WithAttributes(base...), resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry resource (OTEL_RESOURCE_ATTRIBUTES): %w", err)
	}
	return res, nil
}

// Shutdown flushes what is buffered (the last metrics, pending spans) and stops the exporters.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	var errs []error
	for i := len(t.shutdown) - 1; i >= 0; i-- {
		errs = append(errs, t.shutdown[i](ctx))
	}
	t.shutdown = nil
	return errors.Join(errs...)
}

// Tracing reports whether spans are recorded (an OTLP traces endpoint is set).
func (t *Telemetry) Tracing() bool { return t != nil && t.tracer != nil }

// Start starts the request's client span as a child of the caller's trace context (traceparent and
// tracestate on r), and returns the context carrying it. Without tracing it returns r's context.
func (t *Telemetry) Start(r *http.Request) (context.Context, trace.Span) {
	ctx := r.Context()
	if !t.Tracing() {
		return ctx, trace.SpanFromContext(ctx)
	}
	ctx = t.propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
	// The name is refined once the model is known (End); the path is one of a few the proxy serves.
	return t.tracer.Start(ctx, r.Method+" "+r.URL.Path, trace.WithSpanKind(trace.SpanKindClient))
}

// Inject writes the span of ctx into the upstream request's headers (traceparent, tracestate), replacing
// the caller's, so the upstream's spans hang under the sidecar's. Without tracing it does nothing.
func (t *Telemetry) Inject(ctx context.Context, h http.Header) {
	if t.Tracing() {
		t.propagator.Inject(ctx, propagation.HeaderCarrier(h))
	}
}
