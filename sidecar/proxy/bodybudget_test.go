package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/sidecar/proxy"
)

// bigMessage is a Messages request of about n bytes.
func bigMessage(n int) string {
	return fmt.Sprintf(`{"model":"claude-haiku-4-5","max_tokens":16,"messages":[{"role":"user","content":%q}]}`, strings.Repeat("x", n))
}

// send posts body to the sidecar, hiding its length when chunked (Transfer-Encoding: chunked).
func send(t *testing.T, e *env, body string, chunked bool, delay time.Duration) (reply, string) {
	t.Helper()
	h := map[string]string{}
	if delay > 0 {
		h[fakeupstream.AnswerDelayHeader] = delay.String()
	}
	if chunked {
		// Not a *strings.Reader: net/http cannot tell the length.
		return postFrom(t, e, io.MultiReader(strings.NewReader(body)), h)
	}
	return post(t, e, body, h)
}

// TestBodyBudgetRefusesWhatDoesNotFit: with room for one 300 KB body (and its rewritten copy), a second
// one sent while the first is held upstream is refused with a retryable 503 before it is read; one
// larger than the whole budget is refused as never fitting; once requests finish their share is back.
func TestBodyBudgetRefusesWhatDoesNotFit(t *testing.T) {
	budget := proxy.NewBodyBudget(1 << 20)
	e := newEnv(t, "", func(o *proxy.Options) { o.BodyBudget = budget })
	held := make(chan int, 1)
	go func() {
		res, _ := send(t, e, bigMessage(300_000), false, 700*time.Millisecond)
		held <- res.StatusCode
	}()
	deadline := time.Now().Add(5 * time.Second)
	for budget.InUse() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if budget.InUse() < 600_000 {
		t.Fatalf("in use while the first request is upstream: %d, want its body twice", budget.InUse())
	}
	cases := []struct {
		name      string
		size      int
		chunked   bool
		retryable string
	}{
		{name: "known length, no room now", size: 300_000, retryable: "true"},
		{name: "unknown length, no room now", size: 300_000, chunked: true, retryable: "true"},
		{name: "larger than the whole budget", size: 600_000, retryable: "false"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, body := send(t, e, bigMessage(c.size), c.chunked, 0)
			if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get(proxy.HeaderRule) != proxy.RuleCapacity ||
				res.Header.Get(proxy.HeaderShouldRetry) != c.retryable || !strings.Contains(body, "overloaded_error") {
				t.Fatalf("got %d rule %q retry %q: %s; want 503 rule capacity, x-should-retry %s",
					res.StatusCode, res.Header.Get(proxy.HeaderRule), res.Header.Get(proxy.HeaderShouldRetry), body, c.retryable)
			}
			if got := res.Header.Get("Retry-After"); (c.retryable == "true") != (got == "1") {
				t.Errorf("Retry-After %q", got)
			}
		})
	}
	if got := <-held; got != http.StatusOK {
		t.Fatalf("the held request: %d, want 200", got)
	}
	if budget.InUse() != 0 {
		t.Fatalf("in use after every request finished: %d, want 0", budget.InUse())
	}
	for _, chunked := range []bool{false, true} {
		if res, body := send(t, e, bigMessage(300_000), chunked, 0); res.StatusCode != http.StatusOK {
			t.Fatalf("with room again (chunked %v): %d %s", chunked, res.StatusCode, body)
		}
	}
	if n := len(e.fake.Requests()); n != 3 {
		t.Fatalf("the upstream got %d requests, want the 3 that fit", n)
	}
	if budget.InUse() != 0 {
		t.Fatalf("in use at the end: %d, want 0", budget.InUse())
	}
}
