#!/usr/bin/env bash
# Runs every sidecar benchmark and prints each figure next to its target (issue 3):
#   1. in-process decision + rewrite cost (go test -bench, -benchmem) for 2 KB and 400 KB bodies, and the
#      end-user token check (cached, and a first RS256 verification);
#   2. the loopback load harness (test/bench) against the fake upstream, sidecar as a child process:
#      added latency p50/p99 at a fixed rate, streaming TTFB overhead p99, RSS with concurrent streams,
#      idle RSS;
#   3. the interleaved run (issue 16): direct, nginx (Debian's, hack/nginx.sh, a plain reverse proxy),
#      a bare Go httputil.ReverseProxy and the sidecar, round after round at the same rates, each
#      proxy's CPU per request from /proc, and the sidecar's figures as ratios to nginx's.
# Everything runs on 127.0.0.1 and every loop is bounded in count and time.
#
# Environment: BENCH_RATE (2000), BENCH_DURATION (6s), BENCH_STREAMS (1000), BENCH_CONCURRENT (1000),
# BENCH_TIME (go test -benchtime, default 2s), BENCH_PEER_RATE (500 req/s), BENCH_PEER_STREAM_RATE
# (500 streams/s), BENCH_ROUNDS (8), BENCH_PEER_DURATION (24s: each peer gets 1/rounds of it per round, for requests and again for streams).
set -euo pipefail
cd "$(dirname "$0")/.."

rate=${BENCH_RATE:-2000}
duration=${BENCH_DURATION:-6s}
streams=${BENCH_STREAMS:-1000}
concurrent=${BENCH_CONCURRENT:-1000}
benchtime=${BENCH_TIME:-2s}
peer_rate=${BENCH_PEER_RATE:-500}
peer_stream_rate=${BENCH_PEER_STREAM_RATE:-500}
rounds=${BENCH_ROUNDS:-8}
nginx=$(hack/nginx.sh)
otelcol=$(hack/otelcol.sh)

mkdir -p bin
go build -o bin/sidecar ./cmd/sidecar
go build -o bin/sidecar-bench ./test/bench

echo "== claude-guard sidecar benchmarks ($(nproc) CPUs, $(go version | cut -d' ' -f3), load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "-- decision + rewrite (go test -bench ./sidecar/decide, -benchmem)"
out=$(go test -run '^$' -bench 'BenchmarkDecide' -benchmem -benchtime "$benchtime" ./sidecar/decide/)
echo "$out" | grep '^Benchmark'
echo "$out" | awk '
  /^BenchmarkDecide2KB-/             { printf "%-44s %10.1f µs   target <= %6d µs   %s  (%s allocs/op)\n", "decision+rewrite 2 KB", $3/1000, 10, ($3/1000 <= 10 ? "MET" : "MISSED"), $(NF-1) }
  /^BenchmarkDecide400KB-/           { printf "%-44s %10.1f µs   target <= %6d µs   %s  (%s allocs/op)\n", "decision+rewrite 400 KB, code conversation", $3/1000, 150, ($3/1000 <= 150 ? "MET" : "MISSED"), $(NF-1) }
  /^BenchmarkDecide400KBProse-/      { printf "%-44s %10.1f µs   target <= %6d µs   %s  (%s allocs/op)\n", "decision+rewrite 400 KB, prose document", $3/1000, 150, ($3/1000 <= 150 ? "MET" : "MISSED"), $(NF-1) }
  /^BenchmarkDecide400KBStructural-/ { printf "%-44s %10.1f µs   (worst case: thousands of tiny messages; no target)\n", "decision+rewrite 400 KB, structural", $3/1000 }'
echo
echo "-- end-user tokens (go test -bench ./sidecar/enduser, -benchmem)"
out=$(go test -run '^$' -bench 'BenchmarkCachedToken|BenchmarkFirstVerification' -benchmem -benchtime "$benchtime" ./sidecar/enduser/)
echo "$out" | grep '^Benchmark'
echo "$out" | awk '
  /^BenchmarkCachedToken-/             { printf "%-44s %10.2f µs   target <= %6d µs   %s  (%s allocs/op)\n", "end-user token, cached", $3/1000, 5, ($3/1000 <= 5 ? "MET" : "MISSED"), $(NF-1) }
  /^BenchmarkFirstVerificationRS256-/  { printf "%-44s %10.1f µs   (reported; no target)  (%s allocs/op)\n", "end-user token, first RS256 verification", $3/1000, $(NF-1) }'
echo
echo "-- proxy hop in process (go test -bench BenchmarkRoundTrip ./sidecar/proxy): direct vs bare reverse proxy vs sidecar"
go test -run '^$' -bench 'BenchmarkRoundTrip' -benchmem -benchtime "$benchtime" ./sidecar/proxy/ | grep '^Benchmark'
echo
echo "-- loopback load harness (test/bench): full policy on (limits, audit, metrics)"
bin/sidecar-bench -sidecar bin/sidecar -rate "$rate" -duration "$duration" -streams "$streams" -concurrent "$concurrent"
echo
echo "-- interleaved run (test/bench -nginx): direct, nginx, bare Go ReverseProxy, sidecar, sidecar exporting OTLP to a collector, gateway with TLS"
bin/sidecar-bench -sidecar bin/sidecar -nginx "$nginx" -otelcol "$otelcol" -gateway -peers-only -peer-rate "$peer_rate" -peer-stream-rate "$peer_stream_rate" \
  -rounds "$rounds" -duration "${BENCH_PEER_DURATION:-24s}"
