//go:build integration

package pods

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/imagebuild"
	"github.com/claude-guard/claude-guard/internal/test/chartenv"
	"github.com/claude-guard/claude-guard/internal/test/cluster"
	"github.com/claude-guard/claude-guard/internal/test/wait"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// TestRealPods is one story, step by step: each step needs the ones before it.
func TestRealPods(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	s := &story{t: t, ctx: ctx}
	cluster.Story(t, s.dump,
		cluster.Step{Name: "fake upstream as a pod", Run: s.fakeUpstream},
		cluster.Step{Name: "helm install rolls out the manager", Run: s.install},
		cluster.Step{Name: "tenant applies a policy with kubectl", Run: s.applyPolicy},
		cluster.Step{Name: "deployment gets the native sidecar and calls Claude", Run: s.deployment},
		cluster.Step{Name: "one hash names the config in status, audit records and metrics", Run: s.oneHash},
		cluster.Step{Name: "the running sidecar reports its calls in the GenAI metrics", Run: s.genAIMetrics},
		cluster.Step{Name: "many large bodies at once: the sidecar stays within its memory limit and keeps its counters", Run: s.bigBodies},
		cluster.Step{Name: "job with the sidecar completes", Run: s.job},
		cluster.Step{Name: "a pod whose Secret is missing shows in the policy's status", Run: s.missingSecret},
		cluster.Step{Name: "policy edit reaches the running sidecar", Run: s.reload},
		cluster.Step{Name: "kubectl logs show the audit records", Run: s.auditLogs},
		cluster.Step{Name: "nobody execs or debugs into the running sidecar", Run: s.sidecarClosed},
		cluster.Step{Name: "a hostPID pod running as the sidecar's user cannot read its memory", Run: s.sidecarUndumpable},
		cluster.Step{Name: "helm upgrade rolls the manager without failed admissions", Run: s.upgrade},
		cluster.Step{Name: "a new upstream reaches the running sidecar", Run: s.newUpstream},
		cluster.Step{Name: "helm uninstall leaves tenant pods running", Run: s.uninstall},
		cluster.Step{Name: "a new helm install serves the webhook within seconds", Run: s.reinstall},
	)
}

// dump logs what a person would look at when a step failed: the pods, recent events, the logs of every
// container that is not ready (and of its previous run), and the node's own logs.
func (s *story) dump(t *testing.T) {
	ctx := context.Background()
	out, _ := c.Run(ctx, "", "get", "pods", "-A", "-o", "wide")
	t.Logf("pods:\n%s", out)
	out, _ = c.Run(ctx, "", "get", "events", "-A", "--sort-by=.lastTimestamp")
	t.Logf("events:\n%s", cluster.TailLines(out, 30))
	var pods corev1.PodList
	if err := c.Client.List(ctx, &pods); err == nil {
		for _, p := range pods.Items {
			for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
				if cs.Ready {
					continue
				}
				for _, prev := range []string{"--previous=false", "--previous=true"} {
					out, _ := c.Run(ctx, "", "logs", "-n", p.Namespace, p.Name, "-c", cs.Name, prev, "--tail=20")
					t.Logf("logs %s/%s %s %s:\n%s", p.Namespace, p.Name, cs.Name, prev, out)
				}
			}
		}
	}
	t.Logf("kubelet:\n%s\nkube-apiserver:\n%s", c.LogTail("kubelet", 15), c.LogTail("kube-apiserver", 10))
}

type story struct {
	t        *testing.T
	ctx      context.Context
	release  *chartenv.Release
	values   []string
	upstream string
	pod      string // a running storefront pod
}

