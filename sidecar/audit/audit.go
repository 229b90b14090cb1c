// Package audit writes one structured JSON record per proxied request. A record describes the call (who,
// which model, what was decided and why, what it cost, how long it took); it never contains the prompt,
// the response, an API key or a bearer token, because the fields that could carry them do not exist.
package audit

import (
	"context"
	"io"
	"log/slog"
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

// Logger writes records as JSON lines.
type Logger struct {
	l *slog.Logger
}

// New returns a logger writing JSON lines to w.
func New(w io.Writer) *Logger {
	return &Logger{l: slog.New(slog.NewJSONHandler(w, nil))}
}

// Discard returns a logger that writes nothing (audit disabled).
func Discard() *Logger { return nil }

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
