// Package fakeupstream is a faithful fake of the Anthropic API for tests and benchmarks: Messages as JSON
// and as SSE (every documented event type, plus one unknown type that clients must ignore), ping events,
// count_tokens, the models list and get, the API's checks on max_tokens and the thinking budget
// (validate.go), a conversational assistant for real agents (assistant.go), request-id and rate-limit headers, and the error cases a proxy
// must pass through unchanged (429 with retry-after, 529, 401, an error event in the middle of a stream,
// slow streams).
//
// A request chooses its scenario with the X-Fake-Scenario header (see the Scenario constants); the
// header reaches the fake through the proxy like any other header.
package fakeupstream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Scenario header and values.
const (
	ScenarioHeader = "X-Fake-Scenario"

	ScenarioOK             = ""
	ScenarioRateLimited    = "rate_limited"    // 429 rate_limit_error, retry-after: 7
	ScenarioOverloaded     = "overloaded"      // 529 overloaded_error
	ScenarioMidStreamError = "midstream_error" // SSE that stops with an error event
	ScenarioSlow           = "slow"            // SSE with DelayHeader between events
	ScenarioBadRequest     = "bad_request"     // 400 invalid_request_error

	// DelayHeader sets the pause between SSE events (a Go duration) for ScenarioSlow. EventsHeader sets
	// how many text deltas a stream sends (default 3).
	DelayHeader  = "X-Fake-Delay"
	EventsHeader = "X-Fake-Events"
	// AnswerDelayHeader delays a non-streaming Messages answer (a Go duration), as a long generation
	// does; the fake gives up when the caller leaves.
	AnswerDelayHeader = "X-Fake-Answer-Delay"
)

// APIVersions are the anthropic-version values the fake accepts, as the API does: the original one,
// which older SDKs and Claude Code send, and the one the newest SDKs send.
var APIVersions = map[string]bool{"2023-06-01": true, "2026-10-21": true}

// Recorded is what the fake saw of one request.
type Recorded struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
}

// Server is the fake API. Create it with New and serve it with httptest or an http.Server.
type Server struct {
	// Keys are the API keys it accepts; any other x-api-key gets a 401.
	keys map[string]bool
	// Record keeps every request when true (tests); benchmarks leave it off.
	Record bool

	// Cancelled counts streams the fake saw the client (or proxy) abandon.
	Cancelled atomic.Int64

	// TokenTTL is the expires_in of access tokens from the token endpoint (default one hour).
	TokenTTL time.Duration

	mu       sync.Mutex
	recorded []Recorded
	n        atomic.Int64
	// tokens are access tokens the token endpoint issued; like the real API, they are accepted only as
	// bearer tokens sent with the OAuth beta.
	tokens map[string]bool
	// Exchanges counts successful token exchanges.
	Exchanges atomic.Int64
}

// New returns a fake accepting the given keys.
func New(keys ...string) *Server {
	s := &Server{keys: map[string]bool{}, tokens: map[string]bool{}}
	for _, k := range keys {
		s.keys[k] = true
	}
	return s
}

// SetKeys replaces the accepted keys (to simulate a rotation).
func (s *Server) SetKeys(keys ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = map[string]bool{}
	for _, k := range keys {
		s.keys[k] = true
	}
}

// RevokeTokens makes every access token issued so far invalid (the next exchange issues a valid one).
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = map[string]bool{}
}

// Workload identity federation, as the real token endpoint speaks it.
const (
	TokenPath      = "/v1/oauth/token"
	OAuthBeta      = "oauth-2025-04-20"
	FederationBeta = "oidc-federation-2026-04-01"
)

// exchange implements the jwt-bearer grant: a well-formed request with a JWT assertion gets a new
// access token. It checks the request's shape, not the JWT's signature (no trust is configured here).
func (s *Server) exchange(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		GrantType        string `json:"grant_type"`
		Assertion        string `json:"assertion"`
		FederationRuleID string `json:"federation_rule_id"`
		OrganizationID   string `json:"organization_id"`
	}
	switch {
	case r.Method != http.MethodPost:
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "use POST")
	case !hasBeta(r.Header, FederationBeta):
		writeError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-beta: "+FederationBeta+" is required")
	case json.Unmarshal(body, &req) != nil:
		writeError(w, http.StatusBadRequest, "invalid_request_error", "body must be JSON")
	case req.GrantType != "urn:ietf:params:oauth:grant-type:jwt-bearer":
		writeError(w, http.StatusBadRequest, "invalid_request_error", "unsupported grant_type")
	case strings.Count(req.Assertion, ".") != 2 || req.FederationRuleID == "" || req.OrganizationID == "":
		writeError(w, http.StatusUnauthorized, "authentication_error", "invalid assertion, federation_rule_id or organization_id")
	default:
		ttl := s.TokenTTL
		if ttl == 0 {
			ttl = time.Hour
		}
		tok := fmt.Sprintf("sk-ant-oat-fake-%06d", s.Exchanges.Add(1))
		s.mu.Lock()
		s.tokens[tok] = true
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(ttl / time.Second)})
	}
}

