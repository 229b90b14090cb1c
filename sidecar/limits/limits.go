// Package limits enforces request and token rate limits and budgets.
//
// A request reserves, before it is forwarded, one request and its estimated tokens (estimated input plus
// max_tokens) against every rule; the reservation is checked and taken under one lock, so parallel
// requests can never together exceed a limit by more than what is already reserved. After the response,
// Settle replaces the reservation with the real usage (refunding the difference); Refund returns all of it
// when the request never reached the upstream.
//
// Windows are fixed and aligned to UTC (minute, hour, day, ISO week from Monday, calendar month). A
// reservation that outlives its window is settled against nothing: the old window is gone.
//
// A Soft budget refuses new requests once its window's settled usage has reached it, but a request
// admitted below the cap may finish above it (nothing is reserved against it, so one large max_tokens
// does not block a whole budget). A Hard budget reserves each request's maximum cost like a limit: the
// requests in flight can never together spend past it (docs/limits.md states both bounds).
//
// Two backends implement Limiter with the same behaviour: Memory keeps the counters in this process;
// Redis keeps them in a Redis shared by every sidecar of a namespace (docs/limits.md), with a per-policy
// failure mode for when Redis is unreachable.
package limits

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	"github.com/claude-guard/claude-guard/internal/glob"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/rediskeys"
	"github.com/claude-guard/claude-guard/internal/redislib"
	"github.com/claude-guard/claude-guard/sidecar/usage"
)

// Keys identify who a request is charged to.
type Keys struct {
	Workload  string
	EndUser   string
	Namespace string
	// Session is the client's session id, "" without one; Session rules count it per workload.
	Session string
}

func (k Keys) get(kind string) string {
	var v string
	switch kind {
	case policyconfig.KeyWorkload:
		v = k.Workload
	case policyconfig.KeyEndUser:
		v = k.EndUser
	case policyconfig.KeyNamespace:
		v = k.Namespace
	case policyconfig.KeySession:
		// Scoped by the workload: two workloads never share a session's counter.
		s := k.Session
		if s == "" {
			s = "-"
		}
		return k.Workload + "/" + s
	}
	if v == "" {
		return "-"
	}
	return v
}

// Request is what one call wants to reserve.
type Request struct {
	Keys  Keys
	Model string
	// InputTokens is the estimated input; OutputTokens is max_tokens. Both zero for calls that consume
	// no tokens (count_tokens, models).
	InputTokens  int64
	OutputTokens int64
	// MaxInputTokens bounds the input from above for Hard budgets: the body's length in bytes, since no
	// text tokenizes to more tokens than it has bytes. Zero with InputTokens.
	MaxInputTokens int64
	// Force reserves even when a rule is exceeded (shadow mode): Reserve then returns a Reservation
	// whose Exceeded is the *Denied that would have applied, and no error.
	Force bool
	// Phase splits a request's reservation in two around reading its body (PhaseAll: one reservation).
	Phase Phase
}

// Phase is which part of a request's reservation Reserve takes.
type Phase int

const (
	// PhaseAll reserves everything at once, after the body is read.
	PhaseAll Phase = iota
	// PhaseRequests reserves, before the body is read, one request against every rule whose key is
	// known without the body (all but Session rules), and checks those rules' counters, so a request
	// over its request limit, or whose budget is spent, is refused without buffering its body. It holds
	// no tokens.
	PhaseRequests
	// PhaseTokens reserves, after the body, the rest of a request whose PhaseRequests reservation
	// stands: its tokens (and maximum cost, for Hard budgets), and one request against Session rules.
	PhaseTokens
)

// in reports whether rule ru takes part in phase p: Session rules need the body (the session id may be
// in metadata.user_id), so they wait for PhaseTokens.
func (p Phase) in(ru *rule) bool {
	return p != PhaseRequests || ru.key != policyconfig.KeySession
}

