package revocation_test

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/revocation"
)

var now = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func rev(name, issuer, subject string, age time.Duration, expires *time.Duration) v1alpha1.ClaudeRevocation {
	r := v1alpha1.ClaudeRevocation{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name), CreationTimestamp: metav1.NewTime(now.Add(-age))},
		Spec: v1alpha1.ClaudeRevocationSpec{Issuer: issuer, Subject: subject}}
	if expires != nil {
		t := metav1.NewTime(now.Add(*expires))
		r.Spec.ExpiresAt = &t
	}
	return r
}

func names(rs []v1alpha1.ClaudeRevocation) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return fmt.Sprint(out)
}

func TestOfSortsExpiresAndBounds(t *testing.T) {
	in, out := time.Hour, -time.Minute
	deleting := rev("deleting", "https://a.test", "d", time.Hour, nil)
	deleting.DeletionTimestamp = &metav1.Time{Time: now}
	set := revocation.Of([]v1alpha1.ClaudeRevocation{
		rev("newer", "https://a.test", "n", time.Minute, &in),
		rev("older", "https://b.test", "o", time.Hour, nil),
		rev("expired", "https://a.test", "e", time.Hour, &out),
		deleting,
	}, now)
	if names(set.Active) != "[older newer]" || names(set.Expired) != "[expired]" || len(set.Over) != 0 {
		t.Fatalf("active %s, expired %s, over %s", names(set.Active), names(set.Expired), names(set.Over))
	}
	if !set.Next.Equal(now.Add(in)) {
		t.Errorf("next = %s, want newer's expiry", set.Next)
	}
	if got := set.ForIssuers([]string{"https://a.test"}); len(got) != 1 || got[0].Name != "newer" ||
		got[0].ID != policyconfig.RevocationID(policyconfig.RevokeSubject, "https://a.test", "n") || got[0].Until == nil {
		t.Errorf("ForIssuers(a) = %+v, want newer's subject entry with its expiry", got)
	}
	if got := set.Shared(); len(got) != 2 {
		t.Errorf("shared = %v, want both active revocations whatever their issuer", got)
	}
}

func TestOfKeepsTheOldestWhenThereAreTooMany(t *testing.T) {
	var revs []v1alpha1.ClaudeRevocation
	for i := range revocation.MaxPerNamespace + 2 {
		revs = append(revs, rev(fmt.Sprintf("r%04d", i), "https://a.test", fmt.Sprint(i), time.Duration(revocation.MaxPerNamespace+2-i)*time.Second, nil))
	}
	set := revocation.Of(revs, now)
	if len(set.Active) != revocation.MaxPerNamespace || names(set.Over) != fmt.Sprintf("[r%04d r%04d]", revocation.MaxPerNamespace, revocation.MaxPerNamespace+1) {
		t.Fatalf("active %d, over %s: want the %d oldest active and the two newest over", len(set.Active), names(set.Over), revocation.MaxPerNamespace)
	}
}
