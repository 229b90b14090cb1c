// Command redisbench measures what the Redis-backed rate limiter adds to a request (`make bench`): it
// starts a local redis-server (Debian's, from hack/redis.sh) and, at a fixed rate in an open loop (a new
// request every 1/rate s, whether or not earlier ones finished):
//
//  1. runs Reserve then Settle on the limiter alone: p50 and p99 of the limiter's time per request, with
//     the in-memory limiter and a bare PING under the same conditions for comparison, and the number of
//     Redis commands each Reserve sent (counted by the server);
//  2. sends Messages requests through the sidecar's handler with the in-memory limiter and with the Redis
//     one (same policy, fake upstream): the difference is what Redis-backed limiting adds for a client;
//  3. runs 1 again on a Redis Cluster of three primaries (internal/test/testservers).
//
// Each figure is printed next to its target. Everything is on 127.0.0.1 and bounded by -duration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/redislib"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
	"github.com/claude-guard/claude-guard/sidecar/limits"
	"github.com/claude-guard/claude-guard/sidecar/usage"
)

func main() {
	rate := flag.Int("rate", 1000, "requests per second")
	duration := flag.Duration("duration", 10*time.Second, "how long each paced run lasts")
	flag.Parse()
	if err := run(*rate, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "redisbench:", err)
		os.Exit(1)
	}
}

// figure is one measured value and its target (lower is better).
type figure struct {
	name   string
	value  float64
	unit   string
	target float64
	note   string
}

func (f figure) String() string {
	if f.target == 0 {
		return fmt.Sprintf("%-44s %10.1f %-4s (diagnostic)%s", f.name, f.value, f.unit, f.note)
	}
	status := "MET"
	if f.value > f.target {
		status = "MISSED"
	}
	return fmt.Sprintf("%-44s %10.1f %-4s target <= %6.0f %-4s  %s%s", f.name, f.value, f.unit, f.target, f.unit, status, f.note)
}

func run(rate int, duration time.Duration) error {
	url, stop, err := startRedis()
	if err != nil {
		return err
	}
	defer stop()
	ctx := context.Background()
	probe := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(url, "redis://")})
	defer probe.Close()
	figs, red, err := backendFigures(ctx, "Redis", url, probe, rate, duration)
	if err != nil {
		return err
	}
	e2e, err := endToEndFigures(ctx, url, rate, duration)
	if err != nil {
		return err
	}
	for _, f := range append(figs, e2e...) {
		fmt.Println(f)
	}
	if red.achieved < 0.95*float64(rate) {
		fmt.Printf("!! achieved %.0f req/s of %d: the machine could not keep the pace\n", red.achieved, rate)
	}

	// The same on a Redis Cluster of three primaries (testservers, as in the integration suite): the
	// namespace's hash tag puts every counter of a request on one primary, so a request still costs
	// one round trip each way.
	cluster, err := testservers.LaunchRedisCluster(ctx, testservers.RedisClusterOptions{})
	if err != nil {
		return err
	}
	defer cluster.Close()
	cprobe := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cluster.Addrs, MaxRetries: -1})
	defer cprobe.Close()
	figs, red, err = backendFigures(ctx, "Cluster", cluster.URL, cprobe, rate, duration)
	if err != nil {
		return err
	}
	for _, f := range figs {
		fmt.Println(f)
	}
	if red.achieved < 0.95*float64(rate) {
		fmt.Printf("!! achieved %.0f req/s of %d: the machine could not keep the pace\n", red.achieved, rate)
	}
	return nil
}

