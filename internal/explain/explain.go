// Package explain answers "why was this call denied?" for one pod without reading logs: the policy
// that applies to it, what that policy enforces once its tenant narrowed it (the rendered config the
// sidecar runs), the tenant's ceilings, and the sidecar's denials by rule read from its own metrics.
// kubectl-claude_guard (cmd/kubectl-claude_guard) is its command line.
package explain

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// Metrics fetches a pod's sidecar metrics in the Prometheus text format.
type Metrics interface {
	Fetch(ctx context.Context, pod *corev1.Pod) (io.ReadCloser, error)
}

// Options say which pod to explain and where its metrics come from.
type Options struct {
	Client    client.Client
	Namespace string
	Pod       string
	// Metrics is nil to skip the denials (--no-metrics).
	Metrics Metrics
}

// Report is what Explain found; Write prints it.
type Report struct {
	Pod       *corev1.Pod
	Status    string // the webhook's injection status annotation
	Policy    *v1alpha1.ClaudeAccessPolicy
	Config    *policyconfig.Config
	Denials   []Denial
	Requests  map[string]float64 // decision → requests since the sidecar started
	MetricErr error
}

// Explain gathers the report. Errors about the pod itself are returned; a missing policy, config or
// metrics endpoint is part of the report, because that is often the answer.
func Explain(ctx context.Context, o Options) (*Report, error) {
	r := &Report{Pod: &corev1.Pod{}}
	if err := o.Client.Get(ctx, types.NamespacedName{Namespace: o.Namespace, Name: o.Pod}, r.Pod); err != nil {
		return nil, fmt.Errorf("pod %s/%s: %w", o.Namespace, o.Pod, err)
	}
	r.Status = r.Pod.Annotations[wellknown.AnnotationStatus]
	name := r.Pod.Annotations[wellknown.AnnotationPolicy]
	if name == "" {
		return r, nil
	}
	p := &v1alpha1.ClaudeAccessPolicy{}
	if err := o.Client.Get(ctx, types.NamespacedName{Namespace: o.Namespace, Name: name}, p); err == nil {
		r.Policy = p
	}
	cm := &corev1.ConfigMap{}
	if err := o.Client.Get(ctx, types.NamespacedName{Namespace: o.Namespace, Name: wellknown.ConfigMapName(name)}, cm); err == nil {
		if c, err := policyconfig.Parse([]byte(cm.Data[wellknown.ConfigKey])); err == nil {
			r.Config = c
		}
	}
	if o.Metrics != nil && r.Status == wellknown.StatusInjected {
		r.Denials, r.Requests, r.MetricErr = readMetrics(ctx, o.Metrics, r.Pod)
	}
	return r, nil
}

// Write prints the report for a terminal.
func (r *Report) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, a ...any) { _, _ = fmt.Fprintf(tw, format+"\n", a...) }
	p("Pod:\t%s/%s", r.Pod.Namespace, r.Pod.Name)
	p("Sidecar:\t%s", cmp.Or(r.Status, "not injected (no claudeguard.io/status annotation: no policy selected it, or the webhook did not run)"))
	name := r.Pod.Annotations[wellknown.AnnotationPolicy]
	if name == "" {
		return tw.Flush()
	}
	r.writePolicy(p, name)
	if c := r.Config; c != nil {
		p("")
		p("Effective policy (what the sidecar enforces, after the tenant's ceilings):")
		writeConfig(p, c)
	} else {
		p("Effective policy:\tno rendered config %s (the controller has not rendered it: see the policy's conditions)", wellknown.ConfigMapName(name))
	}
	p("")
	r.writeDenials(p)
	return tw.Flush()
}

func (r *Report) writePolicy(p func(string, ...any), name string) {
	if r.Policy == nil {
		p("Policy:\t%s (not found: deleted since the pod was admitted?)", name)
		return
	}
	p("Policy:\t%s (generation %d)", name, r.Policy.Generation)
	if c := apimeta.FindStatusCondition(r.Policy.Status.Conditions, v1alpha1.ConditionReady); c != nil {
		p("  Ready:\t%s (%s) %s", c.Status, c.Reason, c.Message)
	}
}