func (s *story) kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := c.Run(s.ctx, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// available waits for Deployment ns/name to roll out and returns how long it took.
func (s *story) available(t *testing.T, ns, name string, timeout time.Duration) time.Duration {
	t.Helper()
	d, err := c.WaitAvailable(s.ctx, ns, name, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (s *story) fakeUpstream(t *testing.T) {
	s.kubectl(t, fakeUpstreams, "apply", "-f", "-")
	s.available(t, cluster.FakeUpstreamNamespace, "api", 2*time.Minute)
	s.available(t, cluster.FakeUpstreamNamespace, "api2", 2*time.Minute)
	var err error
	if s.upstream, err = c.ServiceURL(s.ctx, cluster.FakeUpstreamNamespace, "api", 8080); err != nil {
		t.Fatal(err)
	}
}

func (s *story) install(t *testing.T) {
	helm := &chartenv.Helm{Bin: c.Helm, Kubeconfig: c.Kubeconfig, Home: filepath.Join(t.TempDir(), "helm")}
	s.release = &chartenv.Release{Helm: helm, Name: "claude-guard", Namespace: releaseNS}
	// The chart's default images are the ones just built and imported; this node runs no SPIRE (the
	// SPIFFE issue adds it), so the tenant's key comes from a Secret.
	s.values = []string{"--set", "upstream=" + s.upstream, "--set", "spiffe.socket.mode=None"}
	t0 := time.Now()
	if _, err := s.release.Install(s.values...); err != nil {
		t.Fatal(err)
	}
	s.available(t, releaseNS, "claude-guard-manager", 2*time.Minute)
	figures.Duration("helm install -> manager Deployment Available", time.Since(t0))
}

func (s *story) applyPolicy(t *testing.T) {
	s.kubectl(t, tenant, "apply", "-f", "-")
	s.kubectl(t, policy(`"claude-haiku-*"`), "apply", "-f", "-")
	s.kubectl(t, "", "wait", "--for=condition=Ready", "--timeout=60s", "-n", tenantNS, "cap/storefront")
}

// call execs one call into the storefront pod's app container (cluster.Call).
func (s *story) call(t *testing.T, model string) cluster.ClientResult {
	t.Helper()
	return c.Call(s.ctx, tenantNS, s.pod, model)
}

// parseResult returns the result line in a log, or fails the test.
func parseResult(t *testing.T, out string) cluster.ClientResult {
	t.Helper()
	r, ok := cluster.FindClientResult(out)
	if !ok {
		t.Fatalf("no result line in %q", out)
	}
	return r
}

func (s *story) deployment(t *testing.T) {
	t0 := time.Now()
	s.kubectl(t, storefront, "apply", "-f", "-")
	s.available(t, tenantNS, "storefront", 2*time.Minute)
	figures.Duration("tenant Deployment created -> Available (sidecar Ready, app started)", time.Since(t0))
	var pods corev1.PodList
	if err := c.Client.List(s.ctx, &pods, client.InNamespace(tenantNS), client.MatchingLabels{"app": "storefront"}); err != nil {
		t.Fatal(err)
	}
	var pod *corev1.Pod
	for i := range pods.Items {
		if pods.Items[i].Status.Phase == corev1.PodRunning && pods.Items[i].OwnerReferences[0].Kind == "ReplicaSet" {
			pod = &pods.Items[i]
		}
	}
	if pod == nil {
		t.Fatalf("no running storefront pod among %d", len(pods.Items))
	}
	s.pod = pod.Name
	if got := pod.Annotations[wellknown.AnnotationStatus]; got != wellknown.StatusInjected {
		t.Fatalf("pod %s: %s = %q, want %q", pod.Name, wellknown.AnnotationStatus, got, wellknown.StatusInjected)
	}
	sc := pod.Spec.InitContainers[0]
	if sc.Name != wellknown.SidecarContainerName || sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Fatalf("first init container %s (restartPolicy %v), want the native sidecar %s", sc.Name, sc.RestartPolicy, wellknown.SidecarContainerName)
	}
	// The app's first act was a call (serve -call-at-start): it succeeded, so the sidecar was serving
	// before the app container started.
	logs := s.kubectl(t, "", "logs", "-n", tenantNS, s.pod, "-c", "app")
	if r := parseResult(t, logs); r.Status != 200 {
		t.Fatalf("the app's call at start: %+v, want 200", r)
	}
	if r := s.call(t, allowed); r.Status != 200 || r.Text == "" {
		t.Fatalf("allowed model %s: %+v, want 200 with text", allowed, r)
	}
	r := s.call(t, denied)
	if r.Status != 403 || !strings.Contains(r.Error, `"type":"permission_error"`) || !strings.Contains(r.Error, "models.allow") {
		t.Fatalf("denied model %s: %+v, want 403 permission_error naming models.allow", denied, r)
	}
}

// oneHash checks the rendered config's one contract: the hash in the policy's status (and ConfigMap) is
// the configHash of the sidecar's audit records and the label of its claude_guard_config_info, read
// from the running pod (its metrics port, on the pod IP this network namespace routes to).
func (s *story) oneHash(t *testing.T) {
	var p v1alpha1.ClaudeAccessPolicy
	if err := c.Client.Get(s.ctx, client.ObjectKey{Namespace: tenantNS, Name: "storefront"}, &p); err != nil || p.Status.RenderedConfig == nil {
		t.Fatalf("policy status: %v %+v", err, p.Status)
	}
	want := p.Status.RenderedConfig.Hash
	logs := s.kubectl(t, "", "logs", "-n", tenantNS, s.pod, "-c", wellknown.SidecarContainerName)
	if !strings.Contains(logs, `"configHash":"`+want+`"`) {
		t.Errorf("the sidecar's audit records do not carry configHash %s:\n%s", want, cluster.TailLines(logs, 3))
	}
	var pod corev1.Pod
	if err := c.Client.Get(s.ctx, client.ObjectKey{Namespace: tenantNS, Name: s.pod}, &pod); err != nil {
		t.Fatal(err)
	}
	// From this network namespace, as from any other pod: the metrics need the operator's token.
	metric := `claude_guard_config_info{hash="` + want + `"} 1`
	if status, body := sidecarMetrics(t, pod.Status.PodIP, ""); status != http.StatusUnauthorized || strings.Contains(body, "claude_guard_") {
		t.Errorf("GET /metrics without the metrics token: %d, want 401 and no metrics:\n%s", status, body)
	}
	if status, body := sidecarMetrics(t, pod.Status.PodIP, s.metricsToken(t)); status != http.StatusOK || !strings.Contains(body, metric) {
		t.Errorf("GET /metrics with the metrics token: %d, want 200 with %s", status, metric)
	}
}

// genAIMetrics: the injected pod carries the label a PodMonitor selects, and its sidecar reports the
// deployment step's calls in the OpenTelemetry GenAI metrics on the same /metrics, with the caller's
// namespace and the policy: the allowed call's tokens, and the refused model as a denied operation.
func (s *story) genAIMetrics(t *testing.T) {
	var pod corev1.Pod
	if err := c.Client.Get(s.ctx, client.ObjectKey{Namespace: tenantNS, Name: s.pod}, &pod); err != nil {
		t.Fatal(err)
	}
	if got := pod.Labels[wellknown.LabelSidecar]; got != "injected" {
		t.Errorf("pod label %s = %q, want injected", wellknown.LabelSidecar, got)
	}
	status, body := sidecarMetrics(t, pod.Status.PodIP, s.metricsToken(t))
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", status)
	}
	ours := []string{`claude_guard_namespace="` + tenantNS + `"`, `claude_guard_policy="storefront"`}
	for _, want := range []struct {
		metric string
		labels []string
	}{
		{"gen_ai_client_token_usage_count", []string{`gen_ai_token_type="input"`, `gen_ai_request_model="` + allowed + `"`, `claude_guard_decision="allow"`}},
		{"gen_ai_client_token_usage_count", []string{`gen_ai_token_type="output"`, `claude_guard_decision="allow"`}},
		{"gen_ai_client_operation_duration_seconds_count", []string{`claude_guard_decision="deny"`, `error_type="403"`}},
	} {
		if n := seriesSum(t, body, want.metric, append(want.labels, ours...)); n < 1 {
			t.Errorf("no %s with %v from the running sidecar:\n%s", want.metric, want.labels, grepLines(body, "gen_ai_"))
		}
	}
}

// seriesSum adds the values of the metric's series in a Prometheus text exposition that carry every
// one of labels (name="value").
func seriesSum(t *testing.T, body, metric string, labels []string) float64 {
	t.Helper()
	sum := 0.0
	for _, l := range strings.Split(body, "\n") {
		if !strings.HasPrefix(l, metric+"{") || !containsAll(l, labels) {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", l, err)
		}
		sum += v
	}
	return sum
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// grepLines is the lines of s that contain sub, for an error message.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// bigBodies sends 12 requests of 30 MiB at once through the storefront pod's sidecar, whose memory
// limit is the chart's 128 Mi: buffered whole, six of them would already outgrow it. The sidecar buffers
// what its body budget holds (half its memory limit) and refuses the rest before reading them (503,
// retry-after 1, the capacity rule); it is not OOM-killed (same container, no restart) and its counters
// carry on from where they were (the same process counted the admitted requests).
func (s *story) bigBodies(t *testing.T) {
	var pod corev1.Pod
	if err := c.Client.Get(s.ctx, client.ObjectKey{Namespace: tenantNS, Name: s.pod}, &pod); err != nil {
		t.Fatal(err)
	}
	restarts := sidecarRestarts(t, &pod)
	token := s.metricsToken(t)
	before := allowedCount(t, pod.Status.PodIP, token)
	t0 := time.Now()
	out, err := c.Run(s.ctx, "", "exec", "-n", tenantNS, s.pod, "-c", "app", "--", cluster.ClientBinary, "flood", "-n", "12", "-mib", "30", "-model", allowed)
	if err != nil {
		t.Fatalf("flood: %v\n%s", err, out)
	}
	figures.Duration("12 concurrent 30 MiB requests through a sidecar limited to 128 Mi", time.Since(t0))
	var r struct {
		Statuses   map[string]int `json:"statuses"`
		RetryAfter []string       `json:"retryAfter"`
		Capacity   int            `json:"capacity"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(cluster.TailLines(out, 1))), &r); err != nil {
		t.Fatalf("flood printed %q: %v", out, err)
	}
	t.Logf("flood: %s", strings.TrimSpace(out))
	ok, full := r.Statuses["200"], r.Statuses["503"]
	if ok < 1 || full < 1 || ok+full != 12 || r.Capacity != full {
		t.Fatalf("statuses %v (%d naming the capacity rule): want some 200s and the rest 503 capacity", r.Statuses, r.Capacity)
	}
	for _, ra := range r.RetryAfter {
		if ra != "1" {
			t.Errorf("a capacity 503 has retry-after %q, want 1", ra)
		}
	}
	if err := c.Client.Get(s.ctx, client.ObjectKey{Namespace: tenantNS, Name: s.pod}, &pod); err != nil {
		t.Fatal(err)
	}
	if got := sidecarRestarts(t, &pod); got != restarts {
		t.Fatalf("the sidecar restarted (%d -> %d restarts; last state %+v): its memory outgrew the limit", restarts, got, sidecarStatus(t, &pod).LastTerminationState)
	}
	if after := allowedCount(t, pod.Status.PodIP, token); after != before+ok {
		t.Fatalf("the sidecar counts %d allowed requests, want %d + %d: counters were lost", after, before, ok)
	}
}

// sidecarStatus is the status of pod's sidecar container.
func sidecarStatus(t *testing.T, pod *corev1.Pod) corev1.ContainerStatus {
	t.Helper()
	for _, cs := range pod.Status.InitContainerStatuses {
		if cs.Name == wellknown.SidecarContainerName {
			return cs
		}
	}
	t.Fatalf("pod %s has no %s status", pod.Name, wellknown.SidecarContainerName)
	return corev1.ContainerStatus{}
}

func sidecarRestarts(t *testing.T, pod *corev1.Pod) int32 { return sidecarStatus(t, pod).RestartCount }

// allowedCount is the sidecar's count of allowed Messages requests answered 200 (all models).
func allowedCount(t *testing.T, podIP, token string) int {
	t.Helper()
	status, body := sidecarMetrics(t, podIP, token)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", status)
	}
	return int(seriesSum(t, body, "claude_guard_requests_total", []string{`decision="allow"`, `endpoint="/v1/messages"`, `status="200"`}))
}

// metricsToken is the token the manager wrote into the chart's metrics token Secret (what Prometheus
// is given).
func (s *story) metricsToken(t *testing.T) string {
	t.Helper()
	var sec corev1.Secret
	if err := c.Client.Get(s.ctx, client.ObjectKey{Namespace: releaseNS, Name: "claude-guard-metrics-token"}, &sec); err != nil {
		t.Fatal(err)
	}
	tok := string(sec.Data["token"])
	if tok == "" {
		t.Fatal("the manager did not fill the metrics token Secret")
	}
	return tok
}

// sidecarMetrics GETs a sidecar's /metrics on its pod IP, with a bearer token when one is given.
func sidecarMetrics(t *testing.T, podIP, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s:%d/metrics", podIP, wellknown.SidecarMetricsPort), nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func (s *story) job(t *testing.T) {
	t0 := time.Now()
	s.kubectl(t, job, "apply", "-f", "-")
	wait.For(t, 2*time.Minute, "Job report completes", func() error {
		var j batchv1.Job
		if err := c.Client.Get(s.ctx, client.ObjectKey{Namespace: tenantNS, Name: "report"}, &j); err != nil {
			return err
		}
		for _, cond := range j.Status.Conditions {
			if cond.Status == corev1.ConditionTrue && cond.Type == batchv1.JobFailed {
				return fmt.Errorf("job failed: %s", cond.Message) // retried until the deadline; shown then
			}
			if cond.Status == corev1.ConditionTrue && cond.Type == batchv1.JobComplete {
				return nil
			}
		}
		return fmt.Errorf("job status %+v", j.Status)
	})
	figures.Duration("Job with the sidecar created -> Complete", time.Since(t0))
	logs := s.kubectl(t, "", "logs", "-n", tenantNS, "job/report", "-c", "app")
	if r := parseResult(t, logs); r.Status != 200 {
		t.Fatalf("the job's call: %+v, want 200", r)
	}
}

// missingSecret: the kubelet cannot mount the sidecar's Secret of a policy whose secretRef names none;
// the policy says which pod, the kubelet's cause and the fix, and is Ready once the Secret exists.
func (s *story) missingSecret(t *testing.T) {
	t0 := time.Now()
	s.kubectl(t, noKey, "apply", "-f", "-")
	cond := func(want metav1.ConditionStatus, reason string) func() error {
		return func() error {
			p := &v1alpha1.ClaudeAccessPolicy{}
			if err := c.Client.Get(s.ctx, client.ObjectKey{Namespace: tenantNS, Name: "nokey"}, p); err != nil {
				return err
			}
			r := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
			if r == nil || r.Status != want || r.Reason != reason {
				return fmt.Errorf("Ready: %+v", r)
			}
			if want == metav1.ConditionFalse && (!strings.Contains(r.Message, `secret "absent" not found`) || !strings.Contains(r.Message, "create Secret absent with key api-key")) {
				return fmt.Errorf("Ready message %q lacks the kubelet's cause or the fix", r.Message)
			}
			return nil
		}
	}
	wait.For(t, 90*time.Second, "the policy to report the pod that cannot mount its Secret", cond(metav1.ConditionFalse, v1alpha1.ReasonSidecarVolumeUnavailable))
	figures.Duration("pod with a missing Secret -> policy Ready=False, SidecarVolumeUnavailable", time.Since(t0))
	t1 := time.Now()
	s.kubectl(t, fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: absent, namespace: %s}\nstringData: {api-key: %s}\n", tenantNS, upstreamKey), "apply", "-f", "-")
	s.available(t, tenantNS, "nokey", 3*time.Minute)
	wait.For(t, 90*time.Second, "the policy to be Ready once the pod started", cond(metav1.ConditionTrue, v1alpha1.ReasonAdmitted))
	figures.Duration("Secret created -> pod Available and policy Ready", time.Since(t1))
	s.kubectl(t, "", "delete", "-n", tenantNS, "deployment/nokey", "cap/nokey", "secret/absent", "serviceaccount/nokey", "--wait=false")
}

func (s *story) reload(t *testing.T) {
	if r := s.call(t, laterAllowed); r.Status != 403 {
		t.Fatalf("%s before the edit: %+v, want 403", laterAllowed, r)
	}
	s.kubectl(t, policy(`"claude-haiku-*", "claude-sonnet-*"`), "apply", "-f", "-")
	// Until the kubelet refreshes the pod's ConfigMap the sidecar enforces the old policy, and the
	// policy's status must say so (pods.staleConfig, with this pod as the example).
	var sawStale bool
	took := wait.For(t, 3*time.Minute, "the running sidecar enforces the edited policy", func() error {
		if pc := s.podCounts(t); pc.StaleConfig == 1 && pc.StaleConfigExample == s.pod {
			sawStale = true
		}
		if r := s.call(t, laterAllowed); r.Status != 200 {
			return fmt.Errorf("%s: %d", laterAllowed, r.Status)
		}
		return nil
	})
	figures.Duration("policy edit (kubectl apply) -> running sidecar enforces it (kubelet ConfigMap sync + hot reload)", took)
	if took > 15*time.Second && !sawStale {
		t.Errorf("for %s the sidecar enforced the old policy, and the policy's status never said so", took)
	}
	wait.For(t, time.Minute, "the policy's status shows no stale sidecar", func() error {
		if pc := s.podCounts(t); pc.StaleConfig != 0 || pc.SidecarsChecked < 1 {
			return fmt.Errorf("pod counts %+v", pc)
		}
		return nil
	})
}

// podCounts reads the storefront policy's pod counts.
func (s *story) podCounts(t *testing.T) v1alpha1.PodCounts {
	t.Helper()
	var p v1alpha1.ClaudeAccessPolicy
	if err := c.Client.Get(s.ctx, client.ObjectKey{Namespace: tenantNS, Name: "storefront"}, &p); err != nil || p.Status.Pods == nil {
		return v1alpha1.PodCounts{}
	}
	return *p.Status.Pods
}

func (s *story) auditLogs(t *testing.T) {
	logs := s.kubectl(t, "", "logs", "-n", tenantNS, s.pod, "-c", wellknown.SidecarContainerName)
	for _, want := range []string{`"decision":"allow"`, `"decision":"deny"`, `"model":"` + denied + `"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("sidecar logs lack %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, upstreamKey) {
		t.Error("the sidecar's logs contain the API key")
	}
}

// sidecarClosed: on the real node, with the chart's sidecar protection, exec and a debug container
// targeting the sidecar are refused, even for the cluster admin this test runs as, while a debug
// container next to the app starts (exec into the app is how every call of this story is made).
func (s *story) sidecarClosed(t *testing.T) {
	refused := func(what string, args ...string) {
		t.Helper()
		out, err := c.Run(s.ctx, "", args...)
		if err == nil || !strings.Contains(out, what) {
			t.Errorf("kubectl %s: want refused with %q, got %v:\n%s", strings.Join(args, " "), what, err, out)
		}
	}
	refused("the claude-guard sidecar container of pod "+s.pod+" cannot be exec-ed into",
		"exec", "-n", tenantNS, s.pod, "-c", wellknown.SidecarContainerName, "--", wellknown.SidecarBinary, "--version")
	refused("an ephemeral container of pod "+s.pod+" cannot target the claude-guard sidecar container",
		"debug", "-n", tenantNS, s.pod, "--image="+cluster.ClientImage, "--image-pull-policy=Never", "--target="+wellknown.SidecarContainerName, "--container=peek", "--attach=false", "--", cluster.ClientBinary, "--help")
	s.kubectl(t, "", "debug", "-n", tenantNS, s.pod, "--image="+cluster.ClientImage, "--image-pull-policy=Never", "--target=app", "--container=helper", "--attach=false", "--", cluster.ClientBinary, "--help")
	wait.For(t, time.Minute, "the debug container next to the app to run", func() error {
		state := s.kubectl(t, "", "get", "pod", "-n", tenantNS, s.pod, "-o", `jsonpath={.status.ephemeralContainerStatuses[?(@.name=="helper")].state}`)
		if !strings.Contains(state, "running") && !strings.Contains(state, "terminated") {
			return fmt.Errorf("state %s", state)
		}
		return nil
	})
}

// sidecarUndumpable plays a tenant admin who cannot exec into the sidecar and runs a pod that shares
// the node's PID namespace instead, as the sidecar's own user (65532, as every image here runs). From
// there it reads /proc/PID/environ of every sidecar and of the apps: the kernel lets a process read a
// process of its own user (the apps prove it), and refuses only because the sidecar made itself
// non-dumpable, which also refuses /proc/PID/mem and ptrace.
func (s *story) sidecarUndumpable(t *testing.T) {
	s.kubectl(t, peekPod, "apply", "-f", "-")
	defer s.kubectl(t, "", "delete", "namespace", peekNS, "--wait=false")
	s.kubectl(t, "", "wait", "--for=condition=Ready", "--timeout=60s", "-n", peekNS, "pod/peek")
	out := s.kubectl(t, "", "exec", "-n", peekNS, "peek", "--", cluster.ClientBinary, "peek", "-comm", "sidecar", "-comm", "claudeclient")
	var sidecars, apps int
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var p struct {
			PID     int    `json:"pid"`
			Comm    string `json:"comm"`
			UID     int    `json:"uid"`
			Environ string `json:"environ"`
		}
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatalf("peek printed %q: %v", line, err)
		}
		if p.UID != imagebuild.NonRoot {
			continue // not the attacker's user: refused whatever the sidecar does
		}
		switch p.Comm {
		case "sidecar":
			sidecars++
			if !strings.Contains(p.Environ, "permission denied") {
				t.Errorf("a process of the sidecar's user read sidecar pid %d's environ: %s", p.PID, p.Environ)
			}
		case "claudeclient":
			if p.Environ == "read" {
				apps++
			}
		}
	}
	t.Logf("peek:\n%s", out)
	if sidecars == 0 || apps < 2 {
		t.Fatalf("peek saw %d sidecars and read %d apps of uid %d; want a sidecar and two apps, its own and the storefront (is hostPID on?):\n%s", sidecars, apps, imagebuild.NonRoot, out)
	}
}

// upgrade rolls the manager (a changed pod annotation) while a client keeps asking the API server to
// admit (dry-run) pods the policy selects, and counts the admissions that failed or came back without
// the sidecar.
func (s *story) upgrade(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan admissions)
	go func() { done <- countAdmissions(s.ctx, stop) }()
	t0 := time.Now()
	if _, err := s.release.Upgrade(append(s.values, "--set-string", "podAnnotations.rollout=2")...); err != nil {
		close(stop)
		t.Fatal(err)
	}
	s.available(t, releaseNS, "claude-guard-manager", 3*time.Minute)
	figures.Duration("helm upgrade -> new manager Available", time.Since(t0))
	time.Sleep(3 * time.Second) // the old pod's termination, after the new one is ready
	close(stop)
	a := <-done
	t.Logf("admissions during the upgrade: %d in all, %d failed, %d without the sidecar", a.total, a.failed, a.uninjected)
	figures.Record(fmt.Sprintf("admissions during helm upgrade: %d in all, %d failed, %d without the sidecar", a.total, a.failed, a.uninjected))
	if a.total < 10 || a.failed != 0 || a.uninjected != 0 {
		t.Fatalf("admissions during the upgrade: %d in all, %d failed (%v), %d without the sidecar; want 0 and 0", a.total, a.failed, a.firstErr, a.uninjected)
	}
}

