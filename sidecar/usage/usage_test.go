package usage

import (
	"strings"
	"testing"
)

func TestFromJSON(t *testing.T) {
	cases := []struct {
		name   string
		body   string
		want   Usage
		wantOK bool
	}{
		{"message", `{"id":"msg_1","usage":{"input_tokens":10,"output_tokens":20,"cache_creation_input_tokens":3,"cache_read_input_tokens":4}}`,
			Usage{InputTokens: 10, OutputTokens: 20, CacheCreationInputTokens: 3, CacheReadInputTokens: 4}, true},
		{"cache lifetimes and server tools", `{"usage":{"input_tokens":10,"output_tokens":20,"cache_creation_input_tokens":30,` +
			`"cache_creation":{"ephemeral_5m_input_tokens":10,"ephemeral_1h_input_tokens":20},"server_tool_use":{"web_search_requests":3},"service_tier":"standard"}}`,
			Usage{InputTokens: 10, OutputTokens: 20, CacheCreationInputTokens: 30, CacheCreation5m: 10, CacheCreation1h: 20, WebSearchRequests: 3, ServiceTier: "standard"}, true},
		{"batch tier", `{"usage":{"input_tokens":1,"service_tier":"batch"}}`, Usage{InputTokens: 1, ServiceTier: "batch"}, true},
		{"an unknown tier is dropped, not recorded", `{"usage":{"input_tokens":1,"service_tier":"<script>"}}`, Usage{InputTokens: 1}, true},
		{"a nested count of an odd shape loses only itself", `{"usage":{"input_tokens":10,"cache_creation":{"ephemeral_5m_input_tokens":"x","ephemeral_1h_input_tokens":7},"server_tool_use":null}}`,
			Usage{InputTokens: 10, CacheCreation1h: 7}, true},
		{"nulls are absent", `{"usage":{"input_tokens":10,"output_tokens":2,"cache_creation_input_tokens":null}}`, Usage{InputTokens: 10, OutputTokens: 2}, true},
		{"a repeated count is not believed", `{"usage":{"input_tokens":10,"input_tokens":1}}`, Usage{}, false},
		{"a repeated usage is not believed", `{"usage":{"input_tokens":1},"usage":{"input_tokens":2}}`, Usage{}, false},
		{"a repeated nested count loses only itself", `{"usage":{"input_tokens":3,"cache_creation":{"ephemeral_5m_input_tokens":1,"ephemeral_5m_input_tokens":2,"ephemeral_1h_input_tokens":4}}}`,
			Usage{InputTokens: 3, CacheCreation1h: 4}, true},
		{"an escaped tier", `{"usage":{"service_tier":"b\u0061tch"}}`, Usage{ServiceTier: "batch"}, true},
		{"no usage", `{"input_tokens":12}`, Usage{}, false},
		{"error body", `{"type":"error","error":{"type":"overloaded_error","message":"x"}}`, Usage{}, false},
		{"not json", `nope`, Usage{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := FromJSON([]byte(c.body))
			if got != c.want || ok != c.wantOK {
				t.Fatalf("FromJSON = %+v, %v; want %+v, %v", got, ok, c.want, c.wantOK)
			}
		})
	}
}

const stream = "event: message_start\n" +
	`data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"m","usage":{"input_tokens":25,"cache_creation_input_tokens":5,"cache_read_input_tokens":7,"output_tokens":1,"service_tier":"priority"}}}` + "\n\n" +
	"event: ping\ndata: {\"type\": \"ping\"}\n\n" +
	"event: content_block_delta\n" + `data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"` + "usage input_tokens 999999 message_delta" + `"}}` + "\n\n" +
	"event: message_delta\n" + `data: {"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":10}}` + "\n\n" +
	"event: message_delta\n" + `data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15,"input_tokens":26,` +
	`"cache_creation":{"ephemeral_5m_input_tokens":1,"ephemeral_1h_input_tokens":4},"server_tool_use":{"web_search_requests":2}}}` + "\n\n" +
	"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"

// write feeds p to s and checks Write's contract: it consumes everything and never fails.
func write(t *testing.T, s *Stream, p []byte) {
	t.Helper()
	if n, err := s.Write(p); n != len(p) || err != nil {
		t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
	}
}

func TestStreamCumulative(t *testing.T) {
	want := Usage{InputTokens: 26, OutputTokens: 15, CacheCreationInputTokens: 5, CacheReadInputTokens: 7, CacheCreation5m: 1, CacheCreation1h: 4, WebSearchRequests: 2, ServiceTier: "priority"}
	for _, chunk := range []int{1, 2, 3, 7, 64, 1 << 20} {
		for _, crlf := range []bool{false, true} {
			var s Stream
			in := stream
			if crlf {
				in = strings.ReplaceAll(in, "\n", "\r\n")
			}
			for i := 0; i < len(in); i += chunk {
				write(t, &s, []byte(in[i:min(i+chunk, len(in))]))
			}
			if s.Usage != want || !s.Seen {
				t.Fatalf("chunk %d crlf %v: usage %+v, want %+v (never add deltas)", chunk, crlf, s.Usage, want)
			}
		}
	}
}

