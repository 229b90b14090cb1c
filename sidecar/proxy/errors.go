package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/claude-guard/claude-guard/sidecar/audit"
	"github.com/claude-guard/claude-guard/sidecar/decide"
)

// WriteError writes an Anthropic-shaped error response originated by the proxy.
func WriteError(w http.ResponseWriter, d *decide.Denial, retryable bool, retryAfter time.Duration) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set(HeaderError, "true")
	if d.Rule != "" {
		h.Set(HeaderRule, d.Rule)
	}
	h.Set(HeaderShouldRetry, strconv.FormatBool(retryable))
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64(math.Ceil(retryAfter.Seconds())), 10))
	}
	id := newRequestID()
	h.Set("request-id", id)
	body := make([]byte, 0, 128+len(d.Message))
	body = append(body, `{"type":"error","error":{"type":`...)
	body = audit.AppendString(body, d.Type)
	body = append(body, `,"message":`...)
	body = audit.AppendString(body, d.Message)
	body = append(body, `},"request_id":"`...)
	body = append(body, id...)
	body = append(body, "\"}\n"...)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(d.Status)
	// A failed write means the client is gone; the status is already recorded and there is no one to tell.
	_, _ = w.Write(body)
}

func newRequestID() string {
	var b [12]byte
	rand.Read(b[:])
	return "req_cg_" + hex.EncodeToString(b[:])
}
