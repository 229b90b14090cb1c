// Package usage reads token usage from Messages API responses: the "usage" object of a JSON response,
// or the message_start and message_delta events of an SSE stream.
//
// In a stream, message_start carries the input and cache counts and message_delta carries usage that is
// cumulative for the whole message: each count it contains replaces the previous one. Adding deltas is
// the classic way to double-count a stream, so nothing here ever adds.
package usage

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/claude-guard/claude-guard/sidecar/bodyscan"
)

// Usage is the token usage of one response.
type Usage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	// CacheCreation5m and CacheCreation1h split CacheCreationInputTokens by cache lifetime
	// (usage.cache_creation.ephemeral_5m_input_tokens and ephemeral_1h_input_tokens), which are priced
	// differently.
	CacheCreation5m int64 `json:"cache_creation_5m"`
	CacheCreation1h int64 `json:"cache_creation_1h"`
	// WebSearchRequests is usage.server_tool_use.web_search_requests, billed per use.
	WebSearchRequests int64 `json:"web_search_requests"`
	// ServiceTier is usage.service_tier: "standard", "priority" or "batch", which are priced
	// differently; empty when absent or any other value.
	ServiceTier string `json:"service_tier,omitempty"`
}

// TotalInput is every input token the model processed: fresh, cache writes and cache reads.
func (u Usage) TotalInput() int64 {
	return u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
}

// Total is TotalInput plus output.
func (u Usage) Total() int64 { return u.TotalInput() + u.OutputTokens }

// partial is usage as sent: a nil field was absent and must not overwrite what is known.
type partial struct {
	InputTokens              *int64 `json:"input_tokens"`
	OutputTokens             *int64 `json:"output_tokens"`
	CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
	CacheCreation            *struct {
		Ephemeral5m *int64 `json:"ephemeral_5m_input_tokens"`
		Ephemeral1h *int64 `json:"ephemeral_1h_input_tokens"`
	} `json:"cache_creation"`
	ServerToolUse *struct {
		WebSearchRequests *int64 `json:"web_search_requests"`
	} `json:"server_tool_use"`
	ServiceTier *string `json:"service_tier"`
}

func (u *Usage) merge(p *partial) {
	if p == nil {
		return
	}
	set := func(dst *int64, v *int64) {
		if v != nil && *v >= 0 {
			*dst = *v
		}
	}
	set(&u.InputTokens, p.InputTokens)
	set(&u.OutputTokens, p.OutputTokens)
	set(&u.CacheCreationInputTokens, p.CacheCreationInputTokens)
	set(&u.CacheReadInputTokens, p.CacheReadInputTokens)
	if c := p.CacheCreation; c != nil {
		set(&u.CacheCreation5m, c.Ephemeral5m)
		set(&u.CacheCreation1h, c.Ephemeral1h)
	}
	if st := p.ServerToolUse; st != nil {
		set(&u.WebSearchRequests, st.WebSearchRequests)
	}
	if t := p.ServiceTier; t != nil {
		switch *t {
		case "standard", "priority", "batch":
			u.ServiceTier = *t
		}
	}
}

// FromJSON reads the top-level "usage" of a JSON response body. ok is false when the body carries no
// usage (count_tokens, models, errors) or is not valid JSON.
func FromJSON(body []byte) (u Usage, ok bool) {
	// Find the top-level "usage" with the one-pass scanner and decode only that small object: the
	// generated content around it is never decoded.
	sp, found, err := bodyscan.TopLevel(body, "usage")
	if err != nil || !found {
		return u, false
	}
	obj := body[sp.Start:sp.End]
	var p partial
	for _, f := range []struct {
		key string
		dst **int64
	}{
		{"input_tokens", &p.InputTokens},
		{"output_tokens", &p.OutputTokens},
		{"cache_creation_input_tokens", &p.CacheCreationInputTokens},
		{"cache_read_input_tokens", &p.CacheReadInputTokens},
	} {
		if !intAt(obj, f.key, f.dst) {
			return u, false
		}
	}
	u.merge(&p)
	// The nested counts, each read on its own so that one of an unexpected shape loses only itself.
	for _, f := range []struct {
		obj, key string
		dst      *int64
	}{
		{"cache_creation", "ephemeral_5m_input_tokens", &u.CacheCreation5m},
		{"cache_creation", "ephemeral_1h_input_tokens", &u.CacheCreation1h},
		{"server_tool_use", "web_search_requests", &u.WebSearchRequests},
	} {
		if vs, ok, err := bodyscan.TopLevel(obj, f.obj); err == nil && ok && obj[vs.Start] == '{' {
			var n *int64
			if intAt(obj[vs.Start:vs.End], f.key, &n) && n != nil && *n >= 0 {
				*f.dst = *n
			}
		}
	}
	if vs, ok, err := bodyscan.TopLevel(obj, "service_tier"); err == nil && ok {
		var tier string
		if json.Unmarshal(obj[vs.Start:vs.End], &tier) == nil {
			u.merge(&partial{ServiceTier: &tier})
		}
	}
	return u, true
}