func hasBeta(h http.Header, beta string) bool {
	for _, v := range h.Values("Anthropic-Beta") {
		for _, b := range strings.Split(v, ",") {
			if strings.TrimSpace(b) == beta {
				return true
			}
		}
	}
	return false
}

// Requests returns what was recorded so far.
func (s *Server) Requests() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Recorded(nil), s.recorded...)
}

// Usage is what the fake bills for a request: deterministic so tests can compare.
func Usage(body []byte, maxTokens int64) (in, out, cacheWrite, cacheRead int64) {
	in = int64(len(body))/8 + 1
	out = min(maxTokens, 12)
	return in, out, 3, 5
}

// Text is the assistant text the fake returns (JSON) and streams (as deltas).
func Text(deltas int) []string {
	parts := make([]string, deltas)
	for i := range parts {
		parts[i] = fmt.Sprintf("chunk %d \"quoted\" é\n", i)
	}
	return parts
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := s.n.Add(1)
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		return
	}
	if s.Record {
		s.mu.Lock()
		s.recorded = append(s.recorded, Recorded{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
		s.mu.Unlock()
	}
	h := w.Header()
	h.Set("request-id", fmt.Sprintf("req_fake_%06d", id))
	h.Set("anthropic-organization-id", "org-fake")
	if r.URL.Path == TokenPath {
		s.exchange(w, r, body)
		return
	}
	// Like the real API, accept the key as x-api-key or as a bearer token (newer SDKs send the latter).
	key := r.Header.Get("x-api-key")
	bearer := false
	if key == "" {
		key, bearer = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	s.mu.Lock()
	ok := s.keys[key] || (bearer && s.tokens[key] && hasBeta(r.Header, OAuthBeta))
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
		return
	}
	switch v := r.Header.Get("anthropic-version"); {
	case v == "":
		writeError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required")
		return
	case !APIVersions[v]:
		writeError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: "+strings.ToValidUTF8(v, "?")+" is not a valid version")
		return
	}
	switch r.Header.Get(ScenarioHeader) {
	case ScenarioRateLimited:
		h.Set("retry-after", "7")
		h.Set("anthropic-ratelimit-requests-remaining", "0")
		writeError(w, http.StatusTooManyRequests, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit")
		return
	case ScenarioOverloaded:
		writeError(w, 529, "overloaded_error", "Overloaded")
		return
	case ScenarioBadRequest:
		writeError(w, http.StatusBadRequest, "invalid_request_error", "messages: field required")
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/messages":
		s.messages(w, r, body, id)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/messages/count_tokens":
		in, _, _, _ := Usage(body, 0)
		writeJSON(w, http.StatusOK, map[string]any{"input_tokens": in})
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		listModels(w, r)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/models/"):
		getModel(w, strings.TrimPrefix(r.URL.Path, "/v1/models/"))
	default:
		writeError(w, http.StatusNotFound, "not_found_error", "Not found")
	}
}

func (s *Server) messages(w http.ResponseWriter, r *http.Request, body []byte, id int64) {
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid request body")
		return
	}
	if msg := req.validate(); msg != "" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", msg)
		return
	}
	m := message{id: fmt.Sprintf("msg_fake_%06d", id), model: req.Model, deltas: 3}
	m.in, m.out, m.cacheWrite, m.cacheRead = Usage(body, req.MaxTokens)
	if r.Header.Get(ScenarioHeader) == ScenarioAssistant {
		s.assistant(r.Context(), w, &req, m)
		return
	}
	if v, err := strconv.Atoi(r.Header.Get(EventsHeader)); err == nil && v >= 0 {
		m.deltas = v
	}
	if !req.Stream {
		if d, err := time.ParseDuration(r.Header.Get(AnswerDelayHeader)); err == nil {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				s.Cancelled.Add(1)
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"id": m.id, "type": "message", "role": "assistant", "model": m.model,
			"content":     []any{map[string]any{"type": "text", "text": strings.Join(Text(m.deltas), "")}},
			"stop_reason": "end_turn", "stop_sequence": nil,
			"usage":                  m.usage(m.out),
			"x_unknown_future_field": map[string]any{"kept": true},
		})
		return
	}
	var delay time.Duration
	if r.Header.Get(ScenarioHeader) == ScenarioSlow {
		delay, _ = time.ParseDuration(r.Header.Get(DelayHeader))
	}
	if !stream(r.Context(), w, delay, m.events(r.Header.Get(ScenarioHeader) == ScenarioMidStreamError)) && r.Context().Err() != nil {
		s.Cancelled.Add(1)
	}
}

