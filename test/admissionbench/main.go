// Command admissionbench measures what the injection webhook adds to pod creation through a real
// kube-apiserver: pods are created open-loop at a fixed rate in a namespace where a policy selects them
// (so the webhook injects) and in one the webhook does not cover (label claudeguard.io/inject=disabled),
// and the create latencies are compared. Run by `make bench`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/inject"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

func main() {
	rate := flag.Int("rate", 100, "pod creations per second")
	count := flag.Int("pods", 600, "pods per namespace")
	flag.Parse()
	if err := run(*rate, *count); err != nil {
		fmt.Fprintln(os.Stderr, "admissionbench:", err)
		os.Exit(1)
	}
}

func run(rate, count int) error {
	env, err := testenv.Start(testenv.WithWebhooks)
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	stop, err := env.StartManager(testenv.ManagerOptions{
		Effective: effective.Options{NoTenant: effective.NoTenantAllow, Upstream: "https://api.anthropic.com"},
		Inject:    &inject.Operator{Namespace: "claude-guard-system", Config: inject.DefaultConfig()},
	})
	if err != nil {
		return err
	}
	defer func() { _ = stop() }()
	ctx := context.Background()
	c := env.Client
	for name, labels := range map[string]map[string]string{"injected": nil, "bypassed": {wellknown.LabelInject: "disabled"}} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}); err != nil {
			return err
		}
	}
	p := &v1alpha1.ClaudeAccessPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "injected", Name: "bench"},
		Spec: v1alpha1.ClaudeAccessPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "bench"}},
			Credentials: v1alpha1.CredentialSource{SecretRef: &v1alpha1.SecretKeyRef{Name: "anthropic", Key: "api-key"}},
			Models:      v1alpha1.ModelPolicy{Allow: []v1alpha1.ModelPattern{"claude-haiku-*"}},
		},
	}
	if err := c.Create(ctx, p); err != nil {
		return err
	}
	time.Sleep(time.Second) // let the manager's cache see the policy

	// Warm up both paths (connections, TLS sessions) before measuring, then create pods alternately in
	// the two namespaces so both see the same load.
	if _, _, err := create(ctx, c, "warm", 40, rate); err != nil {
		return err
	}
	injected, bypassed, err := create(ctx, c, "pod", 2*count, rate)
	if err != nil {
		return err
	}
	var check corev1.Pod
	if err := c.Get(ctx, client.ObjectKey{Namespace: "injected", Name: "pod-0"}, &check); err != nil || check.Annotations[wellknown.AnnotationStatus] != wellknown.StatusInjected {
		return fmt.Errorf("pods in the measured namespace were not injected (%w)", err)
	}
	i50, i99 := quantiles(injected)
	b50, b99 := quantiles(bypassed)
	fmt.Printf("admission: %d pod creations at %d/s through kube-apiserver, alternating an injected and a bypassed namespace\n", 2*count, rate)
	fmt.Printf("  create latency with injection    p50 %6.2f ms  p99 %6.2f ms\n", ms(i50), ms(i99))
	fmt.Printf("  create latency without webhook   p50 %6.2f ms  p99 %6.2f ms\n", ms(b50), ms(b99))
	fmt.Printf("  %-40s %6.2f ms   (target p99 <= 10 ms: %s)\n", "admission latency added by the webhook, p99", ms(i99-b99), verdict(i99-b99 <= 10*time.Millisecond))
	fmt.Printf("  %-40s %6.2f ms\n", "admission latency added by the webhook, p50", ms(i50-b50))
	if q, err := histogramQuantile("claude_guard_injection_duration_seconds", 0.99); err == nil {
		fmt.Printf("  %-40s <= %.2f ms (histogram bucket)\n", "webhook's own handling time, p99", q*1000)
	}
	if q, err := histogramMean("controller_runtime_webhook_latency_seconds"); err == nil {
		fmt.Printf("  %-40s %6.2f ms (decode, decide, mutate, patch)\n", "webhook HTTP handler time, mean", q*1000)
	}
	return nil
}

// create makes n pods open-loop at rate per second, alternating between the namespace the webhook
// injects and the one it does not cover, and returns the create latencies of each.
func create(ctx context.Context, c client.Client, prefix string, n, rate int) (injected, bypassed []time.Duration, err error) {
	lat := make([]time.Duration, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := 0; i < n; i++ {
		<-tick.C
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ns := [2]string{"injected", "bypassed"}[i%2]
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%d", prefix, i), Labels: map[string]string{"app": "bench"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
			}
			t0 := time.Now()
			if err := c.Create(ctx, pod); err != nil {
				errs <- fmt.Errorf("failed to create a pod in %s: %w", ns, err)
				return
			}
			lat[i] = time.Since(t0)
		}(i)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, nil, err
	}
	for i, l := range lat {
		if i%2 == 0 {
			injected = append(injected, l)
		} else {
			bypassed = append(bypassed, l)
		}
	}
	return injected, bypassed, nil
}

// histogramQuantile returns the upper bound of the bucket holding quantile q of a histogram in the
// controller-runtime registry.
func histogramQuantile(name string, q float64) (float64, error) {
	h, err := histogram(name)
	if err != nil {
		return 0, err
	}
	want := uint64(q * float64(h.GetSampleCount()))
	for _, b := range h.GetBucket() {
		if b.GetCumulativeCount() >= want {
			return b.GetUpperBound(), nil
		}
	}
	return 0, fmt.Errorf("quantile beyond the last bucket")
}

func histogramMean(name string) (float64, error) {
	h, err := histogram(name)
	if err != nil || h.GetSampleCount() == 0 {
		return 0, fmt.Errorf("no samples of %s", name)
	}
	return h.GetSampleSum() / float64(h.GetSampleCount()), nil
}

func histogram(name string) (*dto.Histogram, error) {
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		return nil, err
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetHistogram(), nil
		}
	}
	return nil, fmt.Errorf("no histogram %s", name)
}

func quantiles(d []time.Duration) (p50, p99 time.Duration) {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)*50/100], s[len(s)*99/100]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