// intAt reads the integer at key of the JSON object obj into *dst (left nil when absent or not an
// integer); false when obj cannot be read.
func intAt(obj []byte, key string, dst **int64) bool {
	vs, ok, err := bodyscan.TopLevel(obj, key)
	if err != nil {
		return false
	}
	if ok {
		if n, err := strconv.ParseInt(string(obj[vs.Start:vs.End]), 10, 64); err == nil {
			*dst = &n
		}
	}
	return true
}

// Stream follows an SSE byte stream, written to it as it arrives in chunks of any size, and keeps the
// usage and the error type it reports. It holds at most one interesting event's data line in memory:
// content deltas are skipped without being buffered.
type Stream struct {
	Usage Usage
	// Seen is true once message_start or message_delta carried usage.
	Seen bool
	// ErrorType is the error.type of an in-stream error event, if any.
	ErrorType string
	// Complete is set by message_stop: the usage is final. A stream cut before it (the client left,
	// the upstream broke off) reports only what message_start said, while the API bills what it
	// generated.
	Complete bool
	// DeltaBytes counts the bytes of content_block_delta data lines: what was streamed, from which an
	// incomplete stream's output is estimated (EstimateOutput).
	DeltaBytes int64

	line       []byte
	event      []byte
	classified bool // the current line's first bytes were looked at
	discard    bool // skipping the rest of an uninteresting line
}

// maxLine bounds how much of one kept data line is buffered.
const maxLine = 1 << 20

// Write consumes a chunk of the stream. It never fails.
func (s *Stream) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !s.discard && !s.classified {
			// Classify from the first bytes before buffering the rest of the line.
			k := min(len(chunk), classifyLen-len(s.line))
			s.line = append(s.line, chunk[:k]...)
			chunk = chunk[k:]
			if len(s.line) >= classifyLen {
				s.classified = true
				s.discard = !s.interesting()
			}
		}
		switch {
		case s.discard:
			s.countDelta(len(chunk))
		case len(s.line)+len(chunk) > maxLine:
			s.discard = true
		default:
			s.line = append(s.line, chunk...)
		}
		if i < 0 {
			return n, nil
		}
		p = p[i+1:]
		if !s.discard {
			s.endLine(bytes.TrimSuffix(s.line, []byte{'\r'}))
		}
		s.line, s.discard, s.classified = s.line[:0], false, false
	}
	return n, nil
}

// countDelta adds n bytes of a skipped line to DeltaBytes when the line belongs to a content delta.
func (s *Stream) countDelta(n int) {
	if string(s.event) == "content_block_delta" {
		s.DeltaBytes += int64(n)
	}
}

// EstimateOutput is the output of an incomplete stream: the larger of what it reported and about one
// token per four streamed bytes (JSON framing included, so it errs high, as a budget should).
func (s *Stream) EstimateOutput() int64 {
	return max(s.Usage.OutputTokens, (s.DeltaBytes+3)/4)
}

// classifyLen is how many bytes of a line tell whether it can matter ("event:" or "data: ").
const classifyLen = 6

// interesting reports whether the line being read is worth keeping.
func (s *Stream) interesting() bool {
	l := s.line
	if bytes.HasPrefix(l, []byte("event:")) {
		return true
	}
	if bytes.HasPrefix(l, []byte("data:")) {
		switch string(s.event) {
		case "message_start", "message_delta", "error", "":
			return true
		}
	}
	return false
}

func (s *Stream) endLine(l []byte) {
	switch {
	case len(l) == 0:
		s.event = s.event[:0]
	case bytes.HasPrefix(l, []byte("event:")):
		s.event = append(s.event[:0], bytes.TrimSpace(l[len("event:"):])...)
		if string(s.event) == "message_stop" {
			s.Complete = true
		}
	case bytes.HasPrefix(l, []byte("data:")):
		s.data(bytes.TrimSpace(l[len("data:"):]))
	}
}

func (s *Stream) data(d []byte) {
	var ev struct {
		Type    string `json:"type"`
		Message *struct {
			Usage *partial `json:"usage"`
		} `json:"message"`
		Usage *partial `json:"usage"`
		Error *struct {
			Type string `json:"type"`
		} `json:"error"`
	}
	if json.Unmarshal(d, &ev) != nil {
		return
	}
	switch ev.Type {
	case "message_start":
		if ev.Message != nil && ev.Message.Usage != nil {
			s.Usage.merge(ev.Message.Usage)
			s.Seen = true
		}
	case "message_delta":
		if ev.Usage != nil {
			s.Usage.merge(ev.Usage)
			s.Seen = true
		}
	case "error":
		if ev.Error != nil {
			s.ErrorType = ev.Error.Type
		}
	}
}