// message is one fake completion.
type message struct {
	id, model                      string
	deltas                         int
	in, out, cacheWrite, cacheRead int64
}

func (m message) usage(out int64) map[string]any {
	return map[string]any{"input_tokens": m.in, "output_tokens": out, "cache_creation_input_tokens": m.cacheWrite, "cache_read_input_tokens": m.cacheRead}
}

// sseEvent is one server-sent event: its name and its JSON data.
type sseEvent struct {
	name string
	data map[string]any
}

func event(data map[string]any) sseEvent { return sseEvent{name: data["type"].(string), data: data} }

func blockStart(i int, block map[string]any) sseEvent {
	return event(map[string]any{"type": "content_block_start", "index": i, "content_block": block})
}

func blockDelta(i int, delta map[string]any) sseEvent {
	return event(map[string]any{"type": "content_block_delta", "index": i, "delta": delta})
}

func blockStop(i int) sseEvent {
	return event(map[string]any{"type": "content_block_stop", "index": i})
}

var ping = event(map[string]any{"type": "ping"})

// events is the stream of a completion with every block type a client meets: thinking (with its
// signature), text (with a citation), a tool call streamed as partial JSON, cumulative usage, and an
// event type from the future; or, with midStreamError, an overloaded error after the text.
func (m message) events(midStreamError bool) []sseEvent {
	evs := []sseEvent{
		event(map[string]any{"type": "message_start", "message": map[string]any{
			"id": m.id, "type": "message", "role": "assistant", "model": m.model, "content": []any{},
			"stop_reason": nil, "stop_sequence": nil, "usage": m.usage(1)}}),
		ping,
		blockStart(0, map[string]any{"type": "thinking", "thinking": "", "signature": ""}),
		blockDelta(0, map[string]any{"type": "thinking_delta", "thinking": "Let me think."}),
		blockDelta(0, map[string]any{"type": "signature_delta", "signature": "c2lnbmF0dXJl"}),
		blockStop(0),
		blockStart(1, map[string]any{"type": "text", "text": ""}),
	}
	for i, t := range Text(m.deltas) {
		evs = append(evs, blockDelta(1, map[string]any{"type": "text_delta", "text": t}))
		if i == 0 {
			evs = append(evs,
				blockDelta(1, map[string]any{"type": "citations_delta", "citation": map[string]any{"type": "char_location",
					"cited_text": "chunk", "document_index": 0, "document_title": "Fake document", "start_char_index": 0, "end_char_index": 5}}),
				// An event type from the future: clients and proxies must pass it and ignore it.
				event(map[string]any{"type": "x_future_event", "detail": "ignore me"}),
				ping)
		}
	}
	if midStreamError {
		return append(evs, event(map[string]any{"type": "error", "error": map[string]any{"type": "overloaded_error", "message": "Overloaded"}}))
	}
	return append(evs,
		blockStop(1),
		// A tool_use block streamed as input_json_delta.
		blockStart(2, map[string]any{"type": "tool_use", "id": "toolu_fake", "name": "get_weather", "input": map[string]any{}}),
		blockDelta(2, map[string]any{"type": "input_json_delta", "partial_json": `{"city": "Par`}),
		blockDelta(2, map[string]any{"type": "input_json_delta", "partial_json": `is"}`}),
		blockStop(2),
		// message_delta usage is cumulative: the first is a running total, the second the final one.
		event(map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": nil, "stop_sequence": nil},
			"usage": map[string]any{"output_tokens": max(m.out-1, 1)}}),
		event(map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "tool_use", "stop_sequence": nil},
			"usage": map[string]any{"output_tokens": m.out}}),
		event(map[string]any{"type": "message_stop"}),
	)
}

// stream writes the events, each flushed, delay apart; false when the client went away or a write
// failed.
func stream(ctx context.Context, w http.ResponseWriter, delay time.Duration, evs []sseEvent) bool {
	h := w.Header()
	h.Set("content-type", "text/event-stream; charset=utf-8")
	h.Set("cache-control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	for _, ev := range evs {
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return false
			}
		}
		b, _ := json.Marshal(ev.data)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.name, b); err != nil {
			return false
		}
		if fl != nil {
			fl.Flush()
		}
		if ctx.Err() != nil {
			return false
		}
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		// Only maps of plain values are encoded here: a failure is a bug in the fake.
		panic(fmt.Sprintf("fakeupstream: failed to encode a response: %v", err))
	}
	w.Header().Set("content-type", "application/json")
	w.Header().Set("content-length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes()) // the client hung up: a test client notices by itself
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}, "request_id": w.Header().Get("request-id")})
}
