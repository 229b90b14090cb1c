package policyconfig_test

import (
	"strings"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

func TestRevocationIDsKeepKindsAndIssuersApart(t *testing.T) {
	ids := map[string]string{}
	for _, c := range [][3]string{
		{policyconfig.RevokeJTI, "https://a.test", "x"},
		{policyconfig.RevokeSubject, "https://a.test", "x"},
		{policyconfig.RevokeJTI, "https://b.test", "x"},
		// NUL-separated: moving a byte between the parts gives another ID.
		{policyconfig.RevokeJTI, "https://a.test/", "x"},
		{policyconfig.RevokeJTI, "https://a.test", "/x"},
	} {
		id := policyconfig.RevocationID(c[0], c[1], c[2])
		if len(id) != 32 || strings.ToLower(id) != id {
			t.Fatalf("ID %q is not 32 lowercase hex digits", id)
		}
		if prev, ok := ids[id]; ok {
			t.Fatalf("%v and %s share ID %s", c, prev, id)
		}
		ids[id] = strings.Join(c[:], " ")
	}
}

func TestSharedValueRoundTrips(t *testing.T) {
	until := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	id := policyconfig.RevocationID(policyconfig.RevokeJTI, "https://a.test", "x")
	for _, r := range []policyconfig.Revocation{{ID: id, Name: "leaked"}, {ID: id, Name: "leaked", Until: &until}} {
		got, err := policyconfig.ParseShared(r.ID, r.SharedValue())
		if err != nil || got.Name != r.Name || (got.Until == nil) != (r.Until == nil) || (r.Until != nil && !got.Until.Equal(*r.Until)) {
			t.Fatalf("ParseShared(%q) = %+v, %v; want %+v", r.SharedValue(), got, err, r)
		}
	}
	for _, bad := range []struct{ id, value, want string }{
		{id, "leaked", `not "<until> <name>"`},
		{"#version", "0 x", `not "<until> <name>"`},
		{strings.ToUpper(id), "0 x", `not "<until> <name>"`},
		{id, "-5 x", "non-negative Unix time"},
		{id, "soon x", "non-negative Unix time"},
	} {
		if _, err := policyconfig.ParseShared(bad.id, bad.value); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ParseShared(%q, %q) = %v, want an error containing %q", bad.id, bad.value, err, bad.want)
		}
	}
}
