package explain

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// Denial is how often one rule refused (or, in shadow mode, would have refused) Messages calls.
type Denial struct {
	Rule, Decision string
	Count          float64
}

// Metric names read (the sidecar's: sidecar/metrics and sidecar/telemetry).
const (
	metricOperations = "gen_ai_client_operation_duration_seconds"
	metricRequests   = "claude_guard_requests_total"
)

// readMetrics fetches the sidecar's metrics and sums its GenAI operations by rule and decision, and its
// requests by decision.
func readMetrics(ctx context.Context, m Metrics, pod *corev1.Pod) ([]Denial, map[string]float64, error) {
	body, err := m.Fetch(ctx, pod)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = body.Close() }()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(io.LimitReader(body, 32<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("the sidecar's metrics are not in the Prometheus text format: %w", err)
	}
	return denials(families[metricOperations]), byLabel(families[metricRequests], "decision"), nil
}

func denials(f *dto.MetricFamily) []Denial {
	sum := map[[2]string]float64{}
	for _, m := range f.GetMetric() {
		l := labels(m)
		if rule := l["claude_guard_rule"]; rule != "" {
			sum[[2]string{rule, l["claude_guard_decision"]}] += float64(m.GetHistogram().GetSampleCount())
		}
	}
	out := make([]Denial, 0, len(sum))
	for k, n := range sum {
		out = append(out, Denial{Rule: k[0], Decision: k[1], Count: n})
	}
	// Most frequent first, then by rule, so the output is stable.
	slices.SortFunc(out, func(a, b Denial) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Rule+a.Decision, b.Rule+b.Decision))
	})
	return out
}

func byLabel(f *dto.MetricFamily, name string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		out[labels(m)[name]] += m.GetCounter().GetValue()
	}
	return out
}

func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// PodProxy reads a sidecar's /metrics through the API server's pod proxy (pods/proxy), so it needs
// nothing but kubectl's own credentials and that RBAC verb, plus the metrics token when sidecars
// require one.
type PodProxy struct {
	Client kubernetes.Interface
	// Token is the sidecars' metrics token ("" when they serve metrics openly).
	Token string
}

// Fetch implements Metrics.
func (p PodProxy) Fetch(ctx context.Context, pod *corev1.Pod) (io.ReadCloser, error) {
	req := p.Client.CoreV1().RESTClient().Get().Namespace(pod.Namespace).Resource("pods").
		Name(pod.Name + ":" + strconv.Itoa(int(wellknown.SidecarMetricsPort))).SubResource("proxy").Suffix("metrics")
	if p.Token != "" {
		req = req.SetHeader("Authorization", "Bearer "+p.Token)
	}
	body, err := req.Stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("pods/proxy to %s/%s:%d/metrics: %w", pod.Namespace, pod.Name, wellknown.SidecarMetricsPort, err)
	}
	return body, nil
}

// URL reads metrics from a fixed address, e.g. a `kubectl port-forward` to the sidecar's metrics port.
type URL struct {
	URL   string
	Token string
}

// Fetch implements Metrics.
func (u URL) Fetch(ctx context.Context, _ *corev1.Pod) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("--metrics-url: %w", err)
	}
	if u.Token != "" {
		req.Header.Set("Authorization", "Bearer "+u.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		return nil, statusError(resp)
	}
	return resp.Body, nil
}
