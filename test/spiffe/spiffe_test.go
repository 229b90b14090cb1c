//go:build integration

package spiffe

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/redis/go-redis/v9"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/redislib"
	"github.com/claude-guard/claude-guard/internal/spireentry"
	"github.com/claude-guard/claude-guard/internal/test/chartenv"
	"github.com/claude-guard/claude-guard/internal/test/cluster"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
	"github.com/claude-guard/claude-guard/internal/test/wait"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// TestSPIFFEPods is one story, step by step: each step needs the ones before it.
func TestSPIFFEPods(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	s := &story{ctx: ctx, top: t}
	cluster.Story(t, s.dump,
		cluster.Step{Name: "SPIRE from config/spire", Run: s.installSPIRE},
		cluster.Step{Name: "OpenBao holds each tenant's key", Run: s.openBao},
		cluster.Step{Name: "Redis on the cluster's bridge for shared limits", Run: s.startRedis},
		cluster.Step{Name: "helm install with the chart's SPIFFE defaults", Run: s.install},
		cluster.Step{Name: "an injected pod gets its SVID, reads its key from OpenBao and calls Claude", Run: s.firstPod},
		cluster.Step{Name: "another tenant's pod reads only its own key", Run: s.otherTenant},
		cluster.Step{Name: "OpenBao refuses another tenant's role to a pod's SVID", Run: s.crossTenant},
		cluster.Step{Name: "a hand-written copy of the sidecar gets no SVID", Run: s.forged},
		cluster.Step{Name: "the SPIRE agent restarts under a running pod", Run: s.agentRestart},
		cluster.Step{Name: "entries follow policies and tenants", Run: s.entriesFollow},
		cluster.Step{Name: "shared limits with the Redis password from the credential broker, no Secret in the namespace", Run: s.brokeredLimits},
	)
}

type story struct {
	ctx     context.Context
	top     *testing.T // servers that outlive one step are cleaned up with it
	spire   cluster.SPIRE
	bao     *testservers.OpenBao
	redis   *testservers.Redis
	release *chartenv.Release
	pod     string // the shop's running pod
}

func (s *story) kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := c.Run(s.ctx, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (s *story) installSPIRE(t *testing.T) {
	var err error
	if s.spire, err = c.InstallSPIRE(s.ctx); err != nil {
		t.Fatal(err)
	}
	figures.Duration("SPIRE installed (CRDs, server + Controller Manager, bundle, agent, CSI driver ready)", s.spire.Installed)
}

// openBao runs OpenBao outside the node, listening on the cluster's bridge for pods, with cert auth
// trusting the SPIRE bundle, and runs hack/vault-tenant.sh for both tenants.
func (s *story) openBao(t *testing.T) {
	s.bao = testservers.StartOpenBao(s.top, testservers.OpenBaoOptions{PodListenIP: cluster.NodeIP})
	root := s.bao.Client(t)
	if err := root.Sys().EnableAuthWithOptions("cert", &vaultapi.EnableAuthOptions{Type: "cert"}); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "bundle.pem")
	if err := os.WriteFile(bundle, []byte(s.spire.Bundle), 0o600); err != nil {
		t.Fatal(err)
	}
	dir, err := testservers.OpenBaoDir()
	if err != nil {
		t.Fatal(err)
	}
	for ns, key := range map[string]string{shop: shopKey, other: otherKey} {
		out, err := runScript("hack/vault-tenant.sh", []string{"VAULT_CLI=" + filepath.Join(dir, "bao"),
			"BAO_ADDR=" + s.bao.Addr, "BAO_TOKEN=" + s.bao.RootToken},
			"--tenant", ns, "--prefix", "tenants/"+ns, "--namespaces", ns, "--trust-domain", s.spire.TrustDomain,
			"--bundle", bundle, "--methods", "cert")
		if err != nil {
			t.Fatalf("hack/vault-tenant.sh %s: %v\n%s", ns, err, out)
		}
		if _, err := root.KVv2(vaultKVMount).Put(s.ctx, "tenants/"+ns+"/"+vaultKeyPath, map[string]any{"api_key": key}); err != nil {
			t.Fatal(err)
		}
	}
}

