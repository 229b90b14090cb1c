package proxy_test

import (
	"fmt"
	"testing"
)

// TestSessions: the session id comes from X-Claude-Code-Session-Id, else from metadata.user_id (Claude
// Code's JSON form or the older "_session_" suffix); it is audited and keys Session limits, counted per
// workload. A malformed header is refused, naming it.
func TestSessions(t *testing.T) {
	e := newEnv(t, `
limits:
  rules:
  - {name: per-session, key: Session, window: Hour, tokens: 25, tokenType: Output}
`)
	body := func(metadata string) string {
		return fmt.Sprintf(`{"model":"claude-haiku-4-5","max_tokens":10,%s"messages":[{"role":"user","content":"hi"}]}`, metadata)
	}
	cases := []struct {
		name    string
		header  map[string]string
		body    string
		status  int
		session string // audited
	}{
		{name: "header", header: map[string]string{"X-Claude-Code-Session-Id": "s-1"}, body: body(""), status: 200, session: "s-1"},
		{name: "header again", header: map[string]string{"X-Claude-Code-Session-Id": "s-1"}, body: body(""), status: 200, session: "s-1"},
		{name: "the session's cap", header: map[string]string{"X-Claude-Code-Session-Id": "s-1"}, body: body(""), status: 429, session: "s-1"},
		{name: "another session is not capped", header: map[string]string{"X-Claude-Code-Session-Id": "s-2"}, body: body(""), status: 200, session: "s-2"},
		{name: "metadata JSON", body: body(`"metadata":{"user_id":"{\"device_id\":\"d\",\"account_uuid\":\"\",\"session_id\":\"s-3\"}"},`), status: 200, session: "s-3"},
		{name: "metadata JSON counts with the header form", header: map[string]string{"X-Claude-Code-Session-Id": "s-3"}, body: body(""), status: 200, session: "s-3"},
		{name: "capped whichever way it is sent", body: body(`"metadata":{"user_id":"user_abc_account_x_session_s-3"},`), status: 429, session: "s-3"},
		{name: "the header wins over metadata", header: map[string]string{"X-Claude-Code-Session-Id": "s-4"}, body: body(`"metadata":{"user_id":"{\"session_id\":\"s-1\"}"},`), status: 200, session: "s-4"},
		{name: "metadata without a session", body: body(`"metadata":{"user_id":"user-42"},`), status: 200},
		{name: "malformed header", header: map[string]string{"X-Claude-Code-Session-Id": "s 1;drop"}, body: body(""), status: 400},
		{name: "malformed session in metadata is ignored", body: body(`"metadata":{"user_id":"{\"session_id\":\"a b\"}"},`), status: 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, b := post(t, e, c.body, c.header)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, b)
			}
			recs := e.audit.records(t)
			got, _ := recs[len(recs)-1]["session"].(string)
			if got != c.session {
				t.Fatalf("audited session %q, want %q", got, c.session)
			}
		})
	}
}
