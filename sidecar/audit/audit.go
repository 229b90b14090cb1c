// Package audit writes one structured JSON record per proxied request. A record describes the call (who,
// which model, what was decided and why, what it cost, how long it took); it never contains the prompt,
// the response, an API key or a bearer token, because the fields that could carry them do not exist.
package audit

import (
	"bufio"
	"context"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
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
	Time           time.Time
	Policy         string
	ConfigHash     string
	Workload       string
	Namespace      string
	EndUser        string
	Method         string
	Path           string
	Model          string
	RequestedModel string
	Stream         bool
	Decision       string
	Rule           string
	Reason         string
	// Revocation names the ClaudeRevocation that refused the request (rule endUser.revoked).
	Revocation string
	// Session is the client's session id (X-Claude-Code-Session-Id or metadata.user_id).
	Session          string
	Status           int
	InputTokens      int64
	OutputTokens     int64
	CacheReadTokens  int64
	CacheWriteTokens int64
	// ClampedFrom is the client's max_tokens when a Clamp ceiling lowered it to MaxTokens; the
	// thinking budget lowered with it is ThinkingBudgetFrom, sent as ThinkingBudget.
	ClampedFrom        int64
	MaxTokens          int64
	ThinkingBudgetFrom int64
	ThinkingBudget     int64
	Latency            time.Duration
	UpstreamLatency    time.Duration
	UpstreamRequestID  string
	StreamError        string
	// UsageSource is "estimate" or "reserved" when the tokens were not reported whole by the response.
	UsageSource   string
	ClientAborted bool
}

// Logger writes records as JSON lines. Lines are buffered and written at least every FlushInterval
// (and when the buffer fills, and on Close), so a busy proxy does not pay one write system call per
// request. A crash can lose at most the last FlushInterval of records.
type Logger struct {
	w      *lineBuffer
	stop   chan struct{}
	done   chan struct{}
	failed atomic.Uint64
}

// FlushInterval bounds how long a record waits in the buffer.
const FlushInterval = 100 * time.Millisecond

// New returns a logger writing JSON lines to w. Call Close to flush and stop it.
func New(w io.Writer) *Logger {
	lb := &lineBuffer{bw: bufio.NewWriterSize(w, 64<<10)}
	l := &Logger{w: lb, stop: make(chan struct{}), done: make(chan struct{})}
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

// Failed is how many records could not be written. The writer's error is sticky: after a write or a
// flush fails, every later record is counted as failed.
func (l *Logger) Failed() uint64 {
	if l == nil {
		return 0
	}
	return l.failed.Load()
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

// Write records r. A nil Logger writes nothing. The line is encoded by hand (same layout as the slog
// JSON handler the operational log uses): this runs on every request and slog's reflection-free but
// generic path costs several times more.
func (l *Logger) Write(_ context.Context, r *Record) {
	if l == nil {
		return
	}
	bp := encPool.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"time":"`...)
	b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"Claude API request","log":"audit","requestTime":"`...)
	b = r.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = str(b, "policy", r.Policy)
	b = str(b, "configHash", r.ConfigHash)
	b = str(b, "workload", r.Workload)
	b = str(b, "namespace", r.Namespace)
	b = str(b, "method", r.Method)
	b = str(b, "path", r.Path)
	b = str(b, "decision", r.Decision)
	b = num(b, "status", int64(r.Status))
	b = ms(b, "latencyMs", r.Latency)
	if r.EndUser != "" {
		b = str(b, "endUser", r.EndUser)
	}
	if r.Model != "" {
		b = str(b, "model", r.Model)
		b = append(b, `,"stream":`...)
		b = strconv.AppendBool(b, r.Stream)
	}
	if r.RequestedModel != "" && r.RequestedModel != r.Model {
		b = str(b, "requestedModel", r.RequestedModel)
	}
	if r.Rule != "" {
		b = str(b, "rule", r.Rule)
		b = str(b, "reason", r.Reason)
	}
	if r.Revocation != "" {
		b = str(b, "revocation", r.Revocation)
	}
	if r.Session != "" {
		b = str(b, "session", r.Session)
	}
	if r.ClampedFrom > 0 {
		b = num(b, "clampedFrom", r.ClampedFrom)
		b = num(b, "maxTokens", r.MaxTokens)
	}
	if r.ThinkingBudgetFrom > 0 {
		b = num(b, "thinkingBudgetFrom", r.ThinkingBudgetFrom)
		b = num(b, "thinkingBudget", r.ThinkingBudget)
	}
	if r.UpstreamRequestID != "" || r.UpstreamLatency > 0 || r.UsageSource != "" {
		b = str(b, "upstreamRequestId", r.UpstreamRequestID)
		b = ms(b, "upstreamLatencyMs", r.UpstreamLatency)
		b = num(b, "inputTokens", r.InputTokens)
		b = num(b, "outputTokens", r.OutputTokens)
		b = num(b, "cacheReadInputTokens", r.CacheReadTokens)
		b = num(b, "cacheCreationInputTokens", r.CacheWriteTokens)
	}
	if r.StreamError != "" {
		b = str(b, "streamError", r.StreamError)
	}
	if r.UsageSource != "" {
		b = str(b, "usageSource", r.UsageSource)
	}
	if r.ClientAborted {
		b = append(b, `,"clientAborted":true`...)
	}
	b = append(b, "}\n"...)
	if _, err := l.w.Write(b); err != nil {
		// The request is already answered and the audit stream itself is what failed, so there is
		// nowhere better to report it than a counter (exported as a metric).
		l.failed.Add(1)
	}
	*bp = b
	encPool.Put(bp)
}

var encPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func str(b []byte, key, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return AppendString(b, v)
}

func num(b []byte, key string, v int64) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

func ms(b []byte, key string, d time.Duration) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', -1, 64)
}

// AppendString appends s as a JSON string: quotes, backslashes and control characters escaped,
// invalid UTF-8 replaced by U+FFFD (so a client-chosen model name cannot break the line).
func AppendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			b = append(b, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else if r == '\u2028' || r == '\u2029' {
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
