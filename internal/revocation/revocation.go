// Package revocation turns a namespace's ClaudeRevocations into what sidecars refuse: the entries the
// policy controller renders into each policy's config (policyconfig.Config.Revoked) and the revocation
// controller writes to the namespace's Redis hash, from which sidecars with the Redis backend read them
// within seconds (docs/end-users.md, "Revoking tokens and users").
package revocation

import (
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

// MaxPerNamespace bounds the revocations in force in one namespace: every one is in every config of
// the namespace that trusts its issuer, and in Redis. Beyond it the oldest are kept and the others
// report TooManyRevocations; revoking the user (subject) rather than each of their tokens, and letting
// jti revocations expire with their tokens (expiresAt), keeps a namespace well below it.
const MaxPerNamespace = 1000

// Set is what a namespace's revocations amount to at one time.
type Set struct {
	// Active are the revocations in force, oldest first, at most MaxPerNamespace.
	Active []v1alpha1.ClaudeRevocation
	// Expired are past their expiresAt; Over are in force but beyond MaxPerNamespace.
	Expired, Over []v1alpha1.ClaudeRevocation
	// Next is the earliest expiresAt still to come, when the set changes by itself; zero when none.
	Next time.Time
}

// Of sorts a namespace's revocations at now.
func Of(revs []v1alpha1.ClaudeRevocation, now time.Time) Set {
	revs = slices.Clone(revs)
	slices.SortFunc(revs, func(a, b v1alpha1.ClaudeRevocation) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	var s Set
	mnow := metav1.NewTime(now)
	for _, r := range revs {
		switch {
		case r.DeletionTimestamp != nil:
		case !r.Active(mnow):
			s.Expired = append(s.Expired, r)
		case len(s.Active) >= MaxPerNamespace:
			s.Over = append(s.Over, r)
		default:
			s.Active = append(s.Active, r)
			if e := r.Spec.ExpiresAt; e != nil && (s.Next.IsZero() || e.Before(&metav1.Time{Time: s.Next})) {
				s.Next = e.Time
			}
		}
	}
	return s
}

// Entry is r as a sidecar config entry.
func Entry(r *v1alpha1.ClaudeRevocation) policyconfig.Revocation {
	kind, value := policyconfig.RevokeJTI, r.Spec.JTI
	if r.Spec.Subject != "" {
		kind, value = policyconfig.RevokeSubject, r.Spec.Subject
	}
	e := policyconfig.Revocation{ID: policyconfig.RevocationID(kind, r.Spec.Issuer, value), Name: r.Name}
	if r.Spec.ExpiresAt != nil {
		t := r.Spec.ExpiresAt.UTC()
		e.Until = &t
	}
	return e
}

// ForIssuers returns the entries of the active revocations whose issuer is one of issuers: what a config
// trusting those issuers refuses.
func (s Set) ForIssuers(issuers []string) []policyconfig.Revocation {
	var out []policyconfig.Revocation
	for i := range s.Active {
		if slices.Contains(issuers, s.Active[i].Spec.Issuer) {
			out = append(out, Entry(&s.Active[i]))
		}
	}
	return out
}

// Shared returns the active revocations as the namespace's Redis hash holds them: ID to SharedValue.
// Every active revocation is shared, whatever its issuer: a sidecar only ever looks up the IDs of the
// tokens it verified.
func (s Set) Shared() map[string]string {
	m := make(map[string]string, len(s.Active))
	for i := range s.Active {
		e := Entry(&s.Active[i])
		m[e.ID] = e.SharedValue()
	}
	return m
}
