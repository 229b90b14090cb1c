//go:build integration

package claudecode

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/sidecar/enduser/oidctest"
)

// forwardedUnchanged are the request parts Claude Code relies on that must reach the upstream as sent.
var forwardedUnchanged = []string{"Anthropic-Beta", "Anthropic-Version", "X-App", "X-Claude-Code-Session-Id", "User-Agent", "Content-Type"}

// TestOneShotUnderClamp: `claude -p "say hi" --model claude-haiku-4-5` under the sample policy's Clamp
// succeeds. Claude Code asks for max_tokens 32000 with a thinking budget of 31999; the sidecar lowers
// both, so the request is one the API accepts (the fake refuses a budget at or above max_tokens), and
// the audit record shows the original and the new values. Everything else Claude Code sends (betas,
// session id, ?beta=true, streaming) reaches the upstream unchanged.
func TestOneShotUnderClamp(t *testing.T) {
	h := newHarness(t, samplePolicy)
	res := h.run(t, nil, "-p", "say hi", "--model", "claude-haiku-4-5")
	if res.exit != 0 || !strings.Contains(res.stdout, fakeupstream.AssistantGreeting) {
		t.Fatalf("claude exited %d, want 0 with the assistant's answer:\n%s\n%s", res.exit, res.stdout, res.stderr)
	}
	sentMsgs, upMsgs := h.messages(), h.upstreamMessages()
	if len(sentMsgs) == 0 || len(sentMsgs) != len(upMsgs) {
		t.Fatalf("Claude Code sent %d Messages requests, the upstream got %d; want the same, at least one", len(sentMsgs), len(upMsgs))
	}
	for i, s := range sentMsgs {
		up := upMsgs[i]
		if up.Query != s.Query || !strings.Contains(s.Query, "beta=true") {
			t.Errorf("request %d: query %q reached the upstream as %q", i, s.Query, up.Query)
		}
		for _, name := range forwardedUnchanged {
			if got, want := strings.Join(up.Header.Values(name), "|"), strings.Join(s.Header.Values(name), "|"); got != want || want == "" {
				t.Errorf("request %d: %s = %q reached the upstream as %q", i, name, want, got)
			}
		}
		if up.Header.Get("X-Api-Key") != upstreamKey {
			t.Errorf("request %d: the upstream did not get the tenant's key in place of the placeholder", i)
		}
		in, out := decodeBody(t, s.Body), decodeBody(t, up.Body)
		if !in.Stream || !out.Stream {
			t.Errorf("request %d: stream %v reached the upstream as %v, want a stream", i, in.Stream, out.Stream)
		}
		if out.MaxTokens > 8192 {
			t.Errorf("request %d: max_tokens %d reached the upstream above the clamp", i, out.MaxTokens)
		}
		if out.Thinking != nil && out.Thinking.Type == "enabled" && out.Thinking.Budget >= out.MaxTokens {
			t.Errorf("request %d: thinking budget %d is not below max_tokens %d", i, out.Thinking.Budget, out.MaxTokens)
		}
	}
	first := decodeBody(t, sentMsgs[0].Body)
	if first.MaxTokens <= 8192 || first.Thinking == nil || first.Thinking.Budget < 8192 {
		t.Fatalf("Claude Code sent max_tokens %d and thinking %+v: the test no longer exercises the clamp", first.MaxTokens, first.Thinking)
	}
	a := h.audits(t)
	if len(a) == 0 {
		t.Fatal("no audit record")
	}
	r := a[0]
	if want := sentMsgs[0].Header.Get("X-Claude-Code-Session-Id"); r["session"] != want || want == "" {
		t.Errorf("audit session %v, want Claude Code's session id %q", r["session"], want)
	}
	if r["clampedFrom"] != float64(first.MaxTokens) || r["maxTokens"] != float64(8192) ||
		r["thinkingBudgetFrom"] != float64(first.Thinking.Budget) || r["thinkingBudget"] != float64(8191) {
		t.Errorf("audit clampedFrom %v maxTokens %v thinkingBudgetFrom %v thinkingBudget %v; want %d, 8192, %d, 8191",
			r["clampedFrom"], r["maxTokens"], r["thinkingBudgetFrom"], r["thinkingBudget"], first.MaxTokens, first.Thinking.Budget)
	}
}

