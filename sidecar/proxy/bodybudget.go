package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/claude-guard/claude-guard/sidecar/decide"
)

// RuleCapacity names the proxy's refusal of a request whose body would not fit in the bytes it may
// buffer (503, retryable).
const RuleCapacity = "capacity"

// bodyCopies is how many times a buffered body may be held at once: as read, and as rewritten by the
// decision (a clamp or a model alias builds a new body).
const bodyCopies = 2

// capacityRetryAfter is the Retry-After of a capacity refusal: bodies in flight are forwarded within
// about a second on a healthy upstream.
const capacityRetryAfter = time.Second

// BodyBudget bounds the request bytes all requests of one sidecar hold in memory at once. Each request
// takes its share before its body is read (its Content-Length, or chunk by chunk when the length is not
// known) and gives it back when it is done, so a burst of large requests is refused with a 503 instead
// of growing the heap past the container's memory limit, whose OOM kill would drop every stream and
// every local counter.
//
// It is a counter, not a queue: a request that does not fit is refused at once (the client retries
// after Retry-After), since waiting would hold its connection and still grow memory with goroutines.
type BodyBudget struct {
	capacity int64
	inUse    atomic.Int64
}

// NewBodyBudget returns a budget of capacity bytes (counting bodyCopies per body byte); capacity ≤ 0
// bounds nothing.
func NewBodyBudget(capacity int64) *BodyBudget {
	return &BodyBudget{capacity: capacity}
}

// Capacity is the budget's size in bytes (0: unbounded).
func (b *BodyBudget) Capacity() int64 {
	if b == nil || b.capacity <= 0 {
		return 0
	}
	return b.capacity
}

// InUse is the bytes taken now.
func (b *BodyBudget) InUse() int64 {
	if b == nil {
		return 0
	}
	return b.inUse.Load()
}

// take reserves n body bytes (bodyCopies×n of the budget) and reports whether they fit.
func (b *BodyBudget) take(n int64) bool {
	if b.Capacity() == 0 || n <= 0 {
		return true
	}
	need := n * bodyCopies
	for {
		cur := b.inUse.Load()
		if need > b.capacity-cur {
			return false
		}
		if b.inUse.CompareAndSwap(cur, cur+need) {
			return true
		}
	}
}

// give returns n body bytes taken before.
func (b *BodyBudget) give(n int64) {
	if b.Capacity() == 0 || n <= 0 {
		return
	}
	b.inUse.Add(-n * bodyCopies)
}

// share is one request's part of the budget: what it took so far, given back once by release.
type share struct {
	budget *BodyBudget
	taken  int64
}

func (s *share) take(n int64) bool {
	if !s.budget.take(n) {
		return false
	}
	s.taken += n
	return true
}

func (s *share) release() {
	s.budget.give(s.taken)
	s.taken = 0
}

// budgetReader takes the budget for each chunk it reads, for bodies of unknown length.
type budgetReader struct {
	r     io.Reader
	share *share
}

func (br *budgetReader) Read(p []byte) (int, error) {
	n, err := br.r.Read(p)
	if n > 0 && !br.share.take(int64(n)) {
		return n, errBudgetFull
	}
	return n, err
}

var errBudgetFull = errors.New("the sidecar's request buffer is full")

// overCapacity is the 503 of a body that does not fit now. A body larger than the whole budget can never
// fit: it is not retryable, and the message says what would make it fit.
func overCapacity(b *BodyBudget, n int64) (*decide.Denial, bool) {
	if n*bodyCopies > b.Capacity() {
		return &decide.Denial{Rule: RuleCapacity, Status: http.StatusServiceUnavailable, Type: decide.TypeOverloaded,
			Message: fmt.Sprintf("claude-guard: a request body of %d bytes is more than this sidecar may buffer (%d bytes, from its memory limit): raise the sidecar's memory limit or send a smaller request (rule capacity)", n, b.Capacity()/bodyCopies)}, false
	}
	return &decide.Denial{Rule: RuleCapacity, Status: http.StatusServiceUnavailable, Type: decide.TypeOverloaded,
		Message: "claude-guard: the sidecar is buffering as many request bytes as its memory allows; retry shortly (rule capacity)"}, true
}
