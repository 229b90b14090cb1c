package limits

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guard/claude-guard/internal/redisconn"
	"github.com/claude-guard/claude-guard/internal/rediskeys"
	"github.com/claude-guard/claude-guard/internal/redislib"
	"github.com/claude-guard/claude-guard/sidecar/usage"
)

// ErrUnavailable wraps every error of a shared backend that could not be reached (or answered with an
// error). The limiter logs the outage once; callers need not log each request.
var ErrUnavailable = errors.New("the rate limit backend is unavailable")

// Defaults of RedisOptions.
const (
	DefaultRedisTimeout    = 200 * time.Millisecond
	DefaultBreakerInterval = time.Second
	// keyGrace keeps a counter this long after its window ends, so that a sidecar whose clock runs a little
	// behind still finds it.
	keyGrace = time.Minute
)

// RedisOptions configure NewRedis.
type RedisOptions struct {
	// URL is a Redis URL of any topology (internal/redisconn): redis://[user:password@]host:port[/db],
	// redis+cluster:// or redis+sentinel://, with rediss for TLS. go-redis query parameters
	// (dial_timeout, read_timeout, write_timeout, pool_size, ...) override the defaults below.
	URL string
	// Username, when set, is the ACL user to authenticate as, with the password read from PasswordFile
	// (the URL then holds no credentials). The file is read again for every new connection, so a
	// password the kubelet updated in a mounted Secret is used without a restart.
	Username     string
	PasswordFile string
	// Credentials, when set, replace Username and PasswordFile: a go-redis credentials provider, called
	// for every new connection (the operator's credential broker: internal/redisbroker).
	Credentials func(context.Context) (string, string, error)
	// Rules to enforce; SetRules swaps them.
	Rules *Rules
	// Timeout bounds dialing, each read and write, and each whole operation. Default DefaultRedisTimeout.
	Timeout time.Duration
	// BreakerInterval is how long the limiter stops trying Redis after a failure before probing it again.
	// Default DefaultBreakerInterval.
	BreakerInterval time.Duration
	// TLS, when set, is the TLS configuration for rediss:// (ServerName is filled in from the URL). Nil
	// verifies the server against the system roots (SSL_CERT_FILE and SSL_CERT_DIR add CAs).
	TLS *tls.Config
	// Log receives one line when an outage starts and one when it ends.
	Log *slog.Logger
	// OnFailOpen, when set, is called for every operation served locally because Redis is unreachable
	// and the policy fails open (a metric).
	OnFailOpen func(op string)
}

// Redis is the shared Limiter: counters live in Redis, so every sidecar of a namespace (and every
// replica of a gateway) enforces one limit together. Each Reserve, Settle and Refund is one FCALL of a
// function of claude-guard's library (internal/redislib), one round trip. The manager loads the
// library; the limiter only calls it, and a Redis without it counts as unavailable.
//
// When Redis cannot be reached the policy's failure mode applies: FailClosed returns an error wrapping
// ErrUnavailable; FailOpen reserves on a local Memory limiter with the same rules (this sidecar's share
// is then counted here only). A breaker keeps a dead Redis from costing every request a timeout, and the
// first successful probe returns to Redis, without a restart.
type Redis struct {
	client     *redisconn.Client
	addr       string // scheme://host:port, never the credentials
	timeout    time.Duration
	rules      atomic.Pointer[Rules]
	local      *Memory
	br         breaker
	log        *slog.Logger
	onFailOpen func(string)
	failedOpen atomic.Int64 // operations served locally in the current outage
	now        func() time.Time
}

