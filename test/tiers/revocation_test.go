//go:build integration

package tiers

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/test/logbuf"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/test/wait"
	"github.com/claude-guard/claude-guard/internal/wellknown"
	"github.com/claude-guard/claude-guard/sidecar/app"
	"github.com/claude-guard/claude-guard/sidecar/app/apptest"
	"github.com/claude-guard/claude-guard/sidecar/enduser/oidctest"
)

// reusablePolicy is a second policy of team-a for an app whose users' access tokens are reusable (no
// replay protection: what Claude Code's apiKeyHelper hands out, a token used until it expires), with
// its counters and revocations in Redis.
func reusablePolicy(is *oidctest.Issuer) string {
	return `apiVersion: claudeguard.io/v1alpha1
kind: ClaudeAccessPolicy
metadata: {name: coding, namespace: team-a}
spec:
  podSelector: {matchLabels: {app: coding}}
  credentials: {secretRef: {name: anthropic, key: api-key}}
  models: {allow: ["claude-haiku-*"]}
  endUser:
    mode: Strict
    issuers: [{url: "` + is.URL + `", audiences: [` + audience + `], caBundle: ` + jsonString(is.CACert) + `}]
  limits: {backend: Redis, failureMode: FailClosed}
`
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// replica is one in-process sidecar of the coding app, on the rendered config, as its pod would run it.
type replica struct {
	url string
	out *logbuf.Buffer
}

// startReplicas runs n sidecars of policy coding on its rendered config, each on its own port, with the
// namespace's Redis password and the tenant's key where the webhook would mount them.
func startReplicas(t *testing.T, h *harness, n int) []replica {
	t.Helper()
	dir := t.TempDir()
	cfg := h.run("", "get", "configmap", wellknown.ConfigMapName("coding"), "-n", "team-a", "-o", `jsonpath={.data.config\.json}`)
	pw := h.run("", "get", "secret", wellknown.RedisSecretName, "-n", "team-a", "-o", "jsonpath={.data."+wellknown.RedisSecretKey+"}")
	files := map[string]string{"config.json": cfg, "api-key": upstreamKey, "redis-password": decodeBase64(t, pw)}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var out []replica
	for i := range n {
		buf := &logbuf.Buffer{}
		addr, metrics := apptest.Start(t, &app.Options{ConfigPath: filepath.Join(dir, "config.json"), Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0",
			SecretDir: dir, RedisPasswordFile: filepath.Join(dir, "redis-password"), Workload: fmt.Sprintf("coding-%d", i),
			ShutdownGrace: time.Second, MaxRequestDuration: time.Minute, LogLevel: "info", Stdout: buf})
		// Ready once its issuer is discovered: a pod gets traffic only then.
		wait.For(t, 10*time.Second, "", func() error {
			resp, err := http.Get("http://" + metrics + "/readyz")
			if err != nil {
				return err
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("replica %d: /readyz %d", i, resp.StatusCode)
			}
			return nil
		})
		out = append(out, replica{url: "http://" + addr, out: buf})
	}
	return out
}

// call sends one Messages request with the end user's token and returns the status and body.
func (r replica) call(t *testing.T, tok string) (int, string) {
	t.Helper()
	body := `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	req, err := http.NewRequest(http.MethodPost, r.url+"/v1/messages", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("anthropic-version", "2023-06-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// revocationSample is config/samples' revocation named name, pointed at this test's issuer, with value
// as its subject or jti (the sample's own other field dropped).
func revocationSample(t *testing.T, is *oidctest.Issuer, name, field, value string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "samples", "claudeguard_v1alpha1_clauderevocation.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var u unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		if u.GetName() != name {
			continue
		}
		spec := u.Object["spec"].(map[string]any)
		delete(spec, "subject")
		delete(spec, "jti")
		delete(spec, "expiresAt")
		spec["issuer"], spec[field] = is.URL, value
		out, err := yaml.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	t.Fatalf("the revocation sample has no %s", name)
	return ""
}

// testRevocation proves item 6 of docs/threat-model.md's end-user rows: a token (jti) or a user
// (subject) revoked with kubectl is refused on every replica within 5 s through Redis, the audit record
// names the revocation, reusable tokens work until then, and deleting the revocation lifts it.
func testRevocation(t *testing.T, h *harness, is *oidctest.Issuer) {
	h.run(reusablePolicy(is), "apply", "-f", "-")
	h.run("", "wait", "--for=condition=Ready", "cap/coding", "-n", "team-a", "--timeout=30s")
	replicas := startReplicas(t, h, 2)

	claims := is.Claims("carol", audience)
	reusable := is.Sign(claims)
	for i, r := range replicas {
		for range 3 {
			if code, body := r.call(t, reusable); code != http.StatusOK {
				t.Fatalf("replica %d refused carol's reusable token before any revocation: %d %s", i, code, body)
			}
		}
	}

	// allRefuse waits until every replica refuses tok as revoked and returns how long that took.
	allRefuse := func(tok, what string, from time.Time) time.Duration {
		t.Helper()
		pending := map[int]bool{0: true, 1: true}
		for len(pending) > 0 {
			if time.Since(from) > 5*time.Second {
				t.Fatalf("%s: replicas %v still serve the token 5 s after the revocation was created", what, pending)
			}
			for i := range pending {
				code, body := replicas[i].call(t, tok)
				if code == http.StatusUnauthorized && strings.Contains(body, "it was revoked") {
					delete(pending, i)
				} else if code != http.StatusOK {
					t.Fatalf("%s: replica %d answered %d %s", what, i, code, body)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		return time.Since(from)
	}

	t.Run("a revoked token is refused on every replica within 5 s", func(t *testing.T) {
		start := time.Now()
		h.run(revocationSample(t, is, "leaked-token", "jti", claims["jti"].(string)), "apply", "-f", "-")
		took := allRefuse(reusable, "jti", start)
		t.Logf("jti revocation in force on both replicas %s after kubectl apply", took.Round(time.Millisecond))
		// The user's other tokens still work: only that token was revoked.
		if code, body := replicas[1].call(t, is.Sign(is.Claims("carol", audience))); code != http.StatusOK {
			t.Errorf("carol's new token after revoking another one: %d %s", code, body)
		}
	})

	t.Run("a revoked user is refused on every replica within 5 s, and lifted by deleting it", func(t *testing.T) {
		dave := is.Sign(is.Claims("dave", audience))
		fresh := is.Sign(is.Claims("carol", audience))
		start := time.Now()
		h.run(revocationSample(t, is, "alice", "subject", "carol"), "apply", "-f", "-")
		took := allRefuse(fresh, "subject", start)
		t.Logf("subject revocation in force on both replicas %s after kubectl apply", took.Round(time.Millisecond))
		if code, body := replicas[0].call(t, dave); code != http.StatusOK {
			t.Errorf("dave after revoking carol: %d %s", code, body)
		}
		out := h.run("", "get", "crev", "alice", "-n", "team-a", "-o", "jsonpath={.status.conditions[0].status} {.status.conditions[0].reason} {.status.policies}")
		if !strings.HasPrefix(out, "True Revoked") || !strings.Contains(out, "coding") || !strings.Contains(out, "assistant-tiers") {
			t.Errorf("revocation status = %q, want Ready True Revoked for coding and assistant-tiers (both trust the issuer)", out)
		}

		h.run("", "delete", "crev", "alice", "-n", "team-a")
		wait.For(t, 5*time.Second, "carol's token accepted again on every replica after the revocation was deleted", func() error {
			for i, r := range replicas {
				if code, body := r.call(t, fresh); code != http.StatusOK {
					return fmt.Errorf("replica %d: %d %s", i, code, body)
				}
			}
			return nil
		})
	})

	t.Run("the audit record names the revocation and the user, never the token", func(t *testing.T) {
		for i, r := range replicas {
			out := r.out.String()
			if strings.Contains(out, reusable) {
				t.Fatalf("replica %d's output holds the token", i)
			}
			var found bool
			for _, line := range strings.Split(out, "\n") {
				var rec map[string]any
				if json.Unmarshal([]byte(line), &rec) != nil || rec["log"] != "audit" || rec["rule"] != "endUser.revoked" {
					continue
				}
				found = true
				if rec["status"] != float64(401) || rec["endUser"] != "carol" || (rec["revocation"] != "leaked-token" && rec["revocation"] != "alice") {
					t.Errorf("replica %d: audit record of a revoked call = %v", i, rec)
				}
			}
			if !found {
				t.Errorf("replica %d wrote no audit record with rule endUser.revoked", i)
			}
		}
	})

	t.Run("the config carries the revocations too, for sidecars without Redis", func(t *testing.T) {
		wait.For(t, 10*time.Second, "", func() error {
			cfg, err := policyconfig.Parse([]byte(h.run("", "get", "configmap", wellknown.ConfigMapName("coding"), "-n", "team-a",
				"-o", `jsonpath={.data.config\.json}`)))
			if err != nil {
				return err
			}
			want := policyconfig.RevocationID(policyconfig.RevokeJTI, is.URL, claims["jti"].(string))
			if len(cfg.Revoked) != 1 || cfg.Revoked[0].ID != want || cfg.Revoked[0].Name != "leaked-token" {
				return fmt.Errorf("rendered revocations = %+v, want leaked-token's alone (alice was deleted)", cfg.Revoked)
			}
			if raw := h.run("", "get", "configmap", wellknown.ConfigMapName("coding"), "-n", "team-a", "-o", "yaml"); strings.Contains(raw, claims["jti"].(string)) {
				return fmt.Errorf("the rendered config names the revoked jti")
			}
			return nil
		})
	})
}

func decodeBase64(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("Secret data is not base64: %v", err)
	}
	return string(b)
}
