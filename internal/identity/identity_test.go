package identity

import (
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func TestExpectedCheck(t *testing.T) {
	pod := Expected{TrustDomain: "prod.example", Namespace: "team-a", ServiceAccount: "chat"}
	standalone := Expected{TrustDomain: "prod.example", Namespace: "team-a"}
	cases := []struct {
		name string
		want Expected
		id   string
		err  string
	}{
		{"the pod's own identity", pod, "spiffe://prod.example/ns/team-a/sa/chat", ""},
		{"another service account", pod, "spiffe://prod.example/ns/team-a/sa/batch", "is not this pod's identity"},
		{"another namespace", pod, "spiffe://prod.example/ns/team-b/sa/chat", "is not this pod's identity"},
		{"another trust domain", pod, "spiffe://evil.example/ns/team-a/sa/chat", `not in trust domain "prod.example"`},
		{"a path that only starts like ours", pod, "spiffe://prod.example/ns/team-a/sa/chat/extra", "is not this pod's identity"},
		{"standalone: any service account of the namespace", standalone, "spiffe://prod.example/ns/team-a/sa/batch", ""},
		{"standalone: another namespace", standalone, "spiffe://prod.example/ns/team-ab/sa/x", `does not name namespace "team-a"`},
		{"standalone: empty service account", standalone, "spiffe://prod.example/ns/team-a/sa/", "refused"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, err := spiffeid.FromString(c.id)
			if err != nil {
				// spiffeid refuses some malformed IDs itself (e.g. a trailing slash): a refusal too.
				if c.err == "" {
					t.Fatalf("spiffeid refuses %q: %v", c.id, err)
				}
				return
			}
			err = c.want.Check(id)
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("error = %v, want it to contain %q", err, c.err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	for id, want := range map[string]Expected{
		"spiffe://td/ns/shop/sa/chat":     {TrustDomain: "td", Namespace: "shop", ServiceAccount: "chat"},
		"spiffe://td/ns/shop/sa/chat/x":   {},
		"spiffe://td/ns/shop/chat/sa":     {},
		"spiffe://td/spire/agent/k8s/x/y": {},
	} {
		got, err := Parse(spiffeid.RequireFromString(id))
		if got != want || (want == Expected{}) != (err != nil) {
			t.Errorf("Parse(%s) = %+v, %v; want %+v", id, got, err, want)
		}
		if err == nil && got.String() != id {
			t.Errorf("Parse(%s).String() = %s", id, got.String())
		}
	}
}