type admissions struct {
	total, failed, uninjected int
	firstErr                  error
}

func countAdmissions(ctx context.Context, stop <-chan struct{}) admissions {
	var a admissions
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return a
		case <-tick.C:
		}
		pod := probePod()
		a.total++
		if err := c.Client.Create(ctx, pod, client.DryRunAll); err != nil {
			a.failed++
			if a.firstErr == nil {
				a.firstErr = err
			}
			continue
		}
		if pod.Annotations[wellknown.AnnotationStatus] != wellknown.StatusInjected {
			a.uninjected++
		}
	}
}

func (s *story) uninstall(t *testing.T) {
	if _, err := s.release.Uninstall(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, time.Minute, "the manager's pods are gone", func() error {
		var pods corev1.PodList
		if err := c.Client.List(s.ctx, &pods, client.InNamespace(releaseNS)); err != nil {
			return err
		}
		if len(pods.Items) > 0 {
			return fmt.Errorf("%d pods left in %s", len(pods.Items), releaseNS)
		}
		return nil
	})
	var pod corev1.Pod
	if err := c.Client.Get(s.ctx, client.ObjectKey{Namespace: tenantNS, Name: s.pod}, &pod); err != nil {
		t.Fatal(err)
	}
	if pod.Status.Phase != corev1.PodRunning || pod.DeletionTimestamp != nil {
		t.Fatalf("storefront pod after uninstall: phase %s, deleting %v", pod.Status.Phase, pod.DeletionTimestamp != nil)
	}
	if r := s.call(t, allowed); r.Status != 200 {
		t.Fatalf("a call after helm uninstall: %+v, want 200 (the sidecar keeps its config and key)", r)
	}
	// With the release gone there is no webhook: a pod the policy selects starts without the sidecar
	// (it holds no key, so it can call nothing). The next release must say so in the policy's status.
	unguarded := probePod()
	unguarded.GenerateName, unguarded.Name = "", "unguarded"
	if err := c.Client.Create(s.ctx, unguarded); err != nil {
		t.Fatal(err)
	}
	if unguarded.Annotations[wellknown.AnnotationStatus] != "" {
		t.Fatalf("a pod created with no release installed was touched by a webhook: %v", unguarded.Annotations)
	}
}