// backendFigures measures the Redis limiter on the Redis at url (probe reaches the same servers).
func backendFigures(ctx context.Context, label, url string, probe redis.UniversalClient, rate int, duration time.Duration) ([]figure, result, error) {
	rs, err := limits.Compile(benchConfig())
	if err != nil {
		return nil, result{}, err
	}
	// Production settings: the default 200 ms timeouts and 1 s breaker.
	rl, err := limits.NewRedis(limits.RedisOptions{URL: url, Rules: rs, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, result{}, err
	}
	defer rl.Close()
	return limiterFigures(ctx, label, rl, limits.NewMemory(rs), probe, rate, duration)
}

// limiterFigures measures Reserve+Settle on the Redis limiter against the Memory one and two bare
// round trips, and counts the functions each request calls.
func limiterFigures(ctx context.Context, label string, rl *limits.Redis, mem limits.Limiter, probe redis.UniversalClient, rate int, duration time.Duration) ([]figure, result, error) {
	// Warm up the connections.
	for range 200 {
		r, err := rl.Reserve(ctx, request(0))
		if err != nil {
			return nil, result{}, fmt.Errorf("warm-up: %w", err)
		}
		if err := rl.Settle(ctx, r, usage.Usage{InputTokens: 800, OutputTokens: 300}); err != nil {
			return nil, result{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	// The floor under the same load: two bare round trips (PING) paced like Reserve+Settle.
	ping := paced(rate, duration, func(int) (time.Duration, error) {
		t0 := time.Now()
		if err := probe.Ping(ctx).Err(); err != nil {
			return 0, err
		}
		return time.Since(t0), probe.Ping(ctx).Err()
	})
	m := pacedLimiter(ctx, mem, rate, duration)
	before, err := fcallCalls(ctx, probe)
	if err != nil {
		return nil, result{}, err
	}
	red := pacedLimiter(ctx, rl, rate, duration)
	after, err := fcallCalls(ctx, probe)
	if err != nil {
		return nil, result{}, err
	}
	perReserve := float64(after-before-int64(red.n)) / float64(red.n) // each request is one Reserve and one Settle
	if red.errors > 0 {
		fmt.Printf("!! %d of %d Redis-backed requests failed (timeouts or errors)\n", red.errors, red.n)
	}
	note := fmt.Sprintf("  (Memory: p50 %.1f µs, p99 %.1f µs; two bare PINGs paced alike: p50 %.1f µs, p99 %.1f µs)",
		us(pct(m.total, 50)), us(pct(m.total, 99)), us(pct(ping.total, 50)), us(pct(ping.total, 99)))
	return []figure{
		{name: fmt.Sprintf("%s Reserve+Settle p50 @ %d req/s", label, rate), value: us(pct(red.total, 50)), unit: "µs", target: 500, note: note},
		{name: fmt.Sprintf("%s Reserve+Settle p99 @ %d req/s", label, rate), value: us(pct(red.total, 99)), unit: "µs", target: 2000},
		{name: fmt.Sprintf("%s Reserve (before forwarding) p99 @ %d", label, rate), value: us(pct(red.reserve, 99)), unit: "µs", target: 1000},
		{name: label + " round trips per Reserve", value: perReserve, unit: "", target: 1,
			note: fmt.Sprintf("  (%d FCALL for %d Reserve+Settle pairs)", after-before, red.n)},
	}, red, nil
}

// endToEndFigures compares Redis and Memory through the sidecar. Diagnostic only: the load generator,
// two sidecar handlers, the fake upstream and Redis share this machine's cores, so the tail says as
// much about the host as about Redis. test/bench measures the proxy's own overhead with targets.
func endToEndFigures(ctx context.Context, url string, rate int, duration time.Duration) ([]figure, error) {
	mp, rp, errs, err := endToEnd(ctx, url, rate, duration)
	if err != nil {
		return nil, err
	}
	if errs > 0 {
		fmt.Printf("!! %d end-to-end requests failed\n", errs)
	}
	note := fmt.Sprintf("  (through the sidecar: Memory p50 %.0f µs p99 %.0f µs, Redis p50 %.0f µs p99 %.0f µs)",
		us(pct(mp, 50)), us(pct(mp, 99)), us(pct(rp, 50)), us(pct(rp, 99)))
	return []figure{
		{name: fmt.Sprintf("through the sidecar, Redis minus Memory p50 @ %d", rate), value: us(pct(rp, 50) - pct(mp, 50)), unit: "µs", note: note},
		{name: fmt.Sprintf("through the sidecar, Redis minus Memory p99 @ %d", rate), value: us(pct(rp, 99) - pct(mp, 99)), unit: "µs"},
	}, nil
}

// benchConfig is a realistic policy: six counters per request (workload, end user, namespace; a tenant
// ceiling; a USD budget), limits high enough that nothing is refused.
func benchConfig() *policyconfig.Config {
	return &policyconfig.Config{
		Policy: policyconfig.PolicyRef{Namespace: "team-a", Name: "chat", Tenant: "acme"},
		Limits: policyconfig.Limits{Rules: []policyconfig.LimitRule{
			{Name: "rpm", Key: "Workload", Window: "Minute", Requests: 1 << 40},
			{Name: "tpm", Key: "Workload", Window: "Minute", Tokens: 1 << 40},
			{Name: "user-tph", Key: "EndUser", Window: "Hour", Tokens: 1 << 40},
			{Name: "ns-rpd", Source: "tenant", Key: "Namespace", Window: "Day", Requests: 1 << 40},
			{Name: "ns-tpd", Source: "tenant", Key: "Namespace", Window: "Day", Tokens: 1 << 40},
		}},
		Budgets: []policyconfig.Budget{{Name: "usd", Key: "Namespace", Window: "Month", USD: "1000000"}},
		Prices:  []policyconfig.Price{{Model: "claude-*", TokenPrices: policyconfig.TokenPrices{InputUSD: "3", OutputUSD: "15"}}},
	}
}

func request(i int) limits.Request {
	return limits.Request{Keys: limits.Keys{Workload: "w", EndUser: "user-" + strconv.Itoa(i%256), Namespace: "team-a"},
		Model: "claude-haiku-4-5", InputTokens: 800, OutputTokens: 1024}
}

// result is one paced run.
type result struct {
	reserve, total []time.Duration
	n, errors      int
	achieved       float64
}

// pacedLimiter runs one Reserve and its Settle every 1/rate for duration.
func pacedLimiter(ctx context.Context, l limits.Limiter, rate int, duration time.Duration) result {
	return paced(rate, duration, func(i int) (time.Duration, error) {
		t0 := time.Now()
		r, err := l.Reserve(ctx, request(i))
		reserved := time.Since(t0)
		if err != nil {
			return reserved, err
		}
		return reserved, l.Settle(ctx, r, usage.Usage{InputTokens: 800, OutputTokens: 300})
	})
}

// paced starts op every 1/rate for duration, each in its own goroutine (an open loop: a slow op does not
// delay the next), and records the time of each op and of its first part.
func paced(rate int, duration time.Duration, op func(i int) (first time.Duration, err error)) result {
	n := int(duration.Seconds() * float64(rate))
	res := result{reserve: make([]time.Duration, n), total: make([]time.Duration, n), n: n}
	var failed atomic.Int64
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			first, err := op(i)
			res.reserve[i], res.total[i] = first, time.Since(t0)
			if err != nil {
				failed.Add(1)
			}
		}()
	}
	res.achieved = float64(n) / time.Since(start).Seconds()
	wg.Wait()
	res.errors = int(failed.Load())
	return res
}

// fcallCalls reads the servers' count of FCALL calls (every primary's, on a cluster): the round trips
// are counted where they arrive.
func fcallCalls(ctx context.Context, c redis.UniversalClient) (int64, error) {
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		return nodeFcallCalls(ctx, c)
	}
	var sum atomic.Int64
	err := cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		v, err := nodeFcallCalls(ctx, n)
		sum.Add(v)
		return err
	})
	return sum.Load(), err
}

