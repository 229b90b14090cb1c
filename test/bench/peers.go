package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// A peer is one path to the fake upstream that the interleaved run measures: direct, through nginx (a
// plain reverse proxy, Debian's), through a bare httputil.ReverseProxy, and through the sidecar. Each
// proxy is its own process, so its CPU time is its own.
type peer struct {
	name string
	url  string
	pid  int // 0 for direct
	stop func()
	// client, when set, replaces the bench's client for this peer (the gateway's TLS and end-user token).
	client *http.Client
}

// clientFor is the client that talks to p.
func (b *bench) clientFor(p peer) *http.Client {
	if p.client != nil {
		return p.client
	}
	return b.client
}

// peerRun is what one peer measured over every round.
type peerRun struct {
	lat, ttfb       []time.Duration
	errs, streamErr int
	cpu, streamCPU  time.Duration // the process's CPU time during the requests, and during the streams
}

// perRequest and perStream are the CPU time per request and per stream sent.
func (r peerRun) perRequest() time.Duration { return r.cpu / time.Duration(max(1, len(r.lat)+r.errs)) }
func (r peerRun) perStream() time.Duration {
	return r.streamCPU / time.Duration(max(1, len(r.ttfb)+r.streamErr))
}

// peers measures every peer in turn, round after round (so noise from the host spreads over all of
// them alike), at o.peerRate requests per second and o.peerStreamRate streams per second, and returns
// the sidecar's figures as ratios to nginx's.
func (b *bench) peers(ctx context.Context) ([]figure, error) {
	o := b.o
	ng, err := startNginx(o.nginx, b.upURL)
	if err != nil {
		return nil, err
	}
	defer ng.stop()
	bare, err := startBareProxy(b.upURL)
	if err != nil {
		return nil, err
	}
	defer bare.stop()
	all := []peer{{name: "direct", url: b.upURL}, *ng, *bare, {name: "sidecar", url: b.sc.url, pid: b.sc.cmd.Process.Pid}}
	vars := o.variants
	if o.otelcol != "" {
		col, stop, err := startCollector(o.otelcol)
		if err != nil {
			return nil, err
		}
		defer stop()
		vars = append(vars, collectorVariants(col)...)
	}
	for _, v := range vars {
		bin, env := o.sidecar, v.env
		if rest, ok := strings.CutPrefix(env[0], "BIN="); ok { // another build of the sidecar
			bin, env = rest, env[1:]
		}
		sc, err := startSidecar(ctx, bin, b.upURL, o.procs, env)
		if err != nil {
			return nil, fmt.Errorf("variant %s: %w", v.name, err)
		}
		defer sc.stop()
		all = append(all, peer{name: "sidecar " + v.name, url: sc.url, pid: sc.cmd.Process.Pid})
	}
	if o.gateway {
		gw, err := startGatewayPeer(ctx, o.sidecar, b.upURL, o.procs, b.client)
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		defer gw.stop()
		all = append(all, *gw)
	}
	runs := make([]peerRun, len(all))
	slice := o.duration / time.Duration(o.rounds)
	for i := range all {
		paced(ctx, b.clientFor(all[i]), all[i].url, o.peerRate, min(slice, time.Second)) // warm connections and caches
	}
	for range o.rounds {
		for i, p := range all {
			r := &runs[i]
			cpu0 := procCPU(p.pid)
			lat, errs := paced(ctx, b.clientFor(p), p.url, o.peerRate, slice)
			cpu1 := procCPU(p.pid)
			st, serr := ttfb(ctx, b.clientFor(p), p.url, int(float64(o.peerStreamRate)*slice.Seconds()), o.peerStreamRate)
			r.cpu, r.streamCPU = r.cpu+cpu1-cpu0, r.streamCPU+procCPU(p.pid)-cpu1
			r.lat, r.ttfb = append(r.lat, lat...), append(r.ttfb, st...)
			r.errs, r.streamErr = r.errs+errs, r.streamErr+serr
		}
	}
	for i, r := range runs {
		if len(r.lat) == 0 || len(r.ttfb) == 0 {
			return nil, fmt.Errorf("the interleaved run completed no request or no stream through %s", all[i].name)
		}
	}
	printPeers(all, runs, o)
	byName := runsByName(all, runs)
	return append(append(peerFigures(runs, o), telemetryFigures(byName)...), gatewayFigures(byName)...), nil
}

