package app

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/internal/test/logbuf"
	"github.com/claude-guard/claude-guard/internal/test/wait"
	"github.com/claude-guard/claude-guard/sidecar/config"
)

const key = "sk-ant-file-key"

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	// Replace atomically, the way kubelet swaps a ConfigMap.
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func policyYAML(model string) string {
	return "apiVersion: sidecar.claudeguard.io/v1\nkind: SidecarConfig\ncredentials: {env: {name: NOT_USED}}\nmodels: {allow: [" + model + "]}\n"
}

type lockedBuf struct {
	ch chan string
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		select {
		case l.ch <- line:
		default:
		}
	}
	return len(p), nil
}

// post sends a streaming Messages request and returns the status and the whole body.
func post(t *testing.T, base, model string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/v1/messages", strings.NewReader(`{"model":"`+model+`","max_tokens":5,"stream":true,"messages":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("anthropic-version", "2023-06-01")
	return do(t, req)
}

// get fetches url and returns the status and the whole body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the body: %v", req.Method, req.URL, err)
	}
	return resp.StatusCode, string(b)
}

// TestStandalone runs the sidecar from a config file and a key file: it serves, reports ready,
// hot-reloads a new policy, keeps the old one when the new file is invalid, and drains a stream on
// shutdown.
func TestStandalone(t *testing.T) {
	up := httptest.NewServer(fakeupstream.New(key))
	defer up.Close()
	dir := t.TempDir()
	cfgPath, keyPath := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "key")
	writeFile(t, cfgPath, policyYAML("claude-haiku-*"))
	writeFile(t, keyPath, key+"\n")

	o := &Options{ConfigPath: cfgPath, Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0", Upstream: up.URL, APIKeyFile: keyPath,
		Workload: "test", ShutdownGrace: 5 * time.Second, MaxRequestDuration: time.Minute, LogLevel: "info"}
	logs := &lockedBuf{ch: make(chan string, 1000)}
	o.Stdout = logs
	proxyAddr, metricsAddr, done, cancel := start(t, o)
	defer cancel()
	base, metricsBase := "http://"+proxyAddr, "http://"+metricsAddr

	if status, body := get(t, metricsBase+"/readyz"); status != 200 {
		t.Fatalf("readyz: %d %s", status, body)
	}
	// GET /config names the document in force by the hash the controller gives its ConfigMap.
	if status, body := get(t, metricsBase+"/config"); status != 200 || !strings.Contains(body, `"document":"`+policyconfig.Hash([]byte(policyYAML("claude-haiku-*")))+`"`) {
		t.Fatalf("config: %d %s", status, body)
	}
	if status, body := post(t, base, "claude-haiku-4-5"); status != 200 || !strings.Contains(body, "message_stop") {
		t.Fatalf("allowed request: %d %s", status, body)
	}

	// Hot reload: now only sonnet is allowed.
	writeFile(t, cfgPath, policyYAML("claude-sonnet-*"))
	wait.ForTrue(t, 10*time.Second, "", func() bool { status, _ := post(t, base, "claude-haiku-4-5"); return status == 403 })

	// A broken file is rejected and the policy in force stays.
	writeFile(t, cfgPath, "apiVersion: sidecar.claudeguard.io/v1\nkind: SidecarConfig\nmodels: {allow: [\"NOT A GLOB\"]}\nbogus: 1\n")
	wait.ForTrue(t, 10*time.Second, "", func() bool {
		for {
			select {
			case l := <-logs.ch:
				if strings.Contains(l, "Rejected new config") {
					return true
				}
			default:
				return false
			}
		}
	})
	if status, _ := post(t, base, "claude-sonnet-4-5"); status != 200 {
		t.Fatalf("after a bad file the old policy must stay: %d", status)
	}
	if status, _ := post(t, base, "claude-haiku-4-5"); status != 403 {
		t.Fatalf("after a bad file the old policy must stay: haiku got %d", status)
	}
	status, mb := get(t, metricsBase+"/metrics")
	if status != 200 {
		t.Fatalf("metrics: %d", status)
	}
	for _, want := range []string{`claude_guard_config_reloads_total{result="failure"}`, `claude_guard_requests_total{decision="deny",endpoint="/v1/messages",model="other",status="403"}`} {
		if !strings.Contains(mb, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// Graceful shutdown: a slow stream in flight completes.
	req, err := http.NewRequest("POST", base+"/v1/messages", strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":5,"stream":true,"messages":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set(fakeupstream.ScenarioHeader, fakeupstream.ScenarioSlow)
	req.Header.Set(fakeupstream.DelayHeader, "40ms")
	sresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	br := bufio.NewReader(sresp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel()
	rest, err := io.ReadAll(br)
	if err != nil || !strings.Contains(string(rest), "message_stop") {
		t.Fatalf("stream was cut by shutdown: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v", err)
	}
	if resp, err := http.Get(base + "/v1/models"); err == nil {
		resp.Body.Close()
		t.Fatalf("still serving after shutdown: %s", resp.Status)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		o    Options
		want string
	}{
		{"no config", Options{MaxRequestDuration: time.Minute, LogLevel: "info"}, "--config is required"},
		{"bad upstream", Options{ConfigPath: "x", Upstream: "ftp://x", MaxRequestDuration: time.Minute, LogLevel: "info"}, "--upstream"},
		{"bad level", Options{ConfigPath: "x", MaxRequestDuration: time.Minute, LogLevel: "loud"}, "--log-level"},
		{"ok", Options{ConfigPath: "x", MaxRequestDuration: time.Minute, LogLevel: "debug"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.o.Validate()
			if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("Validate() = %v, want %q", err, c.want)
			}
		})
	}
}

// TestExitsToApplyStartOnlySettings: a reload that changes what the sidecar wires only at start (here
// the upstream) does not leave it serving the old one beside the new config's hash: it drains and Run
// returns, so the kubelet restarts the native sidecar on the new config. A reload of the rules alone
// keeps it running.
func TestExitsToApplyStartOnlySettings(t *testing.T) {
	up := httptest.NewServer(fakeupstream.New(key))
	defer up.Close()
	dir := t.TempDir()
	cfgPath, keyPath := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "key")
	writeFile(t, keyPath, key+"\n")
	config := func(model, upstream string) string {
		return "apiVersion: sidecar.claudeguard.io/v1\nkind: SidecarConfig\nserver: {upstream: \"" + upstream +
			"\"}\ncredentials: {file: {path: " + keyPath + "}}\nmodels: {allow: [" + model + "]}\n"
	}
	writeFile(t, cfgPath, config("claude-haiku-*", up.URL))
	logs := &lockedBuf{ch: make(chan string, 1000)}
	o := &Options{ConfigPath: cfgPath, Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0",
		Workload: "test", ShutdownGrace: time.Second, MaxRequestDuration: time.Minute, LogLevel: "info", Stdout: logs}
	proxyAddr, _, done, stop := start(t, o)
	defer stop()
	base := "http://" + proxyAddr

	writeFile(t, cfgPath, config("claude-sonnet-*", up.URL))
	wait.ForTrue(t, 10*time.Second, "", func() bool { status, _ := post(t, base, "claude-sonnet-4-5"); return status == 200 })
	select {
	case err := <-done:
		t.Fatalf("a rules-only reload ended Run: %v", err)
	default:
	}

	other := httptest.NewServer(fakeupstream.New(key))
	defer other.Close()
	writeFile(t, cfgPath, config("claude-sonnet-*", other.URL))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the sidecar kept running after its upstream changed")
	}
	var said bool
	for len(logs.ch) > 0 {
		if l := <-logs.ch; strings.Contains(l, "draining and exiting") && strings.Contains(l, `"changed":"server"`) {
			said = true
		}
	}
	if !said {
		t.Error("no log line says the sidecar exits to apply the server change")
	}
}