// TestDeniedModelNamesTheRule: a model the policy does not allow fails at once, with the rule in Claude
// Code's own output; claude-guard's refusal says x-should-retry: false, so Claude Code sends it once,
// and nothing reaches the upstream.
func TestDeniedModelNamesTheRule(t *testing.T) {
	h := newHarness(t, samplePolicy)
	res := h.run(t, nil, "-p", "say hi", "--model", "claude-opus-4-1")
	if res.exit == 0 || !strings.Contains(res.stdout+res.stderr, "models.allow") {
		t.Fatalf("claude exited %d, want a failure naming rule models.allow:\n%s\n%s", res.exit, res.stdout, res.stderr)
	}
	if n := len(h.messages()); n != 1 {
		t.Errorf("Claude Code sent the refused request %d times, want once (no retries)", n)
	}
	if n := len(h.upstreamMessages()); n != 0 {
		t.Errorf("%d refused requests reached the upstream", n)
	}
}

// TestSonnetCeilings: under a Reject ceiling below Claude Code's default output (Sonnet, 16000) every
// prompt is refused with the rule named; CLAUDE_CODE_MAX_OUTPUT_TOKENS within the ceiling fixes it, as
// docs/claude-code.md says.
func TestSonnetCeilings(t *testing.T) {
	h := newHarness(t, samplePolicy)
	res := h.run(t, nil, "-p", "say hi", "--model", "claude-sonnet-4-5")
	if res.exit == 0 || !strings.Contains(res.stdout+res.stderr, "models.maxTokens") {
		t.Fatalf("claude exited %d, want a failure naming rule models.maxTokens:\n%s\n%s", res.exit, res.stdout, res.stderr)
	}
	res = h.run(t, []string{"CLAUDE_CODE_MAX_OUTPUT_TOKENS=16000"}, "-p", "say hi", "--model", "claude-sonnet-4-5")
	if res.exit != 0 || !strings.Contains(res.stdout, fakeupstream.AssistantGreeting) {
		t.Fatalf("with CLAUDE_CODE_MAX_OUTPUT_TOKENS=16000 claude exited %d, want 0:\n%s\n%s", res.exit, res.stdout, res.stderr)
	}
}

