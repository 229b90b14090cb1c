package telemetry

import (
	"context"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Attribute keys: the GenAI semantic conventions' and claude-guard's own.
const (
	KeyOperation     = "gen_ai.operation.name"
	KeyProvider      = "gen_ai.provider.name"
	KeySystem        = "gen_ai.system" // the name before gen_ai.provider.name; kept for older dashboards
	KeyRequestModel  = "gen_ai.request.model"
	KeyResponseModel = "gen_ai.response.model"
	KeyTokenType     = "gen_ai.token.type"
	KeyErrorType     = "error.type"
	KeyNamespace     = "claude_guard.namespace"
	KeyPolicy        = "claude_guard.policy"
	KeyTenant        = "claude_guard.tenant"
	KeyDecision      = "claude_guard.decision"
	KeyRule          = "claude_guard.rule"
	KeyStream        = "claude_guard.stream"
)

// Provider is gen_ai.provider.name for the Anthropic API.
const Provider = "anthropic"

// OperationChat is gen_ai.operation.name of a Messages call.
const OperationChat = "chat"

// Call is one proxied Messages request as the metrics and its span see it. Every string is already
// bounded by the proxy: models are "other" unless the upstream accepted them, the rule is one of the
// policy's, the error type is an HTTP status class. Nothing of the request body is here.
type Call struct {
	Operation string
	// Model is the model the upstream accepted ("other" when it did not, "" when the request named none).
	Model                                     string
	Namespace, Policy, Tenant, Decision, Rule string
	Status                                    int
	Stream                                    bool
	UsageSeen                                 bool
	InputTokens, OutputTokens                 int64
	MaxTokens                                 int64
	Duration, FirstChunk                      time.Duration
	RequestID                                 string
}

// errorType is error.type: the HTTP status of a failed call, "" for a success.
func (c *Call) errorType() string {
	if c.Status < 400 {
		return ""
	}
	return strconv.Itoa(c.Status)
}

type instruments struct {
	tokens, duration, firstChunk metric.Float64Histogram
}

// Buckets are the semantic conventions' advice for each instrument.
var (
	tokenBuckets    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
	durationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	chunkBuckets    = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0}
)

func newInstruments(m metric.Meter) (instruments, error) {
	var in instruments
	var err error
	if in.tokens, err = m.Float64Histogram("gen_ai.client.token.usage", metric.WithUnit("{token}"),
		metric.WithDescription("Number of input and output tokens used."), metric.WithExplicitBucketBoundaries(tokenBuckets...)); err != nil {
		return in, err
	}
	if in.duration, err = m.Float64Histogram("gen_ai.client.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("GenAI operation duration."), metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		return in, err
	}
	in.firstChunk, err = m.Float64Histogram("gen_ai.client.operation.time_to_first_chunk", metric.WithUnit("s"),
		metric.WithDescription("Time to receive the first chunk of a streamed response, from when the sidecar received the request."),
		metric.WithExplicitBucketBoundaries(chunkBuckets...))
	return in, err
}

// Record records a finished Messages call in the GenAI metrics.
func (t *Telemetry) Record(ctx context.Context, c *Call) {
	if t == nil {
		return
	}
	l := c.labels()
	base := t.sets.get(setKey{call: l})
	t.inst.duration.Record(ctx, c.Duration.Seconds(), metric.WithAttributeSet(base))
	if c.Stream && c.FirstChunk > 0 {
		t.inst.firstChunk.Record(ctx, c.FirstChunk.Seconds(), metric.WithAttributeSet(base))
	}
	if c.UsageSeen {
		t.inst.tokens.Record(ctx, float64(c.InputTokens), metric.WithAttributeSet(t.sets.get(setKey{call: l, tokenType: "input"})))
		t.inst.tokens.Record(ctx, float64(c.OutputTokens), metric.WithAttributeSet(t.sets.get(setKey{call: l, tokenType: "output"})))
	}
}

// End names the request's span after what it turned out to be, sets its attributes and ends it.
// call is nil for requests that are not Messages calls (count_tokens, the models list).
func End(span trace.Span, endpoint string, status int, call *Call) {
	if !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{attribute.Int("http.response.status_code", status)}
	if call != nil {
		name := call.Operation
		if call.Model != "" {
			name += " " + call.Model
		}
		span.SetName(name)
		l := call.labels()
		attrs = append(attrs, l.attributes("")...)
		attrs = append(attrs, attribute.Int64("gen_ai.request.max_tokens", call.MaxTokens))
		if call.UsageSeen {
			attrs = append(attrs, attribute.Int64("gen_ai.usage.input_tokens", call.InputTokens),
				attribute.Int64("gen_ai.usage.output_tokens", call.OutputTokens))
		}
		if call.RequestID != "" {
			attrs = append(attrs, attribute.String("anthropic.request_id", call.RequestID))
		}
	} else {
		span.SetName(endpoint)
	}
	if status >= 500 {
		span.SetStatus(codes.Error, "HTTP "+strconv.Itoa(status))
	}
	span.SetAttributes(attrs...)
	span.End()
}

// labels are a call's metric attributes: what every series of it shares.
type labels struct {
	operation, model, namespace, policy, tenant, decision, rule, errorType string
	stream                                                                 bool
}

func (c *Call) labels() labels {
	return labels{operation: c.Operation, model: c.Model, namespace: c.Namespace, policy: c.Policy, tenant: c.Tenant,
		decision: c.Decision, rule: c.Rule, errorType: c.errorType(), stream: c.Stream}
}

func (l labels) attributes(tokenType string) []attribute.KeyValue {
	kv := []attribute.KeyValue{
		attribute.String(KeyOperation, l.operation),
		attribute.String(KeyProvider, Provider),
		attribute.String(KeySystem, Provider),
		attribute.String(KeyNamespace, l.namespace),
		attribute.String(KeyPolicy, l.policy),
		attribute.String(KeyDecision, l.decision),
		attribute.Bool(KeyStream, l.stream),
	}
	if l.model != "" {
		// The sidecar forwards the model the policy checked, so the response's model is the request's.
		kv = append(kv, attribute.String(KeyRequestModel, l.model), attribute.String(KeyResponseModel, l.model))
	}
	for _, o := range []struct{ k, v string }{{KeyTenant, l.tenant}, {KeyRule, l.rule}, {KeyErrorType, l.errorType}, {KeyTokenType, tokenType}} {
		if o.v != "" {
			kv = append(kv, attribute.String(o.k, o.v))
		}
	}
	return kv
}

type setKey struct {
	call      labels
	tokenType string
}

// attrCache keeps one attribute.Set per label combination: building a set sorts and copies its
// attributes, which per request would cost more than recording. The labels are bounded (see Call), and
// past maxCachedSets the cache stops growing and sets are built per call.
type attrCache struct {
	m  sync.Map // setKey → attribute.Set
	mu sync.Mutex
	n  int
}

const maxCachedSets = 4096

func (c *attrCache) get(k setKey) attribute.Set {
	if s, ok := c.m.Load(k); ok {
		return s.(attribute.Set)
	}
	s := attribute.NewSet(k.call.attributes(k.tokenType)...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n < maxCachedSets {
		if _, loaded := c.m.LoadOrStore(k, s); !loaded {
			c.n++
		}
	}
	return s
}