// Denied says which rule refused a request.
type Denied struct {
	// Rule is "<source>/<name>" (e.g. "policy/per-minute").
	Rule string
	// What is "requests", "tokens" or "budget".
	What string
	// RetryAfter is when the window resets.
	RetryAfter time.Duration
	// Never is set when the request alone is larger than the limit: retrying cannot help.
	Never bool
	// Hard is set when a Hard budget refused: the request's maximum cost did not fit in what the spend
	// and the requests in flight left.
	Hard bool
	// Status is the standing of the request's limits (nothing was taken), for the response headers.
	Status Status
}

func (d *Denied) Error() string {
	switch {
	case d.Hard && d.Never:
		return fmt.Sprintf("the request's maximum cost (its input and max_tokens at the model's prices) is more than budget %q allows per window; lower max_tokens", d.Rule)
	case d.Hard:
		return fmt.Sprintf("budget %q has less left than the request's maximum cost (its input and max_tokens at the model's prices; requests in flight hold theirs); a lower max_tokens may fit; window resets in %s",
			d.Rule, d.RetryAfter.Round(time.Second))
	case d.Never:
		return fmt.Sprintf("request needs more %s than limit %q allows per window", d.What, d.Rule)
	}
	return fmt.Sprintf("%s limit %q exceeded; window resets in %s", d.What, d.Rule, d.RetryAfter.Round(time.Second))
}

// CostMicroUSD is what usage u of the reserved request's model costs at the config's prices, in
// micro-USD: 0 without a price (configs carry prices only when they have a USD budget).
func (res *Reservation) CostMicroUSD(u usage.Usage) int64 {
	if res == nil || res.rules == nil {
		return 0
	}
	return res.rules.cost(res.model, u)
}

// Limiter reserves, settles and refunds. Implementations are safe for concurrent use.
type Limiter interface {
	// Reserve takes the request's reservation or returns a *Denied (or a backend error); never both.
	Reserve(ctx context.Context, r Request) (*Reservation, error)
	// Settle replaces the reservation with real usage.
	Settle(ctx context.Context, res *Reservation, u usage.Usage) error
	// Refund returns the whole reservation (the request was never forwarded).
	Refund(ctx context.Context, res *Reservation) error
}

// Reservation is what Reserve took; pass it to exactly one of Settle or Refund, on the limiter that
// returned it.
type Reservation struct {
	model  string
	rules  *Rules
	holds  []hold
	status Status
	// exceeded is the rule a forced reservation went past.
	exceeded *Denied
	// local is set when a Redis limiter took the reservation on its local fallback (fail-open): it is
	// settled there too.
	local bool
	done  bool
}

// Status returns the most constraining request and token quotas as they stood when the reservation was
// taken (for the x-claude-guard-ratelimit-* response headers).
func (r *Reservation) Status() Status {
	if r == nil {
		return Status{}
	}
	return r.status
}

// Exceeded is the rule a forced reservation (Request.Force) went past, nil when every rule had room.
func (r *Reservation) Exceeded() *Denied {
	if r == nil {
		return nil
	}
	return r.exceeded
}

// hold is what a reservation took from one rule's counter in one window.
type hold struct {
	b        *bucket // Memory
	key      string  // Redis
	r        *rule
	index    int // of r in its Rules
	window   time.Time
	end      time.Time
	requests int64
	amount   int64
}

// rule is a compiled limit or budget.
type rule struct {
	id string // source/name
	// scope names the rule in Redis keys: who set it (the policy's or the tenant's name, so two policies
	// with a rule of the same name never share a counter, while a tenant's rules are shared by every
	// policy of the namespace), whether it is a limit or a budget, and its name; each part escaped.
	scope     string
	key       string
	window    string
	requests  int64
	amount    int64 // tokens, or micro-USD for USD budgets
	tokenType string
	budget    bool
	// hard is set for a Hard budget, which holds a request's maximum cost and refuses one that would
	// not fit, like a token limit.
	hard bool
	usd  bool
}

// price is what one model glob costs: per million tokens of each tier, in micro-USD, and per thousand
// web searches.
type price struct {
	model                     string
	standard, batch, priority tierPrice
	webSearchPer1000          int64
}

// tierPrice is micro-USD per million tokens of each kind.
type tierPrice struct {
	input, output, cacheRead, cacheWrite5m, cacheWrite1h int64
}

