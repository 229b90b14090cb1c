//go:build integration

// Package claudecode runs Claude Code itself (npm @anthropic-ai/claude-code, installed by
// hack/claude-code.sh) against the real sidecar and the fake upstream, which refuses what the real API
// refuses: a test here cannot pass on a request the API would turn down.
//
// Between Claude Code and the sidecar sits a recording proxy, so each test can compare what Claude Code
// sent with what reached the upstream.
package claudecode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/internal/test/logbuf"
	"github.com/claude-guard/claude-guard/internal/test/repo"
	"github.com/claude-guard/claude-guard/internal/wellknown"
	"github.com/claude-guard/claude-guard/sidecar/app"
	"github.com/claude-guard/claude-guard/sidecar/app/apptest"
)

const upstreamKey = "sk-ant-api03-claude-code-test-key"

// samplePolicy is the sidecar config the operator renders for the sample policy's ceilings: Haiku
// clamped to 8192, Sonnet refused above 16000.
const samplePolicy = `
apiVersion: sidecar.claudeguard.io/v1
kind: SidecarConfig
policy: {namespace: team-a, name: coding}
credentials: {env: {name: UNUSED}}
models:
  allow: ["claude-haiku-*", "claude-sonnet-4-5"]
  maxTokens:
  - {model: "claude-haiku-*", limit: 8192, action: Clamp}
  - {model: "claude-sonnet-*", limit: 16000, action: Reject}
limits:
  rules:
  - {name: per-pod-rpm, key: Workload, window: Minute, requests: 60}
`

// sent is one request as Claude Code sent it (before the sidecar).
type sent struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

// harness is a fake upstream, a real sidecar in front of it, and a recorder in front of the sidecar.
type harness struct {
	fake   *fakeupstream.Server
	out    *logbuf.Buffer
	url    string // the recorder: Claude Code's ANTHROPIC_BASE_URL
	claude string
	home   string

	mu   sync.Mutex
	sent []sent
}

func newHarness(t *testing.T, config string) *harness {
	t.Helper()
	dir, err := repo.Tool("CLAUDE_GUARD_CLAUDE_CODE_DIR", "claude-code.sh")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{fake: fakeupstream.New(upstreamKey), out: &logbuf.Buffer{}, claude: filepath.Join(dir, "claude"), home: t.TempDir()}
	h.fake.Record = true
	up := httptest.NewServer(h.fake)
	t.Cleanup(up.Close)

	cfgDir := t.TempDir()
	for name, content := range map[string]string{"config.yaml": config, "api-key": upstreamKey} {
		if err := os.WriteFile(filepath.Join(cfgDir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr, _ := apptest.Start(t, &app.Options{ConfigPath: filepath.Join(cfgDir, "config.yaml"), Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0",
		Upstream: up.URL, APIKeyFile: filepath.Join(cfgDir, "api-key"), Workload: "team-a/coding-0",
		ShutdownGrace: time.Second, MaxRequestDuration: time.Minute, LogLevel: "info", Stdout: h.out})
	target, _ := url.Parse("http://" + addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		_, _ = body.ReadFrom(r.Body)
		h.mu.Lock()
		h.sent = append(h.sent, sent{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body.Bytes()})
		h.mu.Unlock()
		r.Body = readCloser{bytes.NewReader(body.Bytes())}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(rec.Close)
	h.url = rec.URL
	return h
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// result is one Claude Code run.
type result struct {
	stdout, stderr string
	exit           int
	// timedOut is set when runFor stopped it.
	timedOut bool
}

// run runs claude with args in a fresh home, pointed at the recorder with the placeholder key, with
// non-essential traffic off (no telemetry, no auto-update); extraEnv adds or overrides variables.
func (h *harness) run(t *testing.T, extraEnv []string, args ...string) result {
	t.Helper()
	res := h.runFor(t, 2*time.Minute, extraEnv, args...)
	if res.timedOut {
		t.Fatalf("claude %v did not finish within 2 minutes:\n%s\n%s", args, res.stdout, res.stderr)
	}
	return res
}

// runFor is run, stopping Claude Code after timeout (result.timedOut).
func (h *harness) runFor(t *testing.T, timeout time.Duration, extraEnv []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.claude, args...)
	cmd.Dir = h.home
	cmd.Env = append([]string{
		"HOME=" + h.home,
		"PATH=/usr/bin:/bin",
		"ANTHROPIC_BASE_URL=" + h.url,
		"ANTHROPIC_API_KEY=" + wellknown.PlaceholderAPIKey,
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
		"DISABLE_AUTOUPDATER=1",
		// Keep the model a test asks for (Claude Code maps retired ids to the newest model otherwise).
		"CLAUDE_CODE_DISABLE_LEGACY_MODEL_REMAP=1",
		// The fake's conversational scenario; Claude Code sends these headers with every request.
		"ANTHROPIC_CUSTOM_HEADERS=" + fakeupstream.ScenarioHeader + ": " + fakeupstream.ScenarioAssistant,
	}, extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	res.timedOut = ctx.Err() != nil
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		res.exit = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("claude %v: %v", args, err)
	}
	return res
}

// messages returns the /v1/messages requests Claude Code sent, in order.
func (h *harness) messages() []sent {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []sent
	for _, s := range h.sent {
		if s.Path == "/v1/messages" {
			out = append(out, s)
		}
	}
	return out
}

// upstreamMessages returns the /v1/messages requests that reached the fake upstream.
func (h *harness) upstreamMessages() []fakeupstream.Recorded {
	var out []fakeupstream.Recorded
	for _, r := range h.fake.Requests() {
		if r.Path == "/v1/messages" {
			out = append(out, r)
		}
	}
	return out
}

// audits decodes the sidecar's audit records.
func (h *harness) audits(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	// Audit records are flushed every 100 ms.
	time.Sleep(300 * time.Millisecond)
	for _, l := range strings.Split(h.out.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["log"] == "audit" {
			out = append(out, m)
		}
	}
	return out
}

// body decodes the fields of a Messages body the tests look at.
type body struct {
	Model     string `json:"model"`
	MaxTokens int64  `json:"max_tokens"`
	Stream    bool   `json:"stream"`
	Thinking  *struct {
		Type   string `json:"type"`
		Budget int64  `json:"budget_tokens"`
	} `json:"thinking"`
	Metadata struct {
		UserID string `json:"user_id"`
	} `json:"metadata"`
}

func decodeBody(t *testing.T, b []byte) body {
	t.Helper()
	var v body
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("request body is not JSON: %v", err)
	}
	return v
}
