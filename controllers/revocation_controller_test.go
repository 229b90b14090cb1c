//go:build integration

package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/test/wait"
)

func withEndUser(issuer string) func(*v1alpha1.ClaudeAccessPolicy) {
	return func(p *v1alpha1.ClaudeAccessPolicy) {
		p.Spec.EndUser = &v1alpha1.EndUserPolicy{Mode: v1alpha1.EndUserStrict,
			Issuers: []v1alpha1.OIDCIssuer{{URL: issuer, Audiences: []string{"claude"}}}}
	}
}

// revocationIs waits until the revocation's Ready condition has status and reason.
func revocationIs(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) *v1alpha1.ClaudeRevocation {
	t.Helper()
	r := &v1alpha1.ClaudeRevocation{}
	wait.For(t, reconcileWait, "", func() error {
		if err := k.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, r); err != nil {
			return err
		}
		c := meta.FindStatusCondition(r.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || c.Status != status || c.Reason != reason {
			return fmt.Errorf("Ready = %+v, want %s %s", c, status, reason)
		}
		return nil
	})
	return r
}

// TestRevocationsAreRenderedAndReported: a revocation is rendered into the configs of the policies that
// trust its issuer and only those, its status names them (or says that none does), and one that
// expires leaves the configs at its expiresAt without any other change.
func TestRevocationsAreRenderedAndReported(t *testing.T) {
	const issuer, other = "https://login.example.com", "https://other.example.com"
	ns := newNamespace(t, "revoke", map[string]string{"tenant": "revoke"})
	create(t, newTenant("revoke"))
	create(t, newPolicy(ns, "chat", withEndUser(issuer)))
	create(t, newPolicy(ns, "batch", withSelector(map[string]string{"app": "batch"})))
	readyIs(t, ns, "chat", metav1.ConditionTrue, v1alpha1.ReasonAdmitted)

	expires := metav1.NewTime(time.Now().Add(4 * time.Second).Truncate(time.Second))
	create(t, &v1alpha1.ClaudeRevocation{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "alice"},
		Spec: v1alpha1.ClaudeRevocationSpec{Issuer: issuer, Subject: "alice", ExpiresAt: &expires}})
	create(t, &v1alpha1.ClaudeRevocation{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "elsewhere"},
		Spec: v1alpha1.ClaudeRevocationSpec{Issuer: other, JTI: "x"}})

	r := revocationIs(t, ns, "alice", metav1.ConditionTrue, v1alpha1.ReasonRevoked)
	if len(r.Status.Policies) != 1 || r.Status.Policies[0] != "chat" || r.Status.SharedAt != nil {
		t.Errorf("status = %+v, want policies [chat] and no sharedAt (this manager has no Redis)", r.Status)
	}
	revocationIs(t, ns, "elsewhere", metav1.ConditionFalse, v1alpha1.ReasonNoPolicyTrustsIssuer)
	wait.For(t, reconcileWait, "", func() error {
		_, cfg := renderedConfig(t, ns, "chat")
		want := policyconfig.RevocationID(policyconfig.RevokeSubject, issuer, "alice")
		if len(cfg.Revoked) != 1 || cfg.Revoked[0].ID != want || cfg.Revoked[0].Until == nil || !cfg.Revoked[0].Until.Equal(expires.Time) {
			return fmt.Errorf("chat's revocations = %+v, want alice's until %s", cfg.Revoked, expires)
		}
		return nil
	})
	if _, cfg := renderedConfig(t, ns, "batch"); len(cfg.Revoked) != 0 {
		t.Errorf("batch verifies no end users but renders revocations %+v", cfg.Revoked)
	}

	// Nothing changes but the clock.
	revocationIs(t, ns, "alice", metav1.ConditionFalse, v1alpha1.ReasonRevocationExpired)
	wait.For(t, reconcileWait, "", func() error {
		if _, cfg := renderedConfig(t, ns, "chat"); len(cfg.Revoked) != 0 {
			return fmt.Errorf("chat still renders %+v after the revocation expired", cfg.Revoked)
		}
		return nil
	})
}