// runsByName maps each peer's name to what it measured.
func runsByName(all []peer, runs []peerRun) map[string]*peerRun {
	byName := make(map[string]*peerRun, len(all))
	for i := range all {
		byName[all[i].name] = &runs[i]
	}
	return byName
}

// printPeers prints each peer's latencies, what it adds to direct, and its CPU per request and stream.
func printPeers(all []peer, runs []peerRun, o options) {
	fmt.Printf("-- interleaved run: %d rounds of %s per peer, %d req/s (2 KB) then %d streams/s; host load average %s\n",
		o.rounds, o.duration/time.Duration(o.rounds), o.peerRate, o.peerStreamRate, loadavg())
	fmt.Printf("   %-16s %8s %8s %9s %9s %9s %9s %9s %9s %7s %7s %s\n", "peer", "p50", "p99", "added50", "added99",
		"TTFB p50", "TTFB p99", "added50", "added99", "CPU/req", "CPU/str", "errors (requests/streams)")
	d := runs[0]
	for i, r := range runs {
		cpu, scpu := "-", "-"
		if all[i].pid != 0 {
			cpu, scpu = us(r.perRequest()), us(r.perStream())
		}
		fmt.Printf("   %-16s %8s %8s %9s %9s %9s %9s %9s %9s %7s %7s %d/%d\n", all[i].name, us(pct(r.lat, 50)), us(pct(r.lat, 99)),
			us(pct(r.lat, 50)-pct(d.lat, 50)), us(pct(r.lat, 99)-pct(d.lat, 99)), us(pct(r.ttfb, 50)), us(pct(r.ttfb, 99)),
			us(pct(r.ttfb, 50)-pct(d.ttfb, 50)), us(pct(r.ttfb, 99)-pct(d.ttfb, 99)), cpu, scpu, r.errs, r.streamErr)
	}
	for _, p := range all {
		if e := firstError(p.url); e != "" {
			fmt.Printf("   first error through %s: %s\n", p.name, e)
		}
	}
}

// peerFigures are the sidecar's figures against its targets: CPU per proxied call, and the latency it
// adds as a ratio to what nginx adds in the same run.
func peerFigures(runs []peerRun, o options) []figure {
	d, ng, sc := runs[0], runs[1], runs[3]
	return []figure{
		{Name: "sidecar CPU per request (full policy, audit, metrics)", Value: float64(sc.perRequest()) / 1e3, Unit: "µs", Target: 120,
			Note: fmt.Sprintf("nginx %s, bare Go ReverseProxy %s per request; per stream: sidecar %s, nginx %s, Go ReverseProxy %s",
				us(ng.perRequest()), us(runs[2].perRequest()), us(sc.perStream()), us(ng.perStream()), us(runs[2].perStream()))},
		addedRatio(fmt.Sprintf("added latency p50 @ %d req/s, × nginx's", o.peerRate), sc.lat, ng.lat, d.lat, 50, 2),
		addedRatio(fmt.Sprintf("added latency p99 @ %d req/s, × nginx's", o.peerRate), sc.lat, ng.lat, d.lat, 99, 3),
		addedRatio(fmt.Sprintf("added TTFB p50 @ %d streams/s, × nginx's", o.peerStreamRate), sc.ttfb, ng.ttfb, d.ttfb, 50, 2),
		addedRatio(fmt.Sprintf("added TTFB p99 @ %d streams/s, × nginx's", o.peerStreamRate), sc.ttfb, ng.ttfb, d.ttfb, 99, 3),
		{Name: "sidecar errors and cut streams in the interleaved run", Value: float64(sc.errs + sc.streamErr), Unit: "", Target: 0},
	}
}

