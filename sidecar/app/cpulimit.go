package app

import (
	"log/slog"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// cgroupCPUFiles are where a container's CPU limit is read from: cgroup v2's cpu.max ("quota period" or
// "max period"), then v1's quota and period files.
var cgroupCPUFiles = cpuFiles{v2: "/sys/fs/cgroup/cpu.max", v1Quota: "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", v1Period: "/sys/fs/cgroup/cpu/cpu.cfs_period_us"}

type cpuFiles struct{ v2, v1Quota, v1Period string }

// containerCPULimit is the CPU limit of the sidecar's cgroup in CPUs (0.5 for "500m"), or 0 when none is
// set or none is readable.
func containerCPULimit(f cpuFiles) float64 {
	if b, err := os.ReadFile(f.v2); err == nil {
		fields := strings.Fields(string(b))
		if len(fields) != 2 {
			return 0
		}
		return ratio(fields[0], fields[1])
	}
	q, errq := os.ReadFile(f.v1Quota)
	p, errp := os.ReadFile(f.v1Period)
	if errq != nil || errp != nil {
		return 0
	}
	return ratio(strings.TrimSpace(string(q)), strings.TrimSpace(string(p)))
}

// ratio is quota/period, or 0 when the quota is "max" or -1 (no limit) or either is not a number.
func ratio(quota, period string) float64 {
	q, err1 := strconv.ParseInt(quota, 10, 64)
	p, err2 := strconv.ParseInt(period, 10, 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0
	}
	return float64(q) / float64(p)
}

// planProcs is the GOMAXPROCS the sidecar sets, or 0 to keep the runtime's choice (current). The runtime
// follows a CPU limit already, rounded up but never below 2; the sidecar goes down to 1 for a limit of
// one CPU or less, and to maxProcs when that is set and lower. One P costs a proxy less CPU per request
// than two at the request rates a sidecar sees: with two, a request that wakes a goroutine also wakes an
// idle thread to run it (docs/performance.md has the figures). GOMAXPROCS in the environment always
// wins.
func planProcs(limit float64, maxProcs, current int, env string) int {
	if env != "" {
		return 0
	}
	n := current
	if limit > 0 {
		n = min(n, int(math.Ceil(limit)))
	}
	if maxProcs > 0 {
		n = min(n, maxProcs)
	}
	if n == current {
		return 0
	}
	return n
}

// applyProcs sets GOMAXPROCS from the container's CPU limit and --max-procs when the plan says to, and
// logs the result. Setting it stops the runtime from following later changes of the limit (an in-place
// resize), so it is set only when it lowers the runtime's choice; a resize then needs a restart.
func applyProcs(limit float64, maxProcs int, log *slog.Logger) {
	if n := planProcs(limit, maxProcs, runtime.GOMAXPROCS(0), os.Getenv("GOMAXPROCS")); n > 0 {
		runtime.GOMAXPROCS(n)
	}
	log.Info("CPU plan", "containerLimit", limit, "maxProcs", maxProcs, "gomaxprocs", runtime.GOMAXPROCS(0))
}
