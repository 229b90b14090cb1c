// Command bench measures the sidecar's overhead on loopback against the fake Anthropic upstream, in one
// run: added latency at a fixed request rate (direct vs through the sidecar, full policy on), streaming
// time-to-first-byte overhead, RSS with many concurrent streams, and idle RSS. It starts the sidecar
// binary it is given as a child process (so RSS is the sidecar's own) and prints one line per figure
// with its target. Every loop is bounded in count and time, and everything listens on 127.0.0.1.
//
//	go build -o bin/sidecar ./cmd/sidecar && go run ./test/bench -sidecar bin/sidecar
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/internal/test/ports"
)

const key = "sk-ant-bench-key"

// The full policy: model allow/deny, a ceiling, limits large enough never to refuse, audit and metrics.
const benchConfig = `apiVersion: sidecar.claudeguard.io/v1
kind: SidecarConfig
policy: {namespace: bench, name: bench}
credentials: {env: {name: CLAUDE_GUARD_API_KEY}}
models:
  allow: ["claude-haiku-*", "claude-sonnet-4-*"]
  deny: ["claude-haiku-3*"]
  aliases: {fast: claude-haiku-4-5}
  maxTokens: [{model: "claude-*", limit: 8192, action: Clamp}]
limits:
  rules:
  - {name: rpm, key: Workload, window: Minute, requests: 100000000}
  - {name: tpm, key: Workload, window: Minute, tokens: 1000000000000, tokenType: Total}
  - {name: ns-out, key: Namespace, window: Hour, tokens: 1000000000000, tokenType: Output}
`

type options struct {
	sidecar     string
	rate        int
	procs       int
	lowRate     int
	duration    time.Duration
	streams     int
	streamRate  int
	concurrent  int
	jsonOut     string
	maxDuration time.Duration
	// The interleaved run against nginx and a bare Go proxy (peers.go).
	nginx          string
	peerRate       int
	peerStreamRate int
	rounds         int
	peersOnly      bool
	variants       variants
	// gateway adds the sidecar in gateway mode (TLS, end-user JWTs) to the interleaved run.
	gateway bool
	// otelcol is hack/otelcol.sh's directory: the interleaved run adds a sidecar exporting OTLP to it.
	otelcol string
}

// variants are extra sidecars in the interleaved run, each the same binary with more environment
// (GOMAXPROCS=1, GOGC=200, ...), so settings are compared in one run rather than across runs.
type variants []variant

type variant struct {
	name string
	env  []string
}

func (v *variants) String() string { return fmt.Sprint(*v) }

// Set parses "name=KEY=VALUE[,KEY=VALUE...]".
func (v *variants) Set(s string) error {
	name, env, ok := strings.Cut(s, "=")
	if !ok || name == "" || !strings.Contains(env, "=") {
		return fmt.Errorf("variant %q: want name=KEY=VALUE[,KEY=VALUE...]", s)
	}
	*v = append(*v, variant{name: name, env: strings.Split(env, ",")})
	return nil
}