// Rules compiles the limit rules and budgets of a config.
type Rules struct {
	rules  []rule
	prices []price
	// keyPrefix starts every Redis key of this config with the namespace as hash tag: all the counters
	// one request touches live in one Redis Cluster slot, so one function can check and take them
	// atomically.
	keyPrefix string
	// failOpen admits requests (counted locally) when a shared backend is unreachable.
	failOpen bool
}

// Compile turns a config's limits, budgets and prices into Rules.
func Compile(c *policyconfig.Config) (*Rules, error) {
	ns := c.Identity.Namespace
	if ns == "" {
		ns = c.Policy.Namespace
	}
	rs := &Rules{keyPrefix: NamespaceKeyPrefix(ns), failOpen: c.Limits.FailureMode == policyconfig.FailOpen}
	for _, l := range c.Limits.Rules {
		rs.rules = append(rs.rules, rule{id: ruleID(l.Source, l.Name), scope: ruleScope(c.Policy, l.Source, rediskeys.KindLimit, l.Name),
			key: l.Key, window: l.Window, requests: l.Requests, amount: l.Tokens, tokenType: l.TokenType})
	}
	for _, b := range c.Budgets {
		r := rule{id: ruleID(b.Source, "budget-"+b.Name), scope: ruleScope(c.Policy, b.Source, rediskeys.KindBudget, b.Name),
			key: b.Key, window: b.Window, amount: b.Tokens, tokenType: b.TokenType, budget: true,
			hard: b.Enforcement == policyconfig.EnforcementHard}
		if b.USD != "" {
			v, err := microUSD(b.USD)
			if err != nil {
				return nil, fmt.Errorf("failed to compile budget %q: %w", b.Name, err)
			}
			r.amount, r.usd = v, true
		}
		rs.rules = append(rs.rules, r)
	}
	for _, p := range c.Prices {
		pr, err := compilePrice(p)
		if err != nil {
			return nil, fmt.Errorf("failed to compile price for %q: %w", p.Model, err)
		}
		rs.prices = append(rs.prices, pr)
	}
	if len(rs.rules) > redislib.MaxKeys {
		// The Redis functions take at most that many counters per call (the CRDs allow far fewer).
		return nil, fmt.Errorf("%d limit rules and budgets, at most %d are supported", len(rs.rules), redislib.MaxKeys)
	}
	return rs, nil
}

// Empty reports whether there is nothing to enforce.
func (rs *Rules) Empty() bool { return rs == nil || len(rs.rules) == 0 }

func ruleID(source, name string) string {
	if source == "" {
		source = policyconfig.SourcePolicy
	}
	return source + "/" + name
}

func microUSD(s string) (int64, error) {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, fmt.Errorf("invalid decimal %q", s)
	}
	r.Mul(r, big.NewRat(1_000_000, 1))
	f, _ := r.Float64()
	if f > math.MaxInt64/2 {
		return 0, fmt.Errorf("amount %q is too large", s)
	}
	return int64(math.Round(f)), nil
}

// What a rule can refuse: the values of Denied.What.
const (
	whatRequests = "requests"
	whatTokens   = "tokens"
	whatBudget   = "budget"
)

// holdFor is what a request reserves against ru: one request and its estimated tokens for a limit; its
// maximum cost for a Hard budget; nothing for a Soft budget (checked against settled usage only).
func (rs *Rules) holdFor(ru *rule, r Request) (requests, amount int64) {
	switch {
	case r.Phase == PhaseRequests:
		if ru.requests > 0 {
			return 1, 0
		}
		return 0, 0
	case ru.budget && !ru.hard:
		return 0, 0
	case ru.usd:
		return 0, rs.maxCost(r.Model, r.MaxInputTokens, r.OutputTokens)
	case ru.budget:
		return 0, ru.tokens(usage.Usage{InputTokens: r.MaxInputTokens, OutputTokens: r.OutputTokens})
	}
	// After PhaseRequests, only Session rules still need the request.
	if ru.requests > 0 && (r.Phase != PhaseTokens || ru.key == policyconfig.KeySession) {
		requests = 1
	}
	if ru.amount > 0 {
		switch ru.tokenType {
		case policyconfig.TokensInput:
			amount = clampAmount(r.InputTokens)
		case policyconfig.TokensOutput:
			amount = clampAmount(r.OutputTokens)
		default:
			amount = addAmounts(r.InputTokens, r.OutputTokens)
		}
	}
	return requests, amount
}