// TestWarnsWithoutAKey: a sidecar whose local key is missing at start says so in its log, once, before
// any call is refused for it.
func TestWarnsWithoutAKey(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	writeFile(t, cfgPath, policyYAML("claude-haiku-*"))
	logs := &logbuf.Buffer{}
	serve(t, &Options{ConfigPath: cfgPath, Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0", Upstream: "http://127.0.0.1:1",
		APIKeyFile: filepath.Join(dir, "missing-key"), Workload: "test", ShutdownGrace: time.Second, MaxRequestDuration: time.Minute,
		LogLevel: "info", Stdout: logs})
	if out := logs.String(); !strings.Contains(out, "Starting without an API key") || !strings.Contains(out, "missing-key") {
		t.Fatalf("no warning about the missing key in:\n%s", out)
	}
}

// TestUpstreamFlagOnlyStandalone: --upstream redirects a hand-written config, never one the operator
// rendered, whose upstream the platform chose (a sidecar started with the flag would send that
// policy's key to whatever host it names).
func TestUpstreamFlagOnlyStandalone(t *testing.T) {
	const doc = "apiVersion: sidecar.claudeguard.io/v1\nkind: SidecarConfig\n%sserver: {upstream: \"https://api.anthropic.com\"}\ncredentials: {env: {name: K}}\nmodels: {allow: [claude-haiku-*]}\n"
	o := &Options{ConfigPath: "/etc/claude-guard/config.json", Upstream: "https://attacker.example"}
	for _, tc := range []struct {
		name, policy, want string
	}{
		{"standalone", "", ""},
		{"rendered", "policy: {namespace: acme, name: chat, generation: 3}\n",
			"--upstream is for standalone use: /etc/claude-guard/config.json was rendered by claude-guard from ClaudeAccessPolicy acme/chat"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Compile([]byte(fmt.Sprintf(doc, tc.policy)), o.override)
			switch {
			case tc.want == "" && (err != nil || c.Policy.Config.Server.Upstream != o.Upstream):
				t.Fatalf("want the flag's upstream, got %v (%v)", c, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want %q, got %v", tc.want, err)
			}
		})
	}
}