func main() {
	var o options
	flag.StringVar(&o.sidecar, "sidecar", "bin/sidecar", "sidecar binary")
	flag.IntVar(&o.rate, "rate", 2000, "requests per second for the latency test")
	flag.IntVar(&o.procs, "sidecar-max-procs", 1, "the sidecar's --max-procs (1: as the chart injects it; 0: follow the CPU limit, here the host's CPUs)")
	flag.IntVar(&o.lowRate, "low-rate", 200, "a second, diagnostic latency run at this rate (0 skips it): shows the hop's cost without CPU saturation")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of each latency phase")
	flag.IntVar(&o.streams, "streams", 1000, "streams for the TTFB test")
	flag.IntVar(&o.streamRate, "stream-rate", 200, "streams per second for the TTFB test")
	flag.IntVar(&o.concurrent, "concurrent", 1000, "concurrent streams for the RSS test")
	flag.StringVar(&o.jsonOut, "json", "", "also write the figures as JSON to this file")
	flag.DurationVar(&o.maxDuration, "timeout", 5*time.Minute, "abort the whole run after this long")
	flag.StringVar(&o.nginx, "nginx", "", "nginx binary (hack/nginx.sh): run nginx and a bare Go ReverseProxy beside the sidecar, interleaved, and print the sidecar's figures as ratios to nginx's (empty: skip)")
	flag.IntVar(&o.peerRate, "peer-rate", 500, "requests per second per peer in the interleaved run")
	flag.IntVar(&o.peerStreamRate, "peer-stream-rate", 500, "streams per second per peer in the interleaved run")
	flag.IntVar(&o.rounds, "rounds", 8, "rounds of the interleaved run (each peer gets -duration/rounds per round)")
	flag.Var(&o.variants, "variant", "an extra sidecar in the interleaved run: name=KEY=VALUE[,KEY=VALUE...] (its environment on top of the sidecar's; a first BIN=path runs another build; repeatable)")
	flag.BoolVar(&o.gateway, "gateway", false, "add the sidecar in gateway mode (TLS from the client, a verified end-user JWT on every call) to the interleaved run")
	flag.StringVar(&o.otelcol, "otelcol", "", "directory of the otelcol binary (hack/otelcol.sh): the interleaved run adds a sidecar exporting metrics and spans over OTLP to a real collector and prints what that costs (empty: skip)")
	flag.BoolVar(&o.peersOnly, "peers-only", false, "run only the interleaved run (needs -nginx)")
	bareListen := flag.String("bare-proxy", "", "internal: serve a bare httputil.ReverseProxy on this address (the interleaved run starts this binary so)")
	bareUpstream := flag.String("bare-proxy-upstream", "", "internal: the bare proxy's upstream")
	flag.Parse()
	if *bareListen != "" {
		if err := serveBareProxy(*bareListen, *bareUpstream); err != nil {
			fmt.Fprintln(os.Stderr, "bench: bare proxy:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// figure is one measured value and its target (lower is better).
type figure struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Target float64 `json:"target"`
	Note   string  `json:"note,omitempty"`
}

func (f figure) met() bool { return f.Value <= f.Target }

func run(o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.maxDuration)
	defer cancel()
	upURL, stopUpstream, err := startUpstream()
	if err != nil {
		return err
	}
	defer stopUpstream()
	sc, err := startSidecar(ctx, o.sidecar, upURL, o.procs, nil)
	if err != nil {
		return err
	}
	defer sc.stop()
	b := &bench{o: o, upURL: upURL, sc: sc,
		client: &http.Client{Transport: &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: time.Minute,
			ResponseHeaderTimeout: 30 * time.Second, DisableCompression: true}, Timeout: time.Minute}}

	// Idle RSS: started, ready, one request served, then left alone.
	if _, err := call(ctx, b.client, sc.url, body2KB, false); err != nil {
		return fmt.Errorf("warm-up request failed: %w", err)
	}
	if o.peersOnly {
		if o.nginx == "" {
			return errors.New("-peers-only needs -nginx")
		}
		figs, err := b.peers(ctx)
		if err != nil {
			return err
		}
		return report(figs, o.jsonOut)
	}
	time.Sleep(2 * time.Second)
	idle := sc.rssMiB()
	figs, err := b.latency(ctx)
	if err != nil {
		return err
	}
	rssLoad := sc.rssMiB()
	figs = append(figs, b.lowRateLatency(ctx)...)
	ttfb, err := b.ttfb(ctx)
	if err != nil {
		return err
	}
	figs = append(figs, ttfb)
	peak, okStreams, err := concurrentStreams(ctx, b.client, sc, o.concurrent)
	if err != nil {
		return err
	}
	figs = append(figs,
		figure{Name: fmt.Sprintf("RSS with %d concurrent streams", o.concurrent), Value: peak, Unit: "MiB", Target: 100,
			Note: fmt.Sprintf("%d/%d streams completed; RSS after the latency test %.1f MiB", okStreams, o.concurrent, rssLoad)},
		figure{Name: "idle RSS", Value: idle, Unit: "MiB", Target: 25},
	)
	if o.nginx != "" {
		pf, err := b.peers(ctx)
		if err != nil {
			return err
		}
		figs = append(figs, pf...)
	}
	return report(figs, o.jsonOut)
}

// bench is one run: the fake upstream's URL, the sidecar in front of it and the client of both.
type bench struct {
	o      options
	upURL  string
	sc     *sidecar
	client *http.Client
}

// startUpstream serves the fake Anthropic API on a loopback port.
func startUpstream() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	up := &http.Server{Handler: fakeupstream.New(key), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	go func() {
		// Serve returns ErrServerClosed after Close; anything else leaves the upstream down and every
		// request failing, which the figures report, so say why here.
		if err := up.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "bench: fake upstream stopped:", err)
		}
	}()
	return "http://" + ln.Addr().String(), func() { _ = up.Close() }, nil
}