// check returns what ru refuses when a hold of (hr, ha) is added to its counters (requests, amount), or
// "" when it fits. The Redis backend's reserve function (cg_v1_reserve in internal/redislib) is the same
// check in Lua.
func check(ru *rule, requests, amount, hr, ha int64) string {
	switch {
	case ru.budget && ru.hard:
		if amount+ha > ru.amount {
			return whatBudget
		}
	case ru.budget:
		if amount >= ru.amount {
			return whatBudget
		}
	case ru.requests > 0 && requests+hr > ru.requests:
		return whatRequests
	case ru.amount > 0 && amount+ha > ru.amount:
		return whatTokens
	}
	return ""
}

// denial builds the *Denied for rule ru refusing with what; a hold larger than the whole limit or Hard
// budget can never fit.
func denial(ru *rule, what string, ha int64, retry time.Duration) *Denied {
	hard := what == whatBudget && ru.hard
	return &Denied{Rule: ru.id, What: what, RetryAfter: retry, Never: (what == whatTokens || hard) && ha > ru.amount, Hard: hard}
}

// settled is what a settled reservation counts against ru for usage u of model.
func (rs *Rules) settled(ru *rule, model string, u usage.Usage) int64 {
	switch {
	case ru.usd:
		return rs.cost(model, u)
	case ru.budget || ru.amount > 0:
		return ru.tokens(u)
	}
	return 0
}

// tokens returns the amount of u a rule counts.
func (r *rule) tokens(u usage.Usage) int64 {
	in := addAmounts(u.InputTokens, u.CacheCreationInputTokens, u.CacheReadInputTokens)
	switch r.tokenType {
	case policyconfig.TokensInput:
		return in
	case policyconfig.TokensOutput:
		return clampAmount(u.OutputTokens)
	default:
		return addAmounts(in, u.OutputTokens)
	}
}

// cost returns the micro-USD cost of u for model (0 when no price matches: the operator admits a USD
// budget only when every allowed model is priced).
func (rs *Rules) cost(model string, u usage.Usage) int64 {
	if p := rs.priceOf(model); p != nil {
		return p.cost(u)
	}
	return 0
}

// priceOf returns the first price whose glob matches model, or nil.
func (rs *Rules) priceOf(model string) *price {
	for i := range rs.prices {
		if p := &rs.prices[i]; glob.Match(p.model, model) {
			return p
		}
	}
	return nil
}

// cost prices u at the tier its service_tier names. Cache writes the response does not split by
// lifetime are priced as 5-minute writes, the API's default.
func (p *price) cost(u usage.Usage) int64 {
	t := &p.standard
	switch u.ServiceTier {
	case policyconfig.TierBatch:
		t = &p.batch
	case policyconfig.TierPriority:
		t = &p.priority
	}
	w5, w1 := clampAmount(u.CacheCreation5m), clampAmount(u.CacheCreation1h)
	unsplit := max(clampAmount(u.CacheCreationInputTokens)-w5-w1, 0)
	return costMicroUSD([2]int64{u.InputTokens, t.input}, [2]int64{u.OutputTokens, t.output},
		[2]int64{u.CacheReadInputTokens, t.cacheRead}, [2]int64{addAmounts(w5, unsplit), t.cacheWrite5m},
		[2]int64{w1, t.cacheWrite1h}, [2]int64{u.WebSearchRequests, p.webSearchPer1000 * 1000})
}

// windowStart returns the start of the window containing t and when it ends (rediskeys.Window: the
// operator computes the same windows to read budgets' counters).
func windowStart(window string, t time.Time) (start, end time.Time) {
	return rediskeys.Window(window, t)
}

// Describe lists the rule IDs, for logs.
func (rs *Rules) Describe() string {
	ids := make([]string, len(rs.rules))
	for i, r := range rs.rules {
		ids[i] = r.id
	}
	return strings.Join(ids, ",")
}
