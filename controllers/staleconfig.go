package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// staleRecheck is how soon a policy with sidecars on an older config is looked at again.
const staleRecheck = 10 * time.Second

// staleWindow is how long after a new render the sidecars are asked on every reconcile: longer than the
// kubelet's default sync period plus its jitter, so pods started from the old ConfigMap just before the
// render are caught when they come up.
const staleWindow = 3 * time.Minute

// renders remembers when each policy's rendered hash last changed (in this process).
type renders struct {
	mu sync.Mutex
	at map[types.NamespacedName]renderedAt
}

type renderedAt struct {
	hash string
	at   time.Time
}

// recent records hash as p's rendered hash and reports whether it changed within staleWindow.
func (rs *renders) recent(key types.NamespacedName, hash string, now time.Time) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.at == nil {
		rs.at = map[types.NamespacedName]renderedAt{}
	}
	r, ok := rs.at[key]
	if !ok || r.hash != hash {
		r = renderedAt{hash: hash, at: now}
		rs.at[key] = r
	}
	return now.Sub(r.at) < staleWindow
}

func (rs *renders) forget(key types.NamespacedName) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	delete(rs.at, key)
}

// SidecarConfigReader returns the hash of the rendered document a pod's sidecar enforces.
type SidecarConfigReader func(ctx context.Context, pod *corev1.Pod) (string, error)

// sidecarClient talks to sidecars on their pod IPs only: no proxy from the manager's environment (an
// egress proxy would receive, or refuse, pod-IP requests) and no redirects (the answer comes from a
// tenant's pod, which must not steer the manager elsewhere).
var sidecarClient = &http.Client{
	Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// ReadSidecarConfig asks the sidecar itself: GET /config on its metrics port (the one its probes use),
// which reports hashes only. The answer comes from a tenant's pod, so it is bounded and checked.
func ReadSidecarConfig(ctx context.Context, pod *corev1.Pod) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	u := "http://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(wellknown.SidecarMetricsPort))) + "/config"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := sidecarClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	var st struct {
		Document string `json:"document"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&st); err != nil {
		return "", fmt.Errorf("GET %s: %w", u, err)
	}
	return st.Document, nil
}

// staleConfig counts the running pods carrying p's sidecar whose sidecar enforces another document than
// the one just rendered: the kubelet refreshes a mounted ConfigMap only on its sync period (about a
// minute), and until then the sidecar serves what it has. Pods whose sidecar does not answer are not
// counted (a NetworkPolicy may keep the operator out); the status says how many answered.
//
// The sidecars are asked only while it matters: within staleWindow of a new render, or while some were
// stale at the last look. In steady state a reconcile costs no pod list and no request.
func (r *PolicyReconciler) staleConfig(ctx context.Context, p *v1alpha1.ClaudeAccessPolicy, prev v1alpha1.PodCounts) (stale, checked int32, example string, err error) {
	if r.APIReader == nil || r.SidecarConfig == nil || p.Status.RenderedConfig == nil {
		return 0, 0, "", nil
	}
	key := types.NamespacedName{Namespace: p.Namespace, Name: p.Name}
	if !r.renders.recent(key, p.Status.RenderedConfig.Hash, time.Now()) && prev.StaleConfig == 0 {
		return 0, prev.SidecarsChecked, "", nil // nothing changed since they last answered
	}
	sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
	if err != nil {
		return 0, 0, "", nil // reported by the pod counts
	}
	var pods corev1.PodList
	if err := r.APIReader.List(ctx, &pods, client.InNamespace(p.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return 0, 0, "", fmt.Errorf("failed to list the pods of policy %s: %w", p.Name, err)
	}
	want := p.Status.RenderedConfig.Hash
	var mu sync.Mutex
	var staleNames []string
	var wg sync.WaitGroup
	limit := make(chan struct{}, 8)
	for i := range pods.Items {
		pod := &pods.Items[i]
		if !runsSidecarOf(pod, p.Name) {
			continue
		}
		wg.Add(1)
		limit <- struct{}{}
		go func() {
			defer func() { <-limit; wg.Done() }()
			got, err := r.SidecarConfig(ctx, pod)
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			checked++
			if got != want {
				staleNames = append(staleNames, pod.Name)
			}
		}()
	}
	wg.Wait()
	sort.Strings(staleNames)
	if len(staleNames) > 0 {
		example = staleNames[0]
	}
	return int32(len(staleNames)), checked, example, nil
}

// runsSidecarOf reports whether pod is running with p's sidecar ready, reachable on its pod IP.
func runsSidecarOf(pod *corev1.Pod, policy string) bool {
	if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP == "" ||
		pod.Annotations[wellknown.AnnotationStatus] != wellknown.StatusInjected || pod.Annotations[wellknown.AnnotationPolicy] != policy {
		return false
	}
	for _, cs := range pod.Status.InitContainerStatuses {
		if cs.Name == wellknown.SidecarContainerName {
			return cs.Ready
		}
	}
	return false
}