func (s *story) install(t *testing.T) {
	s.kubectl(t, fakeUpstream, "apply", "-f", "-")
	if _, err := c.WaitAvailable(s.ctx, cluster.FakeUpstreamNamespace, "api", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	upstream, err := c.ServiceURL(s.ctx, cluster.FakeUpstreamNamespace, "api", 8080)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "vault-ca.pem")
	if err := os.WriteFile(ca, []byte(s.bao.PodCA), 0o600); err != nil {
		t.Fatal(err)
	}
	helm := &chartenv.Helm{Bin: c.Helm, Kubeconfig: c.Kubeconfig, Home: filepath.Join(t.TempDir(), "helm")}
	s.release = &chartenv.Release{Helm: helm, Name: "claude-guard", Namespace: releaseNS}
	// Nothing about SPIFFE is set: socket mode CSI and ClusterStaticEntry registration with cluster name
	// claude-guard are the chart's defaults, and config/spire matches them.
	t0 := time.Now()
	// With Redis and a trust domain the chart turns on the Redis credential broker (the manager's SVID
	// comes from its ClusterSPIFFEID).
	if _, err := s.release.Install("--set", "upstream="+upstream, "--set", "vault.address="+s.bao.PodAddr,
		"--set-file", "vault.caBundle="+ca, "--set", "redis.url=redis://:"+redisAdminPassword+"@"+s.redis.PodAddr+"/0?"+redisTimeouts,
		"--set", "spiffe.trustDomain="+s.spire.TrustDomain); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitAvailable(s.ctx, releaseNS, "claude-guard-manager", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	figures.Duration("helm install -> manager Available", time.Since(t0))
	for _, ns := range []string{shop, other} {
		s.kubectl(t, tenant(ns), "apply", "-f", "-")
		s.kubectl(t, "", "wait", "--for=condition=Ready", "--timeout=60s", "-n", ns, "cap/"+workloadName)
	}
}

// redisTimeouts replace the sidecars' 200 ms Redis deadlines (go-redis URL parameters, rendered into
// their configs): they assume a Redis next door and a CPU to spare, and this step runs beside the rest
// of the suite on 2 cores, where one reply once took longer and FailClosed refused the next calls.
const redisTimeouts = "dial_timeout=2s&read_timeout=2s&write_timeout=2s"

// redisAdminPassword is the manager's admin connection's (a test Redis on the bridge; not a secret).
const redisAdminPassword = "redis-admin-not-real"

// startRedis runs redis-server outside the node, on the cluster's bridge for the manager and sidecars.
func (s *story) startRedis(t *testing.T) {
	s.redis = testservers.StartRedis(s.top, testservers.RedisOptions{Password: redisAdminPassword, PodListenIP: cluster.NodeIP, NoFunctions: true})
}

// brokeredLimits gives the shop's policy shared limits on Redis. Its sidecars authenticate as the
// namespace's Redis user with the password the manager's broker hands them for their SVID: the new pod
// is counted in Redis (the limit trips there, and only Redis-backed pods count there), while the
// namespace holds no Secret with the password for its admins to read. Without the broker the operator
// writes Secret claude-guard-redis into the namespace and mounts it.
func (s *story) brokeredLimits(t *testing.T) {
	// The test cluster has no DNS: the sidecars reach the broker at its Service's ClusterIP (they
	// authenticate it by its SPIFFE ID, not by name).
	addr, err := c.ServiceURL(s.ctx, releaseNS, "claude-guard-redis-broker", 9444)
	if err != nil {
		t.Fatal(err)
	}
	brokerURL := strings.Replace(addr, "http://", "https://", 1)
	if _, err := s.release.Upgrade("--reuse-values", "--set", "redis.broker.url="+brokerURL); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitAvailable(s.ctx, releaseNS, "claude-guard-manager", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	s.kubectl(t, "", "patch", "cap", "-n", shop, workloadName, "--type=merge", "-p",
		`{"spec":{"limits":{"backend":"Redis","failureMode":"FailClosed","rules":[{"name":"per-minute","key":"Namespace","window":"Minute","requests":3}]}}}`)
	s.kubectl(t, "", "wait", "--for=condition=Ready", "--timeout=60s", "-n", shop, "cap/"+workloadName)
	wait.For(t, 2*time.Minute, "the rendered config uses the credential broker", func() error {
		var cm corev1.ConfigMap
		if err := c.Client.Get(s.ctx, client.ObjectKey{Namespace: shop, Name: wellknown.ConfigMapName(workloadName)}, &cm); err != nil {
			return err
		}
		cfg, err := policyconfig.Parse([]byte(cm.Data[wellknown.ConfigKey]))
		if err != nil {
			return err
		}
		// The URL is the upgraded manager's: the old one may render once more while it leaves.
		if l := cfg.Limits; l.RedisBroker == nil || l.RedisBroker.URL != brokerURL || l.RedisUser != wellknown.RedisUser(shop) {
			return fmt.Errorf("limits %+v", l)
		}
		return nil
	})
	// The leader's Redis user controller creates the namespace's user and the function library; during
	// the manager's rollout above there can be no leader for a while, and a pod that starts before its
	// user exists answers 503 (FailClosed) until it does.
	admin := s.redis.Client(t)
	wait.For(t, 2*time.Minute, "the namespace's Redis user and claude-guard's functions exist", func() error {
		if err := admin.Do(s.ctx, "ACL", "GETUSER", wellknown.RedisUser(shop)).Err(); err != nil {
			return fmt.Errorf("ACL GETUSER %s: %w", wellknown.RedisUser(shop), err)
		}
		libs, err := admin.FunctionList(s.ctx, redis.FunctionListQuery{LibraryNamePattern: redislib.Library}).Result()
		if err != nil {
			return fmt.Errorf("FUNCTION LIST: %w", err)
		}
		if len(libs) != 1 {
			return fmt.Errorf("function libraries %v, want %s", libs, redislib.Library)
		}
		return nil
	})
	t0 := time.Now()
	s.kubectl(t, "", "rollout", "restart", "-n", shop, "deployment/"+workloadName)
	if _, err := c.WaitAvailable(s.ctx, shop, workloadName, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	figures.Duration("Redis limits on: rollout restart -> first call counted in Redis (password from the broker)", time.Since(t0))
	pod := s.runningPod(t, shop)
	// The app's own call at start counted one; FailClosed means a sidecar without Redis would answer 503.
	statuses := []int{}
	for range 8 {
		r := s.call(t, shop, pod.Name)
		statuses = append(statuses, r.Status)
		if r.Status == 429 {
			break
		}
	}
	if statuses[0] != 200 || statuses[len(statuses)-1] != 429 || slices.Contains(statuses, 503) {
		t.Fatalf("calls after the app's first: %v; want 200s, then 429 from the shared limit", statuses)
	}
	keys, err := admin.Keys(s.ctx, "cg:{"+shop+"}:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("no counters of %s in Redis: %v %v", shop, keys, err)
	}
	var secret corev1.Secret
	err = c.Client.Get(s.ctx, client.ObjectKey{Namespace: shop, Name: wellknown.RedisSecretName}, &secret)
	if !apierrors.IsNotFound(err) {
		t.Fatalf("Secret %s/%s: %v; want none: the broker hands the password to the sidecar only", shop, wellknown.RedisSecretName, err)
	}
	for _, v := range pod.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == wellknown.RedisSecretName {
			t.Fatalf("the pod mounts the Redis password Secret: %+v", v)
		}
	}
	logs := s.kubectl(t, "", "logs", "-n", shop, pod.Name, "-c", wellknown.SidecarContainerName)
	if !strings.Contains(logs, "Rate limits are shared through Redis") {
		t.Errorf("sidecar log: want Redis limits:\n%s", cluster.TailLines(logs, 10))
	}
	s.kubectl(t, "", "patch", "cap", "-n", shop, workloadName, "--type=json", "-p", `[{"op":"remove","path":"/spec/limits"}]`)
}

// firstPod measures what a tenant waits for: from creating a Deployment to its app's first allowed
// call, which needs the pod scheduled, the CSI volume mounted, the registration entry written and
// synced, the SVID issued, the OpenBao login and the key read, and the sidecar ready.
func (s *story) firstPod(t *testing.T) {
	t0 := time.Now()
	s.kubectl(t, workload(shop), "apply", "-f", "-")
	if _, err := c.WaitAvailable(s.ctx, shop, workloadName, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	figures.Duration("pod created -> first allowed call (SVID through the CSI driver, OpenBao cert login, key read)", time.Since(t0))
	pod := s.runningPod(t, shop)
	s.pod = pod.Name
	if r := s.call(t, shop, s.pod); r.Status != 200 {
		t.Fatalf("a call from the shop's pod: %+v, want 200", r)
	}
	e := s.entry(t, pod)
	if e == nil {
		t.Fatalf("no ClusterStaticEntry %s for pod %s", spireentry.Name(pod.UID), pod.Name)
	}
	sel, _, _ := unstructured.NestedStringSlice(e.Object, "spec", "selectors")
	id, _, _ := unstructured.NestedString(e.Object, "spec", "spiffeID")
	if want := spireentry.SPIFFEID(s.spire.TrustDomain, shop, workloadName); id != want || !slices.Contains(sel, "k8s:pod-uid:"+string(pod.UID)) {
		t.Errorf("entry: spiffeID %s selectors %v; want %s and the pod's UID", id, sel, want)
	}
	s.expectKey(t, shop)
	logs := s.kubectl(t, "", "logs", "-n", shop, s.pod, "-c", wellknown.SidecarContainerName)
	if !strings.Contains(logs, "Got SPIFFE identity") || strings.Contains(logs, shopKey) {
		t.Errorf("sidecar log: want the SPIFFE identity and never the key:\n%s", logs)
	}
}

func (s *story) otherTenant(t *testing.T) {
	s.kubectl(t, workload(other), "apply", "-f", "-")
	if _, err := c.WaitAvailable(s.ctx, other, workloadName, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	pod := s.runningPod(t, other)
	if r := s.call(t, other, pod.Name); r.Status != 200 {
		t.Fatalf("a call from the other tenant's pod: %+v, want 200", r)
	}
	s.expectKey(t, other)
}

// crossTenant misconfigures the operator side on purpose: the other tenant's ClaudeTenant is allowed
// the shop's Vault role, and a policy there asks for it. The controller admits it, so the only thing
// left between the other tenant's pod and the shop's key is OpenBao, which must refuse the pod's SVID
// (spiffe://.../ns/other/...) for a role bound to ns/shop.
func (s *story) crossTenant(t *testing.T) {
	s.kubectl(t, "", "patch", "claudetenant", other, "--type=merge", "-p", `{"spec":{"credentials":{"vault":{"roles":["other","shop"]}}}}`)
	s.kubectl(t, thief, "apply", "-f", "-")
	s.kubectl(t, "", "wait", "--for=condition=Ready", "--timeout=60s", "-n", other, "cap/thief")
	wait.For(t, time.Minute, "the thief's sidecar is refused by OpenBao", func() error {
		logs, _ := c.Run(s.ctx, "", "logs", "-n", other, "-l", "app=thief", "-c", wellknown.SidecarContainerName, "--tail=50")
		if !strings.Contains(logs, `failed to log in to Vault with cert auth as role \"shop\"`) {
			return fmt.Errorf("sidecar log: %s", cluster.TailLines(logs, 3))
		}
		return nil
	})
	var pods corev1.PodList
	if err := c.Client.List(s.ctx, &pods, client.InNamespace(other), client.MatchingLabels{"app": "thief"}); err != nil || len(pods.Items) != 1 {
		t.Fatalf("thief pods: %v (%d)", err, len(pods.Items))
	}
	// Not ready, so its app container never started and no call left the pod.
	if st := pods.Items[0].Status.InitContainerStatuses; len(st) == 0 || st[0].Ready {
		t.Fatalf("the thief's sidecar is ready: %+v", st)
	}
	s.kubectl(t, thief, "delete", "-f", "-", "--wait=false")
	s.kubectl(t, "", "patch", "claudetenant", other, "--type=merge", "-p", `{"spec":{"credentials":{"vault":{"roles":["other"]}}}}`)
}

// forged is a tenant writing the sidecar itself: the injected pod's spec, copied, with one argument
// more (a second listener) and the webhook's annotations. The webhook refuses it; and with the webhook
// out of the way (a cluster admin deleted its configuration), the operator still refuses it an identity.
func (s *story) forged(t *testing.T) {
	orig := s.runningPod(t, shop)
	pod := &corev1.Pod{}
	pod.Name, pod.Namespace = forgedPodName, shop
	// The policy's selector, not the ReplicaSet's (which would adopt the pod).
	pod.Labels = map[string]string{"app": workloadName}
	pod.Annotations = map[string]string{}
	for k, v := range orig.Annotations {
		pod.Annotations[k] = v
	}
	pod.Spec = *orig.Spec.DeepCopy()
	pod.Spec.NodeName = ""
	sc := &pod.Spec.InitContainers[0]
	sc.Args = append(sc.Args, "--listen=127.0.0.1:8788")
	const refused = "the name claude-guard-sidecar is reserved for the sidecar claude-guard injects, and this container is not that sidecar"
	if err := c.Client.Create(s.ctx, pod.DeepCopy()); err == nil || !strings.Contains(err.Error(), refused) {
		t.Fatalf("the webhook admitted the forged pod: want %q, got %v", refused, err)
	}
	restore := s.withoutWebhook(t)
	err := c.Client.Create(s.ctx, pod)
	restore()
	if err != nil {
		t.Fatal(err)
	}
	wait.For(t, time.Minute, "a SidecarNotVerified event on the forged pod", func() error {
		out, err := c.Run(s.ctx, "", "get", "events", "-n", shop, "--field-selector", "involvedObject.name="+forgedPodName, "-o", "jsonpath={.items[*].reason}")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "SidecarNotVerified") {
			return fmt.Errorf("event reasons: %q", out)
		}
		return nil
	})
	if err := c.Client.Get(s.ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
		t.Fatal(err)
	}
	if e := s.entry(t, pod); e != nil {
		t.Fatalf("the forged pod got entry %s", e.GetName())
	}
	// Long enough for an SVID to have arrived if an entry had been written (the first pod got one in
	// seconds): its sidecar still has none and is not ready.
	time.Sleep(10 * time.Second)
	logs, _ := c.Run(s.ctx, "", "logs", "-n", shop, forgedPodName, "-c", wellknown.SidecarContainerName)
	if strings.Contains(logs, "Got SPIFFE identity") {
		t.Fatalf("the forged sidecar got an SVID:\n%s", logs)
	}
	if err := c.Client.Get(s.ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
		t.Fatal(err)
	}
	if st := pod.Status.InitContainerStatuses; len(st) > 0 && st[0].Ready {
		t.Fatalf("the forged sidecar is ready")
	}
	s.kubectl(t, "", "delete", "pod", "-n", shop, forgedPodName, "--wait=false")
}

// withoutWebhook deletes the injection webhook's configuration, as a cluster admin could, and returns
// the function that puts it back (the manager keeps its caBundle current).
func (s *story) withoutWebhook(t *testing.T) (restore func()) {
	t.Helper()
	var list admissionregistrationv1.MutatingWebhookConfigurationList
	if err := c.Client.List(s.ctx, &list); err != nil || len(list.Items) != 1 {
		t.Fatalf("webhook configurations: %v (%d)", err, len(list.Items))
	}
	saved := list.Items[0].DeepCopy()
	if err := c.Client.Delete(s.ctx, &list.Items[0]); err != nil {
		t.Fatal(err)
	}
	// The API server stops calling a deleted webhook once its informer sees the deletion.
	time.Sleep(2 * time.Second)
	return func() {
		saved.ResourceVersion, saved.UID, saved.ManagedFields = "", "", nil
		if err := c.Client.Create(s.ctx, saved); err != nil {
			t.Fatalf("failed to restore the webhook configuration: %v", err)
		}
		time.Sleep(2 * time.Second)
	}
}

// agentRestart deletes the SPIRE agent's pod (as a rollout or a crash would) while the shop's app keeps
// calling: the sidecar holds its key and Vault token, so no call fails, and once the new agent serves,
// a new pod gets its SVID again.
func (s *story) agentRestart(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan [2]int)
	go func() {
		var n, failed int
		for {
			select {
			case <-stop:
				done <- [2]int{n, failed}
				return
			default:
			}
			if r := s.call(t, shop, s.pod); r.Status != 200 {
				failed++
				t.Logf("call during the agent restart: %+v", r)
			}
			n++
		}
	}()
	t0 := time.Now()
	s.kubectl(t, "", "delete", "pod", "-n", cluster.SPIRENamespace, "-l", "app.kubernetes.io/name=spire-agent", "--wait=true")
	if err := c.WaitDaemonSet(s.ctx, cluster.SPIRENamespace, "spire-agent", 2*time.Minute); err != nil {
		close(stop)
		t.Fatal(err)
	}
	figures.Duration("SPIRE agent pod deleted -> new agent ready", time.Since(t0))
	time.Sleep(3 * time.Second)
	close(stop)
	r := <-done
	figures.Record(fmt.Sprintf("calls during the SPIRE agent restart: %d in all, %d failed", r[0], r[1]))
	if r[0] < 3 || r[1] != 0 {
		t.Fatalf("calls during the agent restart: %d in all, %d failed; want 0 failed", r[0], r[1])
	}
	// A pod started after the restart is attested by the new agent.
	t1 := time.Now()
	s.kubectl(t, "", "rollout", "restart", "-n", shop, "deployment/"+workloadName)
	if _, err := c.WaitAvailable(s.ctx, shop, workloadName, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	figures.Duration("after the agent restart: rollout restart -> new pod's first allowed call", time.Since(t1))
	s.pod = s.runningPod(t, shop).Name
}

// entriesFollow deletes the other tenant's policy (its pod's entry goes), then the shop's ClaudeTenant
// (its pod's entry goes), and puts both back.
func (s *story) entriesFollow(t *testing.T) {
	otherPod := s.runningPod(t, other)
	s.kubectl(t, "", "delete", "cap", "-n", other, workloadName)
	s.waitEntry(t, otherPod, false)
	s.kubectl(t, policy(other), "apply", "-f", "-")
	s.waitEntry(t, otherPod, true)

	shopPod := s.runningPod(t, shop)
	s.kubectl(t, "", "delete", "claudetenant", shop)
	s.waitEntry(t, shopPod, false)
	s.kubectl(t, tenant(shop), "apply", "-f", "-")
	s.waitEntry(t, shopPod, true)
}

func (s *story) waitEntry(t *testing.T, pod *corev1.Pod, want bool) {
	t.Helper()
	took := wait.For(t, time.Minute, fmt.Sprintf("entry of %s/%s present=%v", pod.Namespace, pod.Name, want), func() error {
		if got := s.entry(t, pod) != nil; got != want {
			return fmt.Errorf("present=%v", got)
		}
		return nil
	})
	t.Logf("entry of %s/%s present=%v after %s", pod.Namespace, pod.Name, want, took)
}

// entry returns pod's ClusterStaticEntry, or nil.
func (s *story) entry(t *testing.T, pod *corev1.Pod) *unstructured.Unstructured {
	t.Helper()
	e := &unstructured.Unstructured{}
	e.SetGroupVersionKind(spireentry.GVK)
	if err := c.Client.Get(s.ctx, client.ObjectKey{Name: spireentry.Name(pod.UID)}, e); err != nil {
		if client.IgnoreNotFound(err) != nil {
			t.Fatal(err)
		}
		return nil
	}
	return e
}

// expectKey checks that the fake API's last call with a key came with tenant ns's key.
func (s *story) expectKey(t *testing.T, ns string) {
	t.Helper()
	logs := s.kubectl(t, "", "logs", "-n", cluster.FakeUpstreamNamespace, "deploy/api")
	var last string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "path=/v1/messages") {
			last = line
		}
	}
	if !strings.Contains(last, "key="+ns) {
		t.Fatalf("the fake API's last call did not carry %s's key: %q", ns, last)
	}
}

func (s *story) runningPod(t *testing.T, ns string) *corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	if err := c.Client.List(s.ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"app": workloadName}); err != nil {
		t.Fatal(err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil && len(p.OwnerReferences) > 0 {
			return p
		}
	}
	t.Fatalf("no running %s pod in %s among %d", workloadName, ns, len(pods.Items))
	return nil
}