// latency measures the latency the sidecar adds at a fixed rate: both paths warmed, then direct and via
// the sidecar in turn, twice, to spread out noise from other load on the host.
func (b *bench) latency(ctx context.Context) ([]figure, error) {
	o := b.o
	warm := min(o.duration, time.Second)
	paced(ctx, b.client, b.upURL, o.rate, warm)
	paced(ctx, b.client, b.sc.url, o.rate, warm)
	var direct, via []time.Duration
	var derr, verr int
	var sidecarCPU time.Duration
	for range 2 {
		d, de := paced(ctx, b.client, b.upURL, o.rate, o.duration/2)
		cpu0 := b.sc.cpu()
		v, ve := paced(ctx, b.client, b.sc.url, o.rate, o.duration/2)
		sidecarCPU += b.sc.cpu() - cpu0
		direct, via = append(direct, d...), append(via, v...)
		derr, verr = derr+de, verr+ve
	}
	if len(direct) == 0 || len(via) == 0 {
		return nil, errors.New("latency test completed no request")
	}
	dp50, dp99 := pct(direct, 50), pct(direct, 99)
	vp50, vp99 := pct(via, 50), pct(via, 99)
	note := fmt.Sprintf("direct p50 %s p99 %s, via sidecar p50 %s p99 %s, %d+%d requests, errors %d/%d; sidecar CPU %s per request; host load average %s",
		us(dp50), us(dp99), us(vp50), us(vp99), len(direct), len(via), derr, verr, us(sidecarCPU/time.Duration(len(via)+verr)), loadavg())
	return []figure{
		{Name: fmt.Sprintf("added latency p50 @ %d req/s, 2 KB", o.rate), Value: float64(vp50-dp50) / 1e3, Unit: "µs", Target: 100, Note: note},
		{Name: fmt.Sprintf("added latency p99 @ %d req/s, 2 KB", o.rate), Value: float64(vp99-dp99) / 1e3, Unit: "µs", Target: 1000},
	}, nil
}

// lowRateLatency is the diagnostic figure at a low rate, when asked for.
func (b *bench) lowRateLatency(ctx context.Context) []figure {
	o := b.o
	if o.lowRate <= 0 {
		return nil
	}
	d, _ := paced(ctx, b.client, b.upURL, o.lowRate, o.duration/2)
	v, _ := paced(ctx, b.client, b.sc.url, o.lowRate, o.duration/2)
	if len(d) == 0 || len(v) == 0 {
		return nil
	}
	return []figure{{Name: fmt.Sprintf("(diagnostic) added latency p50 @ %d req/s", o.lowRate), Value: float64(pct(v, 50)-pct(d, 50)) / 1e3, Unit: "µs", Target: 100,
		Note: fmt.Sprintf("direct p50 %s p99 %s, via sidecar p50 %s p99 %s", us(pct(d, 50)), us(pct(d, 99)), us(pct(v, 50)), us(pct(v, 99)))}}
}

// ttfb measures the streaming time to first byte the sidecar adds, direct and via the sidecar in turn.
func (b *bench) ttfb(ctx context.Context) (figure, error) {
	o := b.o
	var dt, vt []time.Duration
	var derr, verr int
	for range 2 {
		d, de := ttfb(ctx, b.client, b.upURL, o.streams/2, o.streamRate)
		v, ve := ttfb(ctx, b.client, b.sc.url, o.streams/2, o.streamRate)
		dt, vt = append(dt, d...), append(vt, v...)
		derr, verr = derr+de, verr+ve
	}
	if len(dt) == 0 || len(vt) == 0 {
		return figure{}, errors.New("TTFB test completed no stream")
	}
	return figure{Name: "streaming TTFB overhead p99", Value: float64(pct(vt, 99)-pct(dt, 99)) / 1e3, Unit: "µs", Target: 1000,
		Note: fmt.Sprintf("direct p50 %s p99 %s, via sidecar p50 %s p99 %s, %d+%d streams, errors %d/%d",
			us(pct(dt, 50)), us(pct(dt, 99)), us(pct(vt, 50)), us(pct(vt, 99)), len(dt), len(vt), derr, verr)}, nil
}