// NewRedis returns a limiter on the Redis at o.URL. It does not connect: the first operation does, and
// an unreachable Redis is handled like any later outage.
func NewRedis(o RedisOptions) (*Redis, error) {
	u, err := redisconn.Parse(o.URL)
	if err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		// The whole call's deadline: the default, or the longest deadline the URL sets (read_timeout
		// and the like), which would otherwise be cut short by it.
		o.Timeout = max(DefaultRedisTimeout, u.Timeouts())
	}
	if o.BreakerInterval <= 0 {
		o.BreakerInterval = DefaultBreakerInterval
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	s := redisconn.Settings{Timeout: o.Timeout, NoRetries: true, TLS: o.TLS}
	if o.Username != "" || o.Credentials != nil {
		if u.HasCredentials() {
			return nil, fmt.Errorf("the Redis URL %s must not hold credentials when a user and password file are given", u)
		}
		s.Credentials = o.Credentials
		if s.Credentials == nil {
			s.Credentials = passwordFile(o.Username, o.PasswordFile)
		}
	}
	quietGoRedis(o.Log)
	rs := o.Rules
	if rs == nil {
		rs = &Rules{}
	}
	l := &Redis{
		client: redisconn.NewClient(u, s), addr: u.String(), timeout: o.Timeout,
		local: NewMemory(rs), br: breaker{interval: o.BreakerInterval},
		log: o.Log, onFailOpen: o.OnFailOpen, now: time.Now,
	}
	l.rules.Store(rs)
	return l, nil
}

// passwordFile returns a go-redis credentials provider that authenticates as user with the password in
// path. It is called for every new connection: a connection refused with WRONGPASS is closed and the
// next one reads the file again, which is how a rotated password (or a user the operator recreated
// after a Redis restart) is picked up.
func passwordFile(user, path string) func(context.Context) (string, string, error) {
	return func(context.Context) (string, string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			// The path is ours (a flag), not a secret; the error never holds the file's content.
			return "", "", fmt.Errorf("failed to read the Redis password file: %w", err)
		}
		pw := strings.TrimSpace(string(b))
		if pw == "" {
			// An optional Secret volume is empty until the operator creates the Secret.
			return "", "", fmt.Errorf("the Redis password file %s is empty", path)
		}
		return user, pw, nil
	}
}