func nodeFcallCalls(ctx context.Context, c redis.UniversalClient) (int64, error) {
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_fcall:calls="); ok {
			v, _, _ := strings.Cut(rest, ",")
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, nil // no FCALL yet (a primary of a cluster that holds none of the bench's keys)
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p/100))]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// startRedis runs redis-server on a free loopback port, without persistence, with claude-guard's
// function library loaded, and returns its URL and a function that stops it. The binary comes from $CLAUDE_GUARD_REDIS_DIR or hack/redis.sh.
func startRedis() (string, func(), error) {
	dir := os.Getenv("CLAUDE_GUARD_REDIS_DIR")
	if dir == "" {
		out, err := exec.Command("hack/redis.sh").Output()
		if err != nil {
			return "", nil, fmt.Errorf("failed to fetch redis-server with hack/redis.sh (run from the repository root): %w", err)
		}
		dir = strings.TrimSpace(string(out))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	_ = l.Close()
	tmp, err := os.MkdirTemp("", "cg-redisbench-")
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(filepath.Join(dir, "redis-server"), "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
		"--dir", tmp, "--protected-mode", "no", "--loglevel", "warning")
	cmd.Env = []string{"LD_LIBRARY_PATH=" + filepath.Join(dir, "..", "lib")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("failed to start redis-server: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		_ = os.RemoveAll(tmp)
	}
	url := "redis://127.0.0.1:" + port
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c.Ping(context.Background()).Err() == nil {
			// What the manager does in a deployment: load the function library the limiter calls.
			if _, err := redislib.Ensure(context.Background(), c); err != nil {
				stop()
				return "", nil, err
			}
			return url, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, errors.New("redis-server did not answer PING within 10s")
		}
	}
}
