package fakeupstream

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// ScenarioAssistant answers like a model in a conversation, so a real agent (Claude Code) can run a
// whole turn through the proxy:
//   - a last user message carrying a tool_result is answered with text that quotes the result
//     ("tool result: …"), ending the turn;
//   - a last user message containing [[tool NAME {json input}]] is answered with a tool_use block for
//     NAME when the request offers that tool (else with text saying it was not offered);
//   - anything else gets AssistantGreeting.
//
// A thinking block comes first when the request turned thinking on. Both JSON and SSE are spoken.
const ScenarioAssistant = "assistant"

// AssistantGreeting is the text of a plain assistant turn.
const AssistantGreeting = "Hello from the fake upstream."

var toolDirective = regexp.MustCompile(`\[\[tool ([A-Za-z0-9_-]+) (\{.*?\})\]\]`)

// block is one content block of a reply.
type block map[string]any

// reply is what the assistant scenario answers: its blocks and why it stopped.
type reply struct {
	blocks []block
	stop   string
}

// contentBlock is the part of a request's content block the assistant reads.
type contentBlock struct {
	Type    string          `json:"type"`
	Text    string          `json:"text"`
	Content json.RawMessage `json:"content"`
}

// assistantReply decides the reply to a request (see ScenarioAssistant).
func assistantReply(req *request) reply {
	var r reply
	if req.thinkingOn() {
		r.blocks = append(r.blocks, block{"type": "thinking", "thinking": "The user wants an answer.", "signature": "c2lnbmF0dXJl"})
	}
	text, results := lastUserMessage(req)
	if len(results) > 0 {
		r.blocks = append(r.blocks, block{"type": "text", "text": "tool result: " + clipText(strings.Join(results, "\n"), 400)})
		r.stop = "end_turn"
		return r
	}
	if m := toolDirective.FindStringSubmatch(text); m != nil {
		var input map[string]any
		offered := false
		for _, t := range req.Tools {
			offered = offered || t.Name == m[1]
		}
		if offered && json.Unmarshal([]byte(m[2]), &input) == nil {
			r.blocks = append(r.blocks, block{"type": "tool_use", "id": "toolu_fake_" + m[1], "name": m[1], "input": input})
			r.stop = "tool_use"
			return r
		}
		r.blocks = append(r.blocks, block{"type": "text", "text": "the tool " + m[1] + " was not offered"})
		r.stop = "end_turn"
		return r
	}
	r.blocks = append(r.blocks, block{"type": "text", "text": AssistantGreeting})
	r.stop = "end_turn"
	return r
}

// lastUserMessage returns the text of the last user message and the texts of its tool results.
func lastUserMessage(req *request) (text string, results []string) {
	for i := len(req.Messages) - 1; i >= 0; i-- {
		m := req.Messages[i]
		if m.Role != "user" {
			continue
		}
		var s string
		if json.Unmarshal(m.Content, &s) == nil {
			return s, nil
		}
		var blocks []contentBlock
		_ = json.Unmarshal(m.Content, &blocks) // a malformed message has no text
		var texts []string
		for _, b := range blocks {
			switch b.Type {
			case "text":
				texts = append(texts, b.Text)
			case "tool_result":
				results = append(results, resultText(b.Content))
			}
		}
		return strings.Join(texts, "\n"), results
	}
	return "", nil
}

// resultText is a tool_result's content: a string or a list of text blocks.
func resultText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var blocks []contentBlock
	_ = json.Unmarshal(raw, &blocks)
	var texts []string
	for _, b := range blocks {
		if b.Type == "text" {
			texts = append(texts, b.Text)
		}
	}
	return strings.Join(texts, "\n")
}

func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// assistant answers one request of ScenarioAssistant.
func (s *Server) assistant(ctx context.Context, w http.ResponseWriter, req *request, m message) {
	rp := assistantReply(req)
	if !req.Stream {
		content := make([]any, len(rp.blocks))
		for i, b := range rp.blocks {
			content[i] = b
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"id": m.id, "type": "message", "role": "assistant", "model": m.model, "content": content,
			"stop_reason": rp.stop, "stop_sequence": nil, "usage": m.usage(m.out),
		})
		return
	}
	if !stream(ctx, w, time.Duration(0), rp.events(m)) && ctx.Err() != nil {
		s.Cancelled.Add(1)
	}
}

// events streams a reply the way the API does: each block started empty, filled by deltas, stopped.
func (rp reply) events(m message) []sseEvent {
	evs := []sseEvent{
		event(map[string]any{"type": "message_start", "message": map[string]any{
			"id": m.id, "type": "message", "role": "assistant", "model": m.model, "content": []any{},
			"stop_reason": nil, "stop_sequence": nil, "usage": m.usage(1)}}),
		ping,
	}
	for i, b := range rp.blocks {
		switch b["type"] {
		case "thinking":
			evs = append(evs, blockStart(i, block{"type": "thinking", "thinking": "", "signature": ""}),
				blockDelta(i, block{"type": "thinking_delta", "thinking": b["thinking"]}),
				blockDelta(i, block{"type": "signature_delta", "signature": b["signature"]}))
		case "text":
			evs = append(evs, blockStart(i, block{"type": "text", "text": ""}),
				blockDelta(i, block{"type": "text_delta", "text": b["text"]}))
		case "tool_use":
			in, _ := json.Marshal(b["input"]) // decoded from JSON, so it encodes
			evs = append(evs, blockStart(i, block{"type": "tool_use", "id": b["id"], "name": b["name"], "input": map[string]any{}}),
				blockDelta(i, block{"type": "input_json_delta", "partial_json": string(in)}))
		}
		evs = append(evs, blockStop(i))
	}
	return append(evs,
		event(map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": rp.stop, "stop_sequence": nil},
			"usage": map[string]any{"output_tokens": m.out}}),
		event(map[string]any{"type": "message_stop"}))
}