func TestStreamErrorAndTruncation(t *testing.T) {
	var s Stream
	write(t, &s, []byte(stream[:strings.Index(stream, "event: message_delta")]))
	write(t, &s, []byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"))
	if s.ErrorType != "overloaded_error" {
		t.Errorf("ErrorType = %q", s.ErrorType)
	}
	if want := (Usage{InputTokens: 25, OutputTokens: 1, CacheCreationInputTokens: 5, CacheReadInputTokens: 7, ServiceTier: "priority"}); s.Usage != want {
		t.Errorf("usage after abort = %+v, want what message_start said %+v", s.Usage, want)
	}
}

func TestStreamSkipsHugeDeltas(t *testing.T) {
	var s Stream
	big := "event: content_block_delta\ndata: " + strings.Repeat("x", 3<<20) + "\n\n"
	write(t, &s, []byte(big))
	if cap(s.line) > 64 {
		t.Errorf("buffered %d bytes of an uninteresting event", cap(s.line))
	}
	write(t, &s, []byte(stream))
	if s.Usage.OutputTokens != 15 {
		t.Errorf("usage after big delta = %+v", s.Usage)
	}
}

func FuzzStream(f *testing.F) {
	f.Add([]byte(stream), 5)
	f.Fuzz(func(t *testing.T, data []byte, chunk int) {
		if chunk <= 0 {
			chunk = 1
		}
		var a, b Stream
		write(t, &a, data)
		for i := 0; i < len(data); i += chunk {
			write(t, &b, data[i:min(i+chunk, len(data))])
		}
		if a.Usage != b.Usage || a.ErrorType != b.ErrorType {
			t.Fatalf("chunking changed the result: %+v vs %+v", a, b)
		}
	})
}

// TestStreamCompleteAndDeltaBytes: message_stop marks a stream complete, and the bytes of content
// deltas are counted whatever the chunking, so an incomplete stream's output can be estimated.
func TestStreamCompleteAndDeltaBytes(t *testing.T) {
	delta := `data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"` + strings.Repeat("x", 400) + `"}}`
	head := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n" +
		"event: content_block_delta\n" + delta + "\n\n"
	full := head + "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":90}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	for _, c := range []struct {
		name     string
		stream   string
		complete bool
		estimate int64
	}{
		// The delta line's bytes after "data: ", over four.
		{"complete", full, true, int64(len(delta)-len("data: ")+3) / 4},
		{"cut after a delta", head, false, int64(len(delta)-len("data: ")+3) / 4},
		{"cut before any delta", head[:strings.Index(head, "event: content_block_delta")], false, 1},
	} {
		for size := 1; size <= len(c.stream); size += 37 {
			var s Stream
			for b := []byte(c.stream); len(b) > 0; {
				n := min(size, len(b))
				_, _ = s.Write(b[:n])
				b = b[n:]
			}
			if s.Complete != c.complete || s.EstimateOutput() != c.estimate {
				t.Fatalf("%s in chunks of %d: complete %v, estimate %d (delta bytes %d); want %v, %d", c.name, size, s.Complete, s.EstimateOutput(), s.DeltaBytes, c.complete, c.estimate)
			}
		}
	}
}

// TestStreamEventShapes: what an event's data may look like, read without encoding/json.
func TestStreamEventShapes(t *testing.T) {
	start := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n"
	cases := []struct {
		name, events string
		want         Usage
		errorType    string
	}{
		{"escaped type", "event: message_delta\ndata: {\"type\":\"message\\u005fdelta\",\"usage\":{\"output_tokens\":9}}\n\n",
			Usage{InputTokens: 5, OutputTokens: 9}, ""},
		{"a repeated count is not believed", "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9,\"output_tokens\":2}}\n\n",
			Usage{InputTokens: 5, OutputTokens: 1}, ""},
		{"usage outside message in message_start is not the message's", "event: message_start\ndata: {\"type\":\"message_start\",\"usage\":{\"input_tokens\":70},\"message\":{}}\n\n",
			Usage{InputTokens: 5, OutputTokens: 1}, ""},
		{"an error without its object keeps the error seen before",
			"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\nevent: error\ndata: {\"type\":\"error\"}\n\n",
			Usage{InputTokens: 5, OutputTokens: 1}, "overloaded_error"},
		{"invalid JSON is skipped", "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}\n\n",
			Usage{InputTokens: 5, OutputTokens: 1}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s Stream
			write(t, &s, []byte(start+c.events))
			if s.Usage != c.want || s.ErrorType != c.errorType {
				t.Fatalf("usage %+v, error type %q; want %+v, %q", s.Usage, s.ErrorType, c.want, c.errorType)
			}
		})
	}
}