// reinstall installs the chart again after uninstall: the new release's webhook Secret is new and empty
// until the manager fills it, so a manager that waited for the kubelet to refresh a mounted Secret was
// not ready for minutes (112 s measured), while pods were admitted without the sidecar. It must serve
// within seconds, and inject again.
func (s *story) reinstall(t *testing.T) {
	t0 := time.Now()
	if _, err := s.release.Install(s.values...); err != nil {
		t.Fatal(err)
	}
	s.available(t, releaseNS, "claude-guard-manager", 2*time.Minute)
	took := time.Since(t0)
	figures.Duration("helm install after uninstall -> manager Deployment Available", took)
	// The readiness probe's first check comes 5 s after start and then every 10 s.
	if took > 45*time.Second {
		t.Errorf("the reinstalled manager took %s to become available, want well under a minute", took)
	}
	wait.For(t, time.Minute, "the policy's status names the pod that started without the sidecar", func() error {
		var p v1alpha1.ClaudeAccessPolicy
		if err := c.Client.Get(s.ctx, client.ObjectKey{Namespace: tenantNS, Name: "storefront"}, &p); err != nil {
			return err
		}
		pc := p.Status.Pods
		if pc == nil || pc.NotInjected != 1 || len(pc.NotInjectedReasons) != 1 || pc.NotInjectedReasons[0].Example != "unguarded" {
			return fmt.Errorf("pod counts %+v", pc)
		}
		return nil
	})
	var pod *corev1.Pod
	wait.For(t, 30*time.Second, "a pod the policy selects is injected again", func() error {
		pod = probePod()
		if err := c.Client.Create(s.ctx, pod, client.DryRunAll); err != nil {
			return err
		}
		if got := pod.Annotations[wellknown.AnnotationStatus]; got != wellknown.StatusInjected {
			return fmt.Errorf("status annotation %q", got)
		}
		return nil
	})
}

