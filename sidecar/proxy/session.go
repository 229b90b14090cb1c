package proxy

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/claude-guard/claude-guard/sidecar/decide"
)

// Sessions are first-class: the client's session id is recorded in audit and is the Session limit
// key. It comes from Claude Code's X-Claude-Code-Session-Id header, else from the session an SDK
// puts in metadata.user_id (Claude Code's JSON form {"session_id": …}, or the older
// "…_session_<id>"). The client chooses it: a Session limit stops a runaway session, not a client.

// HeaderSession is the header Claude Code sends its session id in.
const HeaderSession = "X-Claude-Code-Session-Id"

// RuleSession names the refusal of a malformed session header.
const RuleSession = "session"

// maxSessionLen bounds a session id (a UUID is 36 characters).
const maxSessionLen = 128

// WithSession finds the request's session id (after the body was scanned for metadata.user_id).
func WithSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := FromContext(r.Context())
		if v := r.Header.Values(HeaderSession); len(v) > 0 {
			if len(v) > 1 || !validSession(v[0]) {
				ex.refuse(w, &decide.Denial{Rule: RuleSession, Status: http.StatusBadRequest, Type: decide.TypeInvalidRequest,
					Message: "claude-guard: " + HeaderSession + " must be one value of 1 to " + strconv.Itoa(maxSessionLen) + " letters, digits, '.', '_', ':' or '-' (rule session)"}, false, 0)
				return
			}
			ex.Session = v[0]
		} else if s := sessionFromUserID(ex.Decision.Fields.UserID(ex.Body)); validSession(s) {
			ex.Session = s
		}
		next.ServeHTTP(w, r)
	})
}

// sessionFromUserID is the session id in an SDK's metadata.user_id, "" when it has none.
func sessionFromUserID(uid string) string {
	if strings.HasPrefix(uid, "{") {
		var v struct {
			SessionID string `json:"session_id"`
		}
		if json.Unmarshal([]byte(uid), &v) == nil {
			return v.SessionID
		}
		return ""
	}
	if i := strings.LastIndex(uid, "_session_"); i >= 0 {
		return uid[i+len("_session_"):]
	}
	return ""
}

func validSession(s string) bool {
	if s == "" || len(s) > maxSessionLen {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}