func writeConfig(p func(string, ...any), c *policyconfig.Config) {
	if c.Policy.Tenant != "" {
		p("  Tenant:\t%s", c.Policy.Tenant)
	}
	if c.Deny != nil {
		p("  Deny all:\t%s", c.Deny.Reason)
	}
	if c.ShadowMode {
		p("  Shadow mode:\ton (rules are recorded, nothing is refused)")
	}
	p("  Models allowed:\t%s", cmp.Or(strings.Join(c.Models.Allow, ", "), "none"))
	if len(c.Models.Deny) > 0 {
		p("  Models denied:\t%s", strings.Join(c.Models.Deny, ", "))
	}
	for _, m := range c.Models.MaxTokens {
		p("  max_tokens:\t%s ≤ %d (%s)%s", m.Model, m.Limit, m.Action, fromTenant(m.Source))
	}
	if c.DenyStreaming {
		p("  Streaming:\trefused")
	}
	if eu := c.EndUser; eu != nil && eu.Mode != policyconfig.EndUserDisabled {
		p("  End users:\t%s, %d issuer(s), %d scope rule(s)", eu.Mode, len(eu.Issuers), len(eu.Rules))
	}
	for _, l := range c.Limits.Rules {
		var amounts []string
		if l.Requests > 0 {
			amounts = append(amounts, fmt.Sprintf("%d requests", l.Requests))
		}
		if l.Tokens > 0 {
			amounts = append(amounts, fmt.Sprintf("%d %s tokens", l.Tokens, cmp.Or(l.TokenType, "total")))
		}
		p("  Limit %s:\t%s per %s, per %s%s", l.Name, strings.Join(amounts, " and "), l.Window, l.Key, fromTenant(l.Source))
	}
	for _, b := range c.Budgets {
		amount := fmt.Sprintf("%d tokens", b.Tokens)
		if b.USD != "" {
			amount = "$" + b.USD
		}
		p("  Budget %s:\t%s per %s, per %s, %s%s", b.Name, amount, b.Window, b.Key, cmp.Or(b.Enforcement, "Hard"), fromTenant(b.Source))
	}
	if len(c.Limits.Rules)+len(c.Budgets) > 0 {
		p("  Limits backend:\t%s, %s", cmp.Or(c.Limits.Backend, "Local"), cmp.Or(c.Limits.FailureMode, "FailClosed"))
	}
}

func (r *Report) writeDenials(p func(string, ...any)) {
	switch {
	case r.Status != wellknown.StatusInjected:
		p("Denials:\tnone to read: the pod has no sidecar")
		return
	case r.MetricErr != nil:
		p("Denials:\tthe sidecar's metrics could not be read: %v", r.MetricErr)
		return
	case r.Requests == nil:
		p("Denials:\tnot read (--no-metrics)")
		return
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(r.Requests)) {
		parts = append(parts, fmt.Sprintf("%s %g", k, r.Requests[k]))
	}
	p("Requests since the sidecar started:\t%s", cmp.Or(strings.Join(parts, ", "), "none"))
	if len(r.Denials) == 0 {
		p("Denials by rule:\tnone")
		return
	}
	p("Denials by rule (Messages calls since the sidecar started):")
	p("  RULE\tDECISION\tCOUNT")
	for _, d := range r.Denials {
		p("  %s\t%s\t%g", d.Rule, d.Decision, d.Count)
	}
}

func fromTenant(source string) string {
	if source == policyconfig.SourceTenant {
		return "  (tenant ceiling)"
	}
	return ""
}

// statusError is an HTTP answer that was not 200, said in a sentence.
func statusError(resp *http.Response) error {
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("HTTP 401: the sidecar's /metrics needs the metrics token (--metrics-token-file, or read access to the operator's metrics-token Secret)")
	}
	return fmt.Errorf("HTTP %d from the sidecar's /metrics", resp.StatusCode)
}
