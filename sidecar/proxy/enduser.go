package proxy

import (
	"log/slog"
	"net/http"

	"github.com/claude-guard/claude-guard/sidecar/decide"
	"github.com/claude-guard/claude-guard/sidecar/enduser"
)

// TypeAuthentication is the Anthropic error type for a refused credential.
const TypeAuthentication = "authentication_error"

// WithEndUser verifies the end user's token before the body is read, so an unauthenticated caller costs
// no more than a header check. The verified user goes into the Exchange: the decision's scope rules,
// the EndUser limit key and the audit record read it. The token itself goes no further: the forwarder
// strips the header it came in.
//
// auth returns the authenticator for the policy in force, nil when end-user verification is off.
func WithEndUser(auth func() *enduser.Authenticator, log *slog.Logger, next http.Handler) http.Handler {
	if auth == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := FromContext(r.Context())
		a := auth()
		if a == nil || ex.Policy.Config.Deny != nil {
			next.ServeHTTP(w, r)
			return
		}
		p, f := a.Authenticate(r.Context(), r.Header)
		if f != nil && f.Revocation != "" {
			// The audit record says whose token was revoked, and by which revocation.
			ex.Revocation, p = f.Revocation, f.User
			ex.Caller.User = p
		}
		if f != nil {
			dn := &decide.Denial{Rule: f.Rule, Status: f.Status, Type: TypeAuthentication, Message: f.Message,
				Shadow: ex.Policy.Config.ShadowMode}
			if f.Status >= 500 {
				dn.Type = decide.TypeAPI
			}
			if ex.refuse(w, dn, f.Status >= 500, 0) {
				return
			}
			log.Info("Shadow mode: end-user token would have been refused", "rule", f.Rule)
		}
		ex.Caller.User = p
		next.ServeHTTP(w, r)
	})
}

// decisionUser is what the scope rules see of the exchange's end user.
func (ex *Exchange) decisionUser() *decide.User {
	u := ex.Caller.User
	if u == nil {
		return nil
	}
	return &decide.User{Scopes: u.Scopes, Groups: u.Groups}
}

// endUserKey is the EndUser limit key: issuer-qualified, "" without a verified user.
func (ex *Exchange) endUserKey() string {
	if ex.Caller.User == nil {
		return ""
	}
	return ex.Caller.User.Key()
}
