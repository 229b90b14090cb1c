package app

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/sidecar/metrics"
	"github.com/claude-guard/claude-guard/sidecar/telemetry"
)

// telemetryFlush bounds how long stopping waits for the last metrics and spans to reach the collector.
const telemetryFlush = 5 * time.Second

// newTelemetry sets up the GenAI metrics on the sidecar's registry and, where the OTEL_EXPORTER_OTLP_*
// variables (set by the injector from the chart's telemetry.otlp values) name a collector, their OTLP
// export and the spans. The resource says which pod and policy the signals come from.
func newTelemetry(ctx context.Context, c *policyconfig.Config, m *metrics.Metrics, log *slog.Logger) (*telemetry.Telemetry, error) {
	var res []attribute.KeyValue
	for _, kv := range []struct{ key, value string }{
		{"k8s.namespace.name", cmp.Or(os.Getenv("POD_NAMESPACE"), c.Identity.Namespace, c.Policy.Namespace)},
		{"k8s.pod.name", os.Getenv("POD_NAME")},
		{telemetry.KeyPolicy, c.Policy.Name},
	} {
		if kv.value != "" {
			res = append(res, attribute.String(kv.key, kv.value))
		}
	}
	t, err := telemetry.New(ctx, telemetry.Options{Registry: m.Registry, Resource: res, Log: log})
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	return t, nil
}

// flushTelemetry sends what is buffered before the process ends.
func (s *sidecar) flushTelemetry() {
	ctx, cancel := context.WithTimeout(context.Background(), telemetryFlush)
	defer cancel()
	if err := s.telemetry.Shutdown(ctx); err != nil {
		s.log.Warn("Telemetry did not flush", "error", err.Error())
	}
}
