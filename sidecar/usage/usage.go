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

// partial is usage as sent: a count that was absent must not overwrite what is known.
type partial struct {
	input, output, cacheCreation, cacheRead count
	cache5m, cache1h, webSearch             count
	tier                                    string
}

// count is one token count as sent; ok is false when it was absent, repeated or not an integer.
type count struct {
	n        int64
	ok, seen bool
}

func (u *Usage) merge(p *partial) {
	set := func(dst *int64, c count) {
		if c.ok && c.n >= 0 {
			*dst = c.n
		}
	}
	set(&u.InputTokens, p.input)
	set(&u.OutputTokens, p.output)
	set(&u.CacheCreationInputTokens, p.cacheCreation)
	set(&u.CacheReadInputTokens, p.cacheRead)
	set(&u.CacheCreation5m, p.cache5m)
	set(&u.CacheCreation1h, p.cache1h)
	set(&u.WebSearchRequests, p.webSearch)
	switch p.tier {
	case "standard", "priority", "batch":
		u.ServiceTier = p.tier
	}
}

// readUsage reads a usage object in one pass of the scanner. ok is false when obj is not a JSON object
// or repeats one of the four main counts: a response that says two things about what it cost is not
// believed. A nested count of an unexpected shape (not an integer, repeated) loses only itself.
func readUsage(obj []byte) (p partial, ok bool) {
	ok = true
	err := bodyscan.Members(obj, func(k, v []byte) {
		switch string(k) {
		case "input_tokens":
			ok = setCount(&p.input, v) && ok
		case "output_tokens":
			ok = setCount(&p.output, v) && ok
		case "cache_creation_input_tokens":
			ok = setCount(&p.cacheCreation, v) && ok
		case "cache_read_input_tokens":
			ok = setCount(&p.cacheRead, v) && ok
		case "cache_creation":
			nestedCount(v, "ephemeral_5m_input_tokens", &p.cache5m)
			nestedCount(v, "ephemeral_1h_input_tokens", &p.cache1h)
		case "server_tool_use":
			nestedCount(v, "web_search_requests", &p.webSearch)
		case "service_tier":
			p.tier, _ = stringValue(v)
		}
	})
	return p, ok && err == nil
}

// setCount reads v into c; false when c was already seen (a repeated key).
func setCount(c *count, v []byte) bool {
	if c.seen {
		*c = count{seen: true}
		return false
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	*c = count{n: n, ok: err == nil, seen: true}
	return true
}

// nestedCount reads the count at key of the object v, when v is one. A repeated key loses the count.
func nestedCount(v []byte, key string, dst *count) {
	if len(v) == 0 || v[0] != '{' {
		return
	}
	_ = bodyscan.Members(v, func(k, val []byte) { // v was validated with its parent
		if string(k) == key {
			setCount(dst, val)
		}
	})
}

// stringValue decodes a JSON string value; false for any other value.
func stringValue(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1]), true
	}
	var s string
	return s, json.Unmarshal(v, &s) == nil
}

// FromJSON reads the top-level "usage" of a JSON response body. ok is false when the body carries no
// usage (count_tokens, models, errors) or is not valid JSON. The generated content around the usage is
// scanned once and never decoded.
func FromJSON(body []byte) (u Usage, ok bool) {
	var obj []byte
	seen := 0
	if err := bodyscan.Members(body, func(k, v []byte) {
		if string(k) == "usage" {
			obj, seen = v, seen+1
		}
	}); err != nil || seen != 1 {
		return u, false
	}
	p, ok := readUsage(obj)
	if !ok {
		return u, false
	}
	u.merge(&p)
	return u, true
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

// data reads the events that carry usage or an error; the rest of the event is scanned, not decoded.
func (s *Stream) data(d []byte) {
	var typ, message, usage, errObj []byte
	if bodyscan.Members(d, func(k, v []byte) {
		switch string(k) {
		case "type":
			typ = v
		case "message":
			message = v
		case "usage":
			usage = v
		case "error":
			errObj = v
		}
	}) != nil {
		return
	}
	t, _ := stringValue(typ)
	switch t {
	case "message_start":
		usage = member(message, "usage")
		fallthrough
	case "message_delta":
		if p, ok := readUsage(usage); ok {
			s.Usage.merge(&p)
			s.Seen = true
		}
	case "error":
		if et, ok := stringValue(member(errObj, "type")); ok {
			s.ErrorType = et
		}
	}
}

// member is the value of key in the JSON object obj (the last, as encoding/json reads a repeated key);
// nil when obj is not an object or has no such key.
func member(obj []byte, key string) (value []byte) {
	if len(obj) == 0 || obj[0] != '{' {
		return nil
	}
	_ = bodyscan.Members(obj, func(k, v []byte) { // obj was validated with its parent
		if string(k) == key {
			value = v
		}
	})
	return value
}
