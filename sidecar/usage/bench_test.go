package usage

import (
	"strings"
	"testing"
)

// BenchmarkStream reads the usage of a whole short stream (message_start, deltas, message_stop), as
// the proxy does for every streamed response.
func BenchmarkStream(b *testing.B) {
	p := []byte(stream)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		var s Stream
		_, _ = s.Write(p)
		if !s.Complete || s.Usage.OutputTokens != 15 {
			b.Fatalf("usage %+v", s.Usage)
		}
	}
}

// BenchmarkFromJSON reads the usage of a 2 KB non-streaming response.
func BenchmarkFromJSON(b *testing.B) {
	body := []byte(`{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"` +
		strings.Repeat(`a line of \"generated\" text\n`, 64) + `"}],"stop_reason":"end_turn",` +
		`"usage":{"input_tokens":10,"output_tokens":20,"cache_creation_input_tokens":3,"cache_read_input_tokens":4,` +
		`"cache_creation":{"ephemeral_5m_input_tokens":3,"ephemeral_1h_input_tokens":0},"service_tier":"standard"}}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if u, ok := FromJSON(body); !ok || u.OutputTokens != 20 {
			b.Fatalf("usage %+v, %v", u, ok)
		}
	}
}