// addedRatio is what the sidecar adds to direct at percentile p, as a multiple of what nginx adds. What
// nginx adds at a p99 is often within the host's noise (a few µs, or below zero when its rounds were the
// calm ones); a tail cannot be faster than the median, so what nginx adds at p is taken as at least what
// it adds at the median (and at least 10 µs), and the note says when that applied.
func addedRatio(name string, sc, ng, direct []time.Duration, p, target float64) figure {
	added, base := pct(sc, p)-pct(direct, p), pct(ng, p)-pct(direct, p)
	f := figure{Name: name, Unit: "×", Target: target,
		Note: fmt.Sprintf("the sidecar adds %s, nginx %s", us(added), us(base))}
	if floor := max(pct(ng, 50)-pct(direct, 50), 10*time.Microsecond); base < floor {
		base = floor
		f.Note += fmt.Sprintf(" (below nginx's median hop: the ratio is to %s)", us(floor))
	}
	f.Value = float64(added) / float64(base)
	return f
}

// startNginx runs nginx (Debian's, hack/nginx.sh) as a plain reverse proxy to upstream: one worker, no
// master process (so its CPU time is one process's), keepalive to the upstream, no response buffering
// (streams pass as they come), no access log (the sidecar's audit log is part of what it is measured
// with; nginx's access log is not part of a plain proxy's job here).
func startNginx(bin, upstream string) (*peer, error) {
	dir, err := os.MkdirTemp("", "claude-guard-bench-nginx-")
	if err != nil {
		return nil, err
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	up, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
error_log %[1]s/error.log warn;
pid %[1]s/nginx.pid;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream up { server %[2]s; keepalive 512; }
  server {
    listen %[3]s;
    client_max_body_size 32m;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`, dir, up.Host, listen)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log"))
	cmd.Env = []string{"LD_LIBRARY_PATH=" + filepath.Join(filepath.Dir(bin), "..", "lib")}
	return startPeer("nginx", cmd, listen, dir)
}

// startBareProxy runs this binary again as a bare httputil.ReverseProxy to upstream (serveBareProxy).
func startBareProxy(upstream string) (*peer, error) {
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-bare-proxy", listen, "-bare-proxy-upstream", upstream)
	return startPeer("Go ReverseProxy", cmd, listen, "")
}

// startPeer starts a proxy process and waits until it accepts connections.
func startPeer(name string, cmd *exec.Cmd, listen, dir string) (*peer, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start %s: %w", name, err)
	}
	var exitErr error
	exited := make(chan struct{})
	go func() { exitErr = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
		if log := strings.TrimSpace(out.String()); log != "" {
			lines := strings.Split(log, "\n")
			fmt.Printf("   %s logged %d lines, the first: %.300s\n", name, len(lines), lines[0])
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", listen); err == nil {
			_ = c.Close()
			return &peer{name: name, url: "http://" + listen, pid: cmd.Process.Pid, stop: stop}, nil
		}
		select {
		case <-exited:
			stop()
			return nil, fmt.Errorf("%s exited before it listened: %w: %s", name, exitErr, out.String())
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("%s did not listen on %s within 10s: %s", name, listen, out.String())
		}
	}
}

// serveBareProxy is the -bare-proxy mode: httputil.ReverseProxy with Go's default server and a
// transport that keeps enough idle connections for the load (the defaults keep 2 per host), streaming
// responses as they come. It is what a Go proxy costs before any policy.
func serveBareProxy(listen, upstream string) error {
	up, err := url.Parse(upstream)
	if err != nil {
		return err
	}
	rp := httputil.NewSingleHostReverseProxy(up)
	rp.Transport = &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}
	rp.FlushInterval = -1
	srv := &http.Server{Addr: listen, Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