// RedactURL returns scheme://host:port of a Redis URL, without credentials (redisconn.URL.String).
func RedactURL(s string) (string, error) {
	u, err := redisconn.Parse(s)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// Close closes the connections to Redis.
func (l *Redis) Close() error { return l.client.Close() }

// SetRules swaps the rules (on a config reload). Counters live in Redis under keys named after the rules,
// so a rule that keeps its name keeps its counters.
func (l *Redis) SetRules(rs *Rules) {
	l.rules.Store(rs)
	l.local.SetRules(rs)
}

// Up reports whether Redis answered the last call (false during an outage), for a gauge.
func (l *Redis) Up() bool { return l.br.up() }

// Reserve implements Limiter.
func (l *Redis) Reserve(ctx context.Context, r Request) (*Reservation, error) {
	rs := l.rules.Load()
	if rs.Empty() {
		return &Reservation{model: r.Model, rules: rs}, nil
	}
	now := l.now()
	res := &Reservation{model: r.Model, rules: rs, holds: make([]hold, 0, len(rs.rules))}
	keys := make([]string, 0, len(rs.rules))
	args := make([]any, 1, 1+6*len(rs.rules))
	args[0] = "0"
	if r.Force {
		args[0] = "1"
	}
	for i := range rs.rules {
		ru := &rs.rules[i]
		if !r.Phase.in(ru) {
			continue
		}
		start, end := windowStart(ru.window, now)
		h := hold{r: ru, index: i, window: start, end: end, key: rs.bucketKey(ru, r.Keys, start)}
		h.requests, h.amount = rs.holdFor(ru, r)
		res.holds, keys = append(res.holds, h), append(keys, h.key)
		kind := "l" // a Hard budget is checked like a token limit: its hold must fit
		if ru.budget && !ru.hard {
			kind = "b"
		}
		args = append(args, kind, bounded(ru.requests), bounded(ru.amount), h.requests, bounded(h.amount), ttl(end, now))
	}
	if len(res.holds) == 0 {
		return res, nil // no rule takes part in this phase
	}
	var reply []int64
	err := l.do(ctx, "reserve", func(ctx context.Context) error {
		var err error
		reply, err = l.client.FCall(ctx, redislib.Reserve, keys, args...).Int64Slice()
		return err
	})
	if err != nil {
		if !rs.failOpen || !errors.Is(err, ErrUnavailable) {
			return nil, err
		}
		l.servedLocally("reserve")
		res, err := l.local.Reserve(ctx, r)
		if res != nil {
			res.local = true
		}
		return res, err
	}
	if len(reply) != 2+2*len(res.holds) {
		return nil, fmt.Errorf("%w: the reserve function returned %d values for %d rules", ErrUnavailable, len(reply), len(res.holds))
	}
	counts := make([]count, len(rs.rules))
	for i := range counts {
		counts[i].skip = true // unless it took part, below
	}
	for i, h := range res.holds {
		counts[h.index] = count{requests: reply[2+2*i], amount: reply[3+2*i], end: h.end}
	}
	status := statusOf(rs, counts)
	if reply[0] == 0 {
		res.status = status
		return res, nil
	}
	if reply[0] < 1 || reply[0] > int64(len(res.holds)) || reply[1] < 1 || reply[1] > 3 {
		return nil, fmt.Errorf("%w: the reserve function returned rule %d, reason %d", ErrUnavailable, reply[0], reply[1])
	}
	h := res.holds[reply[0]-1]
	what := [...]string{1: whatRequests, 2: whatTokens, 3: whatBudget}[reply[1]]
	if h.r.budget {
		what = whatBudget
	}
	d := denial(h.r, what, h.amount, h.end.Sub(now))
	d.Status = status
	if !r.Force {
		return nil, d
	}
	res.status, res.exceeded = status, d
	return res, nil
}

// Settle implements Limiter.
func (l *Redis) Settle(ctx context.Context, res *Reservation, u usage.Usage) error {
	if res == nil || res.done {
		return nil
	}
	if res.local {
		return l.local.Settle(ctx, res, u)
	}
	res.done = true
	return l.adjust(ctx, "settle", res, func(h hold) (int64, int64) {
		return 0, res.rules.settled(h.r, res.model, u) - h.amount
	})
}

// Refund implements Limiter.
func (l *Redis) Refund(ctx context.Context, res *Reservation) error {
	if res == nil || res.done {
		return nil
	}
	if res.local {
		return l.local.Refund(ctx, res)
	}
	res.done = true
	return l.adjust(ctx, "refund", res, func(h hold) (int64, int64) { return -h.requests, -h.amount })
}

// adjust applies delta to every hold of res whose window has not ended, in one round trip (none when
// nothing changes). A reservation taken on Redis is settled on Redis even when it is down: what it holds
// then stays counted until its window ends (never longer).
func (l *Redis) adjust(ctx context.Context, op string, res *Reservation, delta func(hold) (requests, amount int64)) error {
	now := l.now()
	var keys []string
	var args []any
	for _, h := range res.holds {
		if !now.Before(h.end) {
			continue // the window is over: its counter no longer limits anything
		}
		dr, da := delta(h)
		if dr == 0 && da == 0 {
			continue
		}
		keys = append(keys, h.key)
		args = append(args, dr, bounded(da), ttl(h.end, now))
	}
	if len(keys) == 0 {
		return nil
	}
	return l.do(ctx, op, func(ctx context.Context) error {
		return l.client.FCall(ctx, redislib.Adjust, keys, args...).Err()
	})
}

// Once records key for ttl and reports whether this is the first time it was seen within its ttl: jti
// replay protection shared by every sidecar of the namespace. A ttl beyond redislib.MaxReplayTTL (a
// token valid for more than a year) is cut to it: the function refuses longer ones, so that no key
// lives for ever. When Redis is unreachable the failure mode applies: FailOpen falls back to this
// sidecar's memory (a replay through another sidecar is then not seen), FailClosed returns an error
// wrapping ErrUnavailable.
func (l *Redis) Once(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("replay key TTL must be positive, got %s", ttl)
	}
	ms := strconv.FormatInt(max(1, min(ttl, redislib.MaxReplayTTL).Milliseconds()), 10)
	rs := l.rules.Load()
	var first bool
	err := l.do(ctx, "once", func(ctx context.Context) error {
		n, err := l.client.FCall(ctx, redislib.Once, []string{rs.replayKey(key)}, ms).Int64()
		first = n == 1
		return err
	})
	if err != nil {
		if !rs.failOpen || !errors.Is(err, ErrUnavailable) {
			return false, err
		}
		l.servedLocally("once")
		return l.local.Once(ctx, key, ttl)
	}
	return first, nil
}