func (s *story) call(t *testing.T, ns, pod string) cluster.ClientResult {
	t.Helper()
	return c.Call(s.ctx, ns, pod, allowed)
}

func (s *story) dump(t *testing.T) {
	ctx := context.Background()
	out, _ := c.Run(ctx, "", "get", "pods", "-A", "-o", "wide")
	t.Logf("pods:\n%s", out)
	out, _ = c.Run(ctx, "", "get", "events", "-A", "--sort-by=.lastTimestamp")
	t.Logf("events:\n%s", cluster.TailLines(out, 40))
	for _, sel := range []string{"app.kubernetes.io/name=spire-server", "app.kubernetes.io/name=spire-agent", "app.kubernetes.io/name=spiffe-csi-driver"} {
		out, _ = c.Run(ctx, "", "logs", "-n", cluster.SPIRENamespace, "-l", sel, "--all-containers", "--prefix", "--tail=25")
		t.Logf("%s:\n%s", sel, out)
	}
	out, _ = c.Run(ctx, "", "logs", "-n", releaseNS, "deploy/claude-guard-manager", "--tail=30")
	t.Logf("manager:\n%s", out)
	for _, ns := range []string{shop, other} {
		out, _ = c.Run(ctx, "", "logs", "-n", ns, "-l", "app="+workloadName, "--all-containers", "--prefix", "--tail=20")
		t.Logf("%s pods:\n%s", ns, out)
	}
	t.Logf("kubelet:\n%s", c.LogTail("kubelet", 25))
}

// runScript runs a script of the repository with extra environment and returns its output.
func runScript(path string, env []string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(testenv.RepoRoot(), path), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