// report prints the figures against their targets and writes them as JSON when asked to.
func report(figs []figure, jsonOut string) error {
	for _, f := range figs {
		status := "MET"
		if !f.met() {
			status = "MISSED"
		}
		fmt.Printf("%-44s %10.1f %-4s target <= %6.0f %-4s  %s\n", f.Name, f.Value, f.Unit, f.Target, f.Unit, status)
		if f.Note != "" {
			fmt.Printf("    %s\n", f.Note)
		}
	}
	if jsonOut == "" {
		return nil
	}
	b, err := json.MarshalIndent(figs, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(jsonOut, b, 0o644)
}

func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d)/1e3) }

func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

var body2KB = func() []byte {
	var b strings.Builder
	b.WriteString(`{"model":"claude-haiku-4-5","max_tokens":1024,"system":"You are a concise assistant.","messages":[{"role":"user","content":"`)
	for b.Len() < 2000 {
		b.WriteString(`Explain how a token bucket differs from a fixed window rate limiter. `)
	}
	b.WriteString(`"}],"metadata":{"user_id":"bench"}}`)
	return []byte(b.String())
}()

var streamBody = []byte(`{"model":"claude-haiku-4-5","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)

// call sends one request and reads the whole response; it returns the latency.
func call(ctx context.Context, c *http.Client, base string, body []byte, slow bool) (time.Duration, error) {
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/messages", strings.NewReader(string(body)))
	req.Header.Set("content-type", "application/json")
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("x-api-key", key)
	if slow {
		req.Header.Set(fakeupstream.ScenarioHeader, fakeupstream.ScenarioSlow)
		req.Header.Set(fakeupstream.DelayHeader, "200ms")
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	return time.Since(start), nil
}

// paced sends requests at a fixed rate for d (open loop: a slow response does not delay the next send)
// and returns the latencies of those that succeeded and the number of failures.
func paced(ctx context.Context, c *http.Client, base string, rate int, d time.Duration) ([]time.Duration, int) {
	n := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, n)
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := call(ctx, c, base, body2KB, false)
			if err != nil {
				failed.Add(1)
				noteError(base, err)
				l = -1
			}
			lat[i] = l
		}()
	}
	wg.Wait()
	out := lat[:0]
	for _, l := range lat {
		if l > 0 {
			out = append(out, l)
		}
	}
	return out, int(failed.Load())
}

// firstErrors holds the first failure seen per target URL, so a run that counts errors also says what
// they were.
var firstErrors sync.Map

func noteError(base string, err error) { firstErrors.LoadOrStore(base, err.Error()) }

// firstError is the first failure recorded for base, "" if none.
func firstError(base string) string {
	v, _ := firstErrors.Load(base)
	s, _ := v.(string)
	return s
}

// ttfb opens n streams at rate per second and returns each one's time to the first body byte.
func ttfb(ctx context.Context, c *http.Client, base string, n, rate int) ([]time.Duration, int) {
	lat := make([]time.Duration, n)
	var failed atomic.Int64
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/messages", strings.NewReader(string(streamBody)))
			req.Header.Set("anthropic-version", "2023-06-01")
			req.Header.Set("x-api-key", key)
			t0 := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				failed.Add(1)
				noteError(base, err)
				return
			}
			defer resp.Body.Close()
			var b [1]byte
			if _, err := io.ReadFull(resp.Body, b[:]); err != nil {
				failed.Add(1)
				noteError(base, fmt.Errorf("status %d, no first byte: %w", resp.StatusCode, err))
				return
			}
			if resp.StatusCode != 200 {
				failed.Add(1)
				noteError(base, fmt.Errorf("status %d", resp.StatusCode))
				return
			}
			ttfb := time.Since(t0)
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				failed.Add(1) // a stream cut short is a failure, however fast it started
				noteError(base, fmt.Errorf("stream cut: %w", err))
				return
			}
			lat[i] = ttfb
		}()
	}
	wg.Wait()
	out := lat[:0]
	for _, l := range lat {
		if l > 0 {
			out = append(out, l)
		}
	}
	return out, int(failed.Load())
}

// concurrentStreams holds n slow streams open through the sidecar at once and samples its RSS.
func concurrentStreams(ctx context.Context, c *http.Client, sc *sidecar, n int) (peakMiB float64, ok int, err error) {
	var wg sync.WaitGroup
	var okN atomic.Int64
	var started sync.WaitGroup
	started.Add(n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			once := sync.OnceFunc(started.Done)
			defer once()
			req, _ := http.NewRequestWithContext(ctx, "POST", sc.url+"/v1/messages", strings.NewReader(string(streamBody)))
			req.Header.Set("anthropic-version", "2023-06-01")
			req.Header.Set(fakeupstream.ScenarioHeader, fakeupstream.ScenarioSlow)
			req.Header.Set(fakeupstream.DelayHeader, "250ms")
			resp, err := c.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			if _, err := br.ReadString('\n'); err != nil {
				return
			}
			once()
			b, err := io.ReadAll(br)
			if err == nil && resp.StatusCode == 200 && strings.Contains(string(b), "message_stop") {
				okN.Add(1)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return peakMiB, int(okN.Load()), nil
		case <-ctx.Done():
			return peakMiB, int(okN.Load()), ctx.Err()
		case <-tick.C:
			peakMiB = max(peakMiB, sc.rssMiB())
		}
	}
}

type sidecar struct {
	cmd  *exec.Cmd
	url  string
	dir  string
	done chan struct{}
	// exit is how the process ended (cmd.Wait's error); read it only after done is closed.
	exit error
}

// freeAddr returns 127.0.0.1:<a free port>.
func freeAddr() (string, error) {
	p, err := ports.Free("127.0.0.1")
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), err
}

// startSidecar starts the sidecar binary in front of upstream with --max-procs maxProcs and env added to
// this process's environment, and waits until it is ready.
func startSidecar(ctx context.Context, bin, upstream string, maxProcs int, env []string) (*sidecar, error) {
	return startSidecarWith(ctx, bin, upstream, maxProcs, env, benchConfig, "http")
}

// startSidecarWith is startSidecar with another config, more flags, and the proxy's URL scheme (https
// when args serve TLS).
func startSidecarWith(ctx context.Context, bin, upstream string, maxProcs int, env []string, config, scheme string, args ...string) (*sidecar, error) {
	dir, err := os.MkdirTemp("", "claude-guard-bench-")
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		return nil, err
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	mlisten, err := freeAddr()
	if err != nil {
		return nil, err
	}
	// Audit records and logs go to a file, as a container runtime would collect them.
	out, err := os.Create(filepath.Join(dir, "sidecar.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"--config", cfg, "--listen", listen, "--metrics-listen", mlisten, "--upstream", upstream,
		"--workload", "bench", "--max-procs", strconv.Itoa(maxProcs)}, args...)...)
	cmd.Env = append(os.Environ(), "CLAUDE_GUARD_API_KEY="+key)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start sidecar %s: %w", bin, err)
	}
	s := &sidecar{cmd: cmd, url: scheme + "://" + listen, dir: dir, done: make(chan struct{})}
	go func() { s.exit = cmd.Wait(); out.Close(); close(s.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + mlisten + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(dir, "sidecar.log"))
			exit := s.exit
			if exit == nil {
				exit = errors.New("exit status 0")
			}
			return nil, fmt.Errorf("sidecar exited before it was ready: %w: %s", exit, log)
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, errors.New("sidecar did not become ready")
		}
	}
}

func (s *sidecar) stop() {
	timeout := 10 * time.Second
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		// Already gone (ErrProcessDone) or not signalable: either way, do not wait for a drain.
		timeout = 0
	}
	select {
	case <-s.done:
	case <-time.After(timeout):
		if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			fmt.Fprintln(os.Stderr, "bench: failed to kill the sidecar:", err)
		}
		<-s.done
	}
	os.RemoveAll(s.dir)
}

// cpu reads the sidecar's user+system CPU time from /proc (clock ticks of 10ms).
func (s *sidecar) cpu() time.Duration { return procCPU(s.cmd.Process.Pid) }

// procCPU reads a process's user+system CPU time, all its threads together, from /proc (clock ticks of
// 10 ms).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which is in parentheses and may contain spaces).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// rssMiB reads the sidecar's resident set size from /proc.
func (s *sidecar) rssMiB() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