// probePod is what the admission checks dry-run: a pod the storefront policy selects.
func probePod() *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-", Namespace: tenantNS, Labels: map[string]string{"app": "storefront"}},
		Spec: corev1.PodSpec{ServiceAccountName: "storefront", Containers: []corev1.Container{{Name: "app", Image: cluster.ClientImage}}}}
}

// newUpstream moves the chart's upstream to the second fake API: the manager renders it into the policy's
// ConfigMap, the kubelet syncs it into the running pod, and the sidecar (which wires its upstream only at
// start) drains and exits, so the kubelet restarts it on the new config. Before, it kept calling the old
// upstream until someone recreated the pod.
func (s *story) newUpstream(t *testing.T) {
	url, err := c.ServiceURL(s.ctx, cluster.FakeUpstreamNamespace, "api2", 8080)
	if err != nil {
		t.Fatal(err)
	}
	s.values = []string{"--set", "upstream=" + url, "--set", "spiffe.socket.mode=None"}
	t0 := time.Now()
	if _, err := s.release.Upgrade(append(s.values, "--set-string", "podAnnotations.rollout=2")...); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 3*time.Minute, "calls from the running pod reach the new upstream", func() error {
		if r := s.call(t, allowed); r.Status != 200 {
			return fmt.Errorf("call: %+v", r)
		}
		logs, err := c.Run(s.ctx, "", "logs", "-n", cluster.FakeUpstreamNamespace, "deploy/api2")
		if err != nil {
			return fmt.Errorf("reading the new upstream's logs: %w", err)
		}
		if !strings.Contains(logs, "path=/v1/messages") {
			cm, _ := c.Run(s.ctx, "", "get", "configmap", "-n", tenantNS, "claude-guard-storefront", "-o", "jsonpath={.data.config\\.json}")
			sc, _ := c.Run(s.ctx, "", "logs", "-n", tenantNS, s.pod, "-c", wellknown.SidecarContainerName, "--tail=3")
			return fmt.Errorf("the new upstream saw no call yet; rendered config: %s; sidecar: %s", cm, sc)
		}
		return nil
	})
	figures.Duration("new upstream (helm upgrade) -> the running pod's calls reach it (kubelet sync + sidecar restart)", time.Since(t0))
	var pod corev1.Pod
	if err := c.Client.Get(s.ctx, client.ObjectKey{Namespace: tenantNS, Name: s.pod}, &pod); err != nil {
		t.Fatal(err)
	}
	if st := pod.Status.InitContainerStatuses; len(st) == 0 || st[0].RestartCount < 1 {
		t.Errorf("the sidecar was not restarted: %+v", st)
	}
	logs := s.kubectl(t, "", "logs", "-n", tenantNS, s.pod, "-c", wellknown.SidecarContainerName, "--previous")
	if !strings.Contains(logs, "draining and exiting") {
		t.Errorf("the sidecar's previous run does not say why it exited:\n%s", cluster.TailLines(logs, 5))
	}
}
