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
	ex.Status = ex.w.code()
	c := ex.Policy.Config
	rule, reason := ex.rule()
	rec := audit.Record{
		Time:              ex.Start,
		Policy:            c.Policy.Namespace + "/" + c.Policy.Name,
		ConfigHash:        ex.Policy.Hash,
		Workload:          ex.Workload,
		Namespace:         ex.Namespace,
		Method:            r.Method,
		Path:              r.URL.Path,
		Model:             ex.Decision.Model,
		RequestedModel:    ex.Decision.RequestedModel,
		Stream:            ex.Decision.Fields.Stream,
		Decision:          ex.decisionLabel(),
		Rule:              rule,
		Reason:            reason,
		Status:            ex.Status,
		InputTokens:       ex.Usage.InputTokens,
		OutputTokens:      ex.Usage.OutputTokens,
		CacheReadTokens:   ex.Usage.CacheReadInputTokens,
		CacheWriteTokens:  ex.Usage.CacheCreationInputTokens,
		ClampedFrom:       ex.Decision.ClampedFrom,
		Latency:           time.Since(ex.Start),
		UpstreamLatency:   ex.UpstreamLatency,
		UpstreamRequestID: ex.UpstreamRequestID,
		StreamError:       ex.StreamError,
		ClientAborted:     ex.ClientAborted || r.Context().Err() != nil,
	}
	if !c.Audit.OmitEndUser {
		rec.EndUser = ex.EndUser
	}
	if c.Audit.Disabled {
		return
	}
	l.Write(r.Context(), &rec)
}
