package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRecordIsOneJSONLine(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf)
	r := &Record{Time: time.Unix(0, 0), Policy: "ns/p", Workload: "w", Method: "POST", Path: "/v1/messages", Decision: DecisionDeny,
		Status: 403, Model: "bad\"model\n\x01\xff\u2028", Rule: "models.allow", Reason: `model "x" is not allowed`, Latency: 1500 * time.Microsecond,
		UpstreamRequestID: "req_1", InputTokens: 10, OutputTokens: 20, ClientAborted: true}
	l.Write(context.Background(), r)
	l.Close()
	line := buf.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("want exactly one line, got %q", line)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, line)
	}
	want := map[string]any{"log": "audit", "msg": "Claude API request", "level": "INFO", "policy": "ns/p", "status": 403.0, "latencyMs": 1.5,
		"model": "bad\"model\n\x01\ufffd\u2028", "rule": "models.allow", "inputTokens": 10.0, "outputTokens": 20.0, "clientAborted": true,
		"requestTime": "1970-01-01T00:00:00Z", "upstreamRequestId": "req_1", "decision": "deny"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	if _, ok := m["endUser"]; ok {
		t.Errorf("empty endUser must be omitted")
	}
}

func TestNilLoggerWritesNothing(t *testing.T) {
	var l *Logger
	l.Write(context.Background(), &Record{})
	l.Flush()
	l.Close()
}

func BenchmarkWrite(b *testing.B) {
	l := New(&bytes.Buffer{})
	defer l.Close()
	r := &Record{Time: time.Now(), Policy: "ns/p", ConfigHash: "0123456789abcdef", Workload: "w", Namespace: "ns", Method: "POST", Path: "/v1/messages",
		Decision: DecisionAllow, Status: 200, Model: "claude-haiku-4-5", Latency: time.Millisecond, UpstreamRequestID: "req_1", InputTokens: 10, OutputTokens: 20}
	b.ReportAllocs()
	for b.Loop() {
		l.Write(context.Background(), r)
	}
}

type brokenWriter struct{}

func (brokenWriter) Write([]byte) (int, error) { return 0, errors.New("stdout closed") }

func TestFailedWritesAreCounted(t *testing.T) {
	l := New(brokenWriter{})
	defer l.Close()
	rec := &Record{Time: time.Now(), Decision: DecisionAllow, Status: 200}
	l.Write(context.Background(), rec) // buffered
	l.Flush()                          // fails: the writer's error sticks
	if got := l.Failed(); got != 0 {
		t.Fatalf("Failed() = %d before any record was refused", got)
	}
	l.Write(context.Background(), rec)
	l.Write(context.Background(), rec)
	if got := l.Failed(); got != 2 {
		t.Fatalf("Failed() = %d, want 2", got)
	}
	var nilLogger *Logger
	if nilLogger.Failed() != 0 {
		t.Fatal("a nil Logger reports failures")
	}
}
