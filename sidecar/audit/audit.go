// Package audit writes one structured JSON record per proxied request. A record describes the call (who,
// which model, what was decided and why, what it cost, how long it took); it never contains the prompt,
// the response, an API key or a bearer token, because the fields that could carry them do not exist.
package audit

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Decisions recorded.
const (
	DecisionAllow      = "allow"
	DecisionDeny       = "deny"
	DecisionShadowDeny = "shadow_deny" // shadow mode: would have been denied, was forwarded
	DecisionError      = "error"       // the proxy could not forward (credential, upstream unreachable)
)

// Record is one audit record.
type Record struct {
	Time              time.Time
	Policy            string
	ConfigHash        string
	Workload          string
	Namespace         string
	EndUser           string
	Method            string
	Path              string
	Model             string
	RequestedModel    string
	Stream            bool
	Decision          string
	Rule              string
	Reason            string
	Status            int
	InputTokens       int64
	OutputTokens      int64
	CacheReadTokens   int64
	CacheWriteTokens  int64
	ClampedFrom       int64
	Latency           time.Duration
	UpstreamLatency   time.Duration
	UpstreamRequestID string
	StreamError       string
	ClientAborted     bool
}

// Logger writes records as JSON lines. Lines are buffered and written at least every FlushInterval
// (and when the buffer fills, and on Close), so a busy proxy does not pay one write system call per
// request. A crash can lose at most the last FlushInterval of records.
type Logger struct {
	l    *slog.Logger
	w    *lineBuffer
	stop chan struct{}
	done chan struct{}
}

// FlushInterval bounds how long a record waits in the buffer.
const FlushInterval = 100 * time.Millisecond

// New returns a logger writing JSON lines to w. Call Close to flush and stop it.
func New(w io.Writer) *Logger {
	lb := &lineBuffer{bw: bufio.NewWriterSize(w, 64<<10)}
	l := &Logger{l: slog.New(slog.NewJSONHandler(lb, nil)), w: lb, stop: make(chan struct{}), done: make(chan struct{})}
	go l.flushLoop()
	return l
}

func (l *Logger) flushLoop() {
	defer close(l.done)
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.Flush()
		case <-l.stop:
			l.Flush()
			return
		}
	}
}

// Flush writes out buffered records now.
func (l *Logger) Flush() {
	if l == nil {
		return
	}
	l.w.mu.Lock()
	l.w.bw.Flush()
	l.w.mu.Unlock()
}

// Close flushes and stops the background flusher.
func (l *Logger) Close() {
	if l == nil {
		return
	}
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

// lineBuffer keeps each record in one write: when a line does not fit, the buffer is flushed first,
// so lines of other writers to the same file (the operational log) never land inside a record.
type lineBuffer struct {
	mu sync.Mutex
	bw *bufio.Writer
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(p) > b.bw.Available() && b.bw.Buffered() > 0 {
		if err := b.bw.Flush(); err != nil {
			return 0, err
		}
	}
	return b.bw.Write(p)
}

// Write records r. A nil Logger writes nothing.
func (l *Logger) Write(ctx context.Context, r *Record) {
	if l == nil {
		return
	}
	attrs := make([]slog.Attr, 0, 26)
	attrs = append(attrs,
		slog.String("log", "audit"),
		slog.Time("requestTime", r.Time),
		slog.String("policy", r.Policy),
		slog.String("configHash", r.ConfigHash),
		slog.String("workload", r.Workload),
		slog.String("namespace", r.Namespace),
		slog.String("method", r.Method),
		slog.String("path", r.Path),
		slog.String("decision", r.Decision),
		slog.Int("status", r.Status),
		slog.Float64("latencyMs", float64(r.Latency.Microseconds())/1000),
	)
	if r.EndUser != "" {
		attrs = append(attrs, slog.String("endUser", r.EndUser))
	}
	if r.Model != "" {
		attrs = append(attrs, slog.String("model", r.Model), slog.Bool("stream", r.Stream))
	}
	if r.RequestedModel != "" && r.RequestedModel != r.Model {
		attrs = append(attrs, slog.String("requestedModel", r.RequestedModel))
	}
	if r.Rule != "" {
		attrs = append(attrs, slog.String("rule", r.Rule), slog.String("reason", r.Reason))
	}
	if r.ClampedFrom > 0 {
		attrs = append(attrs, slog.Int64("clampedFrom", r.ClampedFrom))
	}
	if r.UpstreamRequestID != "" || r.UpstreamLatency > 0 {
		attrs = append(attrs,
			slog.String("upstreamRequestId", r.UpstreamRequestID),
			slog.Float64("upstreamLatencyMs", float64(r.UpstreamLatency.Microseconds())/1000),
			slog.Int64("inputTokens", r.InputTokens),
			slog.Int64("outputTokens", r.OutputTokens),
			slog.Int64("cacheReadInputTokens", r.CacheReadTokens),
			slog.Int64("cacheCreationInputTokens", r.CacheWriteTokens),
		)
	}
	if r.StreamError != "" {
		attrs = append(attrs, slog.String("streamError", r.StreamError))
	}
	if r.ClientAborted {
		attrs = append(attrs, slog.Bool("clientAborted", true))
	}
	l.l.LogAttrs(ctx, slog.LevelInfo, "Claude API request", attrs...)
}
