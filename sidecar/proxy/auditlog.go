package proxy

import (
	"net/http"
	"time"

	"github.com/claude-guard/claude-guard/sidecar/audit"
)

// WithAudit writes the audit record when the request is done.
func WithAudit(l *audit.Logger, next http.Handler) http.Handler {
	if l == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer writeAudit(l, r) // deferred: see WithMetrics
		next.ServeHTTP(w, r)
	})
}

func writeAudit(l *audit.Logger, r *http.Request) {
	ex := FromContext(r.Context())
	c := ex.Policy.Config
	rule, reason := ex.rule()
	up := &ex.Upstream
	rec := audit.Record{
		Time:              ex.Start,
		Policy:            c.Policy.Namespace + "/" + c.Policy.Name,
		ConfigHash:        ex.Policy.Hash,
		Workload:          ex.Caller.Workload,
		Namespace:         ex.Caller.Namespace,
		Method:            r.Method,
		Path:              r.URL.Path,
		Model:             ex.Decision.Model,
		RequestedModel:    ex.Decision.RequestedModel,
		Stream:            ex.Decision.Fields.Stream,
		Decision:          ex.decisionLabel(),
		Rule:              rule,
		Reason:            reason,
		Revocation:        ex.Revocation,
		Session:           ex.Session,
		Status:            ex.w.code(),
		InputTokens:       up.Usage.InputTokens,
		OutputTokens:      up.Usage.OutputTokens,
		CacheReadTokens:   up.Usage.CacheReadInputTokens,
		CacheWriteTokens:  up.Usage.CacheCreationInputTokens,
		ClampedFrom:       ex.Decision.ClampedFrom,
		Latency:           time.Since(ex.Start),
		UpstreamLatency:   up.Latency,
		UpstreamRequestID: up.RequestID,
		StreamError:       up.StreamError,
		UsageSource:       up.UsageSource,
		ClientAborted:     ex.ClientAborted || r.Context().Err() != nil,
	}
	if d := &ex.Decision; d.ClampedFrom > 0 {
		rec.MaxTokens = d.Fields.MaxTokens
	}
	if d := &ex.Decision; d.ThinkingClampedFrom > 0 {
		rec.ThinkingBudgetFrom, rec.ThinkingBudget = d.ThinkingClampedFrom, d.Fields.Thinking.Budget
	}
	if !c.Audit.OmitEndUser {
		rec.EndUser = ex.Caller.EndUser()
	}
	if c.Audit.Disabled {
		return
	}
	l.Write(r.Context(), &rec)
}