// TestToolUseTurn: a turn with a tool call. The assistant asks for Claude Code's Read tool; Claude Code
// reads the file and sends the result back; the assistant's answer quotes it. Both legs go through the
// sidecar, streamed.
func TestToolUseTurn(t *testing.T) {
	h := newHarness(t, samplePolicy)
	const marker = "marker-7c1e: the file Claude Code read"
	file := filepath.Join(h.home, "notes.txt")
	if err := os.WriteFile(file, []byte(marker+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	prompt := `read it: [[tool Read {"file_path":"` + file + `"}]]`
	res := h.run(t, nil, "-p", prompt, "--model", "claude-haiku-4-5", "--allowedTools", "Read")
	if res.exit != 0 || !strings.Contains(res.stdout, "tool result:") || !strings.Contains(res.stdout, marker) {
		t.Fatalf("claude exited %d, want the answer quoting the file:\n%s\n%s", res.exit, res.stdout, res.stderr)
	}
	up := h.upstreamMessages()
	if len(up) < 2 || !strings.Contains(string(up[len(up)-1].Body), `"tool_result"`) {
		t.Fatalf("the upstream got %d Messages requests; want the tool result in the last one", len(up))
	}
}

// TestEndUserTokenFromAPIKeyHelper: the setup docs/claude-code.md gives for end users. Claude Code's
// apiKeyHelper prints the developer's OIDC access token; Claude Code sends it as x-api-key and as
// "Authorization: Bearer"; the sidecar verifies it, applies the developer's tier, audits the developer
// and sends neither header upstream. The same token keeps working across requests (no replay
// protection: Claude Code reuses it until the helper gives a new one).
func TestEndUserTokenFromAPIKeyHelper(t *testing.T) {
	is := oidctest.Start(t)
	perDeveloper := "  - {name: per-pod-rpm, key: Workload, window: Minute, requests: 60}\n  - {name: per-developer, key: EndUser, window: Hour, requests: 3}\n"
	config := strings.Replace(samplePolicy, "  - {name: per-pod-rpm, key: Workload, window: Minute, requests: 60}\n", perDeveloper, 1) + fmt.Sprintf(`
endUser:
  mode: Strict
  issuers:
  - {url: %s, audiences: [claude-code], caCert: %q}
  rules:
  - {scopes: [claude-code], models: ["claude-haiku-*"]}
`, is.URL, is.CACert)
	h := newHarness(t, config)
	tokenFile := filepath.Join(h.home, "token")
	helper := filepath.Join(h.home, "get-token")
	settings := filepath.Join(h.home, ".claude", "settings.json")
	for path, content := range map[string]string{
		tokenFile: is.Sign(is.Claims("dev-alice", "claude-code", "claude-code")),
		helper:    "#!/bin/sh\nexec cat " + tokenFile + "\n",
		settings:  `{"apiKeyHelper": "` + helper + `"}`,
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	noKey := []string{"ANTHROPIC_API_KEY="}
	for range 2 {
		res := h.run(t, noKey, "-p", "say hi", "--model", "claude-haiku-4-5")
		if res.exit != 0 || !strings.Contains(res.stdout, fakeupstream.AssistantGreeting) {
			t.Fatalf("claude with the developer's token exited %d:\n%s\n%s", res.exit, res.stdout, res.stderr)
		}
	}
	// Sonnet is not in the developer's tier. With apiKeyHelper, Claude Code takes a 401 or 403 for a
	// stale key: it runs the helper again and retries with backoff, whatever x-should-retry says
	// (docs/claude-code.md). Every retry is refused before the upstream and none is charged: the
	// developer's third Haiku run, within a limit of three requests, still goes through.
	res := h.runFor(t, 15*time.Second, noKey, "-p", "say hi", "--model", "claude-sonnet-4-5")
	if res.exit == 0 && !res.timedOut {
		t.Fatalf("claude with Sonnet succeeded:\n%s", res.stdout)
	}
	refused := 0
	for _, a := range h.audits(t) {
		if a["model"] == "claude-sonnet-4-5" {
			refused++
			if a["rule"] != "endUser.rules" || a["status"] != float64(403) {
				t.Errorf("Sonnet request audited as %v %v, want 403 endUser.rules", a["status"], a["rule"])
			}
		}
	}
	if refused == 0 {
		t.Fatal("no Sonnet request was audited")
	}
	if res := h.run(t, noKey, "-p", "say hi", "--model", "claude-haiku-4-5"); res.exit != 0 {
		t.Fatalf("the third Haiku run after %d refused retries exited %d (were the refusals charged?):\n%s\n%s", refused, res.exit, res.stdout, res.stderr)
	}
	for i, s := range h.messages() {
		if !strings.HasPrefix(s.Header.Get("Authorization"), "Bearer ey") {
			t.Fatalf("request %d: Claude Code did not send the helper's token as a bearer token", i)
		}
	}
	for i, up := range h.upstreamMessages() {
		if up.Header.Get("Authorization") != "" || up.Header.Get("X-Api-Key") != upstreamKey {
			t.Errorf("request %d: the developer's token reached the upstream, or the tenant's key did not", i)
		}
	}
	var allowed int
	for _, a := range h.audits(t) {
		if a["endUser"] != "dev-alice" {
			t.Errorf("audit record without the developer: %v", a)
		}
		if a["decision"] == "allow" {
			allowed++
		}
	}
	if allowed != 3 {
		t.Errorf("%d allowed requests audited, want the three Haiku runs'", allowed)
	}
}