// TestMetricsNeedTheToken: with a metrics token hash in the config (or --metrics-token-file), /metrics
// and the reason /readyz gives are served only to the token's bearer; the kubelet's probes and the
// operator's /config need none.
func TestMetricsNeedTheToken(t *testing.T) {
	const token = "metrics-token-0123456789"
	dir := t.TempDir()
	keyPath, tokenPath := filepath.Join(dir, "key"), filepath.Join(dir, "token")
	writeFile(t, keyPath, key)
	writeFile(t, tokenPath, token+"\n")
	for _, tc := range []struct {
		name   string
		config string
		o      func(*Options)
	}{
		{"hash in the config", policyYAML("claude-haiku-*") + "server: {metricsTokenSHA256: " + policyconfig.MetricsTokenHash(token) + "}\n", func(*Options) {}},
		{"--metrics-token-file", policyYAML("claude-haiku-*"), func(o *Options) { o.MetricsTokenFile = tokenPath }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfgPath := filepath.Join(t.TempDir(), "config.yaml")
			writeFile(t, cfgPath, tc.config)
			o := &Options{ConfigPath: cfgPath, Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0", Upstream: "http://127.0.0.1:1",
				APIKeyFile: keyPath, Workload: "w", ShutdownGrace: time.Second, MaxRequestDuration: time.Minute, LogLevel: "info",
				Stdout: &lockedBuf{ch: make(chan string, 100)}}
			tc.o(o)
			_, m := serve(t, o)
			fetch := func(path, bearer string) (int, string) {
				req, err := http.NewRequest(http.MethodGet, "http://"+m+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				if bearer != "" {
					req.Header.Set("Authorization", "Bearer "+bearer)
				}
				return do(t, req)
			}
			cases := []struct {
				path, bearer string
				status       int
			}{
				{"/metrics", "", http.StatusUnauthorized},
				{"/metrics", "another-token", http.StatusUnauthorized},
				{"/metrics", token, http.StatusOK},
				{"/healthz", "", http.StatusOK},
				{"/readyz", "", http.StatusOK},
				{"/config", "", http.StatusOK},
			}
			for _, c := range cases {
				status, body := fetch(c.path, c.bearer)
				if status != c.status {
					t.Errorf("GET %s (bearer %q) = %d, want %d", c.path, c.bearer, status, c.status)
				}
				if c.status == http.StatusUnauthorized && strings.Contains(body, "claude_guard_") {
					t.Errorf("GET %s without the token leaks metrics:\n%s", c.path, body)
				}
			}
		})
	}
}