// do runs one Redis operation under the breaker and the timeout. Every failure that says something about
// Redis wraps ErrUnavailable and opens the breaker; a caller that went away does neither.
func (l *Redis) do(ctx context.Context, op string, call func(context.Context) error) error {
	ok, probe := l.br.allow(time.Now())
	if !ok {
		return fmt.Errorf("failed to %s: %w (retrying in the background)", op, ErrUnavailable)
	}
	cctx, cancel := context.WithTimeout(ctx, l.timeout)
	err := explain(call(cctx))
	cancel()
	switch {
	case err == nil:
		if ended, outage := l.br.success(time.Now(), probe); ended {
			l.log.Info("Redis rate limit backend is reachable again", "redis", l.addr,
				"outage", outage.Round(time.Millisecond).String(), "servedLocally", l.failedOpen.Swap(0))
		}
		return nil
	case ctx.Err() != nil:
		l.br.abandon(probe)
		return fmt.Errorf("failed to %s on Redis: %w", op, ctx.Err())
	}
	if l.br.failure(time.Now()) {
		mode := "refusing requests (FailClosed)"
		if l.rules.Load().failOpen {
			mode = "counting locally (FailOpen)"
		}
		l.log.Warn("Redis rate limit backend is unavailable; "+mode+" until it answers again", "redis", l.addr,
			"op", op, "error", err.Error(), "probeEvery", l.br.interval.String())
	}
	return fmt.Errorf("failed to %s on Redis %s: %w: %w", op, l.addr, ErrUnavailable, err)
}

// explain says what an error of Redis means when its own words do not: a missing function is a library
// the manager has not loaded (yet, or again after a restart), not a fault of this sidecar.
func explain(err error) error {
	if redislib.IsMissing(err) {
		return fmt.Errorf("%w (Redis does not have claude-guard's function library %s; the manager loads it)", err, redislib.Library)
	}
	return err
}

func (l *Redis) servedLocally(op string) {
	l.failedOpen.Add(1)
	if l.onFailOpen != nil {
		l.onFailOpen(op)
	}
}

// goRedisLog sends go-redis's own log lines (one per failed dial, for example) to slog at debug level:
// the limiter already logs each outage once, with context.
type goRedisLog struct{ log *slog.Logger }

func (g goRedisLog) Printf(ctx context.Context, format string, v ...any) {
	g.log.DebugContext(ctx, "go-redis", "message", fmt.Sprintf(format, v...))
}

var setGoRedisLog sync.Once

// quietGoRedis installs goRedisLog; go-redis has one logger per process, so the first limiter's wins.
func quietGoRedis(log *slog.Logger) {
	setGoRedisLog.Do(func() { redis.SetLogger(goRedisLog{log}) })
}

// bounded keeps an amount (a limit, a hold or a delta) within what the functions accept. No real count
// comes near 2^62; a configured limit above it is the same as one at it.
func bounded(v int64) int64 { return max(-redislib.MaxAmount, min(v, redislib.MaxAmount)) }

// ttl is the Redis TTL, in ms, of a counter whose window ends at end.
func ttl(end, now time.Time) string {
	return strconv.FormatInt(end.Add(keyGrace).Sub(now).Milliseconds(), 10)
}

// Revocations reads namespace's revoked end-user tokens and users, which the operator writes
// (rediskeys.RevocationsKey): the hash's version and, unless it is known, its entries (revocation ID to
// policyconfig.Revocation.SharedValue). A namespace without revocations has version "" and none.
//
// It does not go through the breaker: the limiter's own calls decide whether Redis is up, and a refusal
// of this read (an ACL user of an older operator, without HGET) must not stop the limiter.
func (l *Redis) Revocations(ctx context.Context, namespace, known string) (version string, entries map[string]string, err error) {
	key := rediskeys.RevocationsKey(namespace)
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	version, err = l.client.HGet(ctx, key, rediskeys.RevocationsVersion).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return "", nil, nil
	case err != nil:
		return "", nil, fmt.Errorf("failed to read the revocations of namespace %s on Redis %s: %w", namespace, l.addr, err)
	case version == known:
		return version, nil, nil
	}
	all, err := l.client.HGetAll(ctx, key).Result()
	if err != nil {
		return "", nil, fmt.Errorf("failed to read the revocations of namespace %s on Redis %s: %w", namespace, l.addr, err)
	}
	// The version read with the entries: another write may have come between the two reads.
	version = all[rediskeys.RevocationsVersion]
	delete(all, rediskeys.RevocationsVersion)
	return version, all, nil
}
