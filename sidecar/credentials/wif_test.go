package credentials

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type assertionOnly string

func (assertionOnly) ClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return nil, errors.New("unused")
}
func (a assertionOnly) JWT(context.Context, string) (string, error) { return string(a), nil }

func TestWIFExchange(t *testing.T) {
	const assertion = "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl"
	cases := []struct {
		name    string
		status  int
		body    string
		wantErr string
	}{
		{"token", 200, `{"access_token":"tok-1","token_type":"Bearer","expires_in":600}`, ""},
		{"refusal never echoes the assertion", 401, `{"error":"invalid_grant","assertion":"` + assertion + `"}`, "the token endpoint answered 401"},
		{"no access token", 200, `{"token_type":"Bearer","expires_in":600}`, "no access_token"},
		{"not a bearer token", 200, `{"access_token":"x","token_type":"mac","expires_in":600}`, `token_type "mac"`},
		{"no expiry", 200, `{"access_token":"x","token_type":"Bearer"}`, "no positive expires_in"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got = string(b) + " beta=" + r.Header.Get("anthropic-beta")
				w.WriteHeader(c.status)
				_, _ = io.WriteString(w, c.body)
			}))
			defer srv.Close()
			w, err := NewWIF(WIFOptions{TokenURL: srv.URL, Audience: "anthropic", FederationRuleID: "fdrl_1", OrganizationID: "org_1", Identity: assertionOnly(assertion)})
			if err != nil {
				t.Fatal(err)
			}
			err = w.exchange(context.Background())
			if !strings.Contains(got, `"grant_type":"urn:ietf:params:oauth:grant-type:jwt-bearer"`) || !strings.Contains(got, `"federation_rule_id":"fdrl_1"`) ||
				!strings.Contains(got, "beta="+OAuthBeta+",oidc-federation-2026-04-01") {
				t.Errorf("token request = %s", got)
			}
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tok, err := w.Get(context.Background()); err != nil || tok != "tok-1" {
					t.Fatalf("Get = %q, %v", tok, err)
				}
				// Within 30 s of expiry the token is no longer handed out.
				w.now = func() time.Time { return time.Now().Add(575 * time.Second) }
				if _, err := w.Get(context.Background()); !errors.Is(err, ErrNoCredential) {
					t.Fatalf("token about to expire was handed out: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error = %v, want %q", err, c.wantErr)
			}
			if strings.Contains(err.Error(), assertion) {
				t.Fatalf("error echoes the assertion: %v", err)
			}
		})
	}
}

// TestWIFFollowsNoRedirect: a token endpoint that redirects (308 would resend the body, the JWT-SVID)
// gets an error back, and the redirect's target never sees a request.
func TestWIFFollowsNoRedirect(t *testing.T) {
	var reached bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
	defer elsewhere.Close()
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/token", http.StatusPermanentRedirect)
	}))
	defer endpoint.Close()
	w, err := NewWIF(WIFOptions{TokenURL: endpoint.URL, Audience: "anthropic", FederationRuleID: "fdrl_1", OrganizationID: "org_1", Identity: assertionOnly("a.b.c")})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.exchange(context.Background()); err == nil || !strings.Contains(err.Error(), "the token endpoint answered 308") {
		t.Fatalf("exchange = %v, want the 308 as an error", err)
	}
	if reached {
		t.Fatal("the redirect was followed: its target received the JWT-SVID")
	}
}
