//go:build integration

package app

import (
	"github.com/claude-guard/claude-guard/internal/test/logbuf"

	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
	"github.com/claude-guard/claude-guard/internal/test/wait"
)

// runSidecar runs the sidecar on cfgPath until the test ends and returns its proxy and metrics base URLs.
func runSidecar(t *testing.T, cfgPath, upstream, keyPath string, logs *logbuf.Buffer) (string, string) {
	t.Helper()
	p, m := serve(t, &Options{ConfigPath: cfgPath, Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0", Upstream: upstream, APIKeyFile: keyPath,
		Workload: "test", ShutdownGrace: time.Second, MaxRequestDuration: time.Minute, LogLevel: "info", Stdout: logs})
	return "http://" + p, "http://" + m
}

// TestRedisBackendSharedAndReloaded: two sidecars with backend Redis share one limit; a reload swaps the
// rules on the shared counters; the Redis password never reaches a log.
func TestRedisBackendSharedAndReloaded(t *testing.T) {
	const password = "hunter2-redis"
	rds := testservers.StartRedis(t, testservers.RedisOptions{Password: password})
	up := httptest.NewServer(fakeupstream.New(key))
	defer up.Close()
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "key")
	writeFile(t, keyPath, key+"\n")
	config := func(requests string) string {
		return policyYAML("claude-haiku-*") + "policy: {namespace: team-a, name: chat}\n" +
			"limits: {backend: Redis, redisURL: \"" + rds.URL + "\", rules: [{name: rpd, key: Namespace, window: Day, requests: " + requests + "}]}\n"
	}
	var bases []string
	var logs []*logbuf.Buffer
	for i := range 2 {
		p := filepath.Join(dir, "config"+string(rune('a'+i))+".yaml")
		writeFile(t, p, config("3"))
		l := &logbuf.Buffer{}
		base, metricsBase := runSidecar(t, p, up.URL, keyPath, l)
		bases, logs = append(bases, base), append(logs, l)
		if i == 0 {
			t.Cleanup(func() {
				_, mb := get(t, metricsBase+"/metrics")
				if !strings.Contains(mb, "claude_guard_limiter_backend_up 1") {
					t.Errorf("metrics lack claude_guard_limiter_backend_up 1")
				}
			})
		}
	}
	statuses := func() []int {
		var out []int
		for _, b := range []string{bases[0], bases[1], bases[0], bases[1]} {
			status, _ := post(t, b, "claude-haiku-4-5")
			out = append(out, status)
		}
		return out
	}
	if got := statuses(); got[0] != 200 || got[1] != 200 || got[2] != 200 || got[3] != 429 {
		t.Fatalf("statuses %v: want 3 admitted across both sidecars, then 429", got)
	}
	// Raise the limit in the first sidecar's file: it reloads, keeps the shared count (3), admits 2 more.
	writeFile(t, filepath.Join(dir, "configa.yaml"), config("5"))
	wait.ForTrue(t, 10*time.Second, "", func() bool { status, _ := post(t, bases[0], "claude-haiku-4-5"); return status == 200 })
	if status, _ := post(t, bases[0], "claude-haiku-4-5"); status != 200 {
		t.Fatalf("5th request after raising the limit to 5: %d", status)
	}
	if status, _ := post(t, bases[0], "claude-haiku-4-5"); status != 429 {
		t.Fatalf("6th request: %d, want 429", status)
	}
	for _, l := range logs {
		out := l.String()
		if !strings.Contains(out, "Rate limits are shared through Redis") || strings.Contains(out, password) {
			t.Fatalf("logs:\n%s", out)
		}
	}
}
