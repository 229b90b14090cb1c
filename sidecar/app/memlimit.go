package app

import (
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultBodyBudget is the request bytes the sidecar buffers at once when it finds no memory limit.
const DefaultBodyBudget = 256 << 20

// cgroupMemoryFiles are where a container's memory limit is read from: cgroup v2, then v1.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// containerMemoryLimit is the memory limit of the sidecar's cgroup in bytes, or 0 when none is set
// (cgroup v2 "max", v1's huge "unlimited" value, or no cgroup file readable).
func containerMemoryLimit(files []string) int64 {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || v <= 0 || v >= 1<<62 {
			return 0 // "max", or v1's unlimited (a page-rounded MaxInt64)
		}
		return v
	}
	return 0
}

// memoryPlan is how the sidecar fits in its memory limit: a soft limit for the Go runtime (GOMEMLIMIT,
// so the GC works harder before the kernel kills the container) and the bytes of request bodies it may
// buffer at once (proxy.BodyBudget).
type memoryPlan struct {
	limit      int64 // the container's limit, 0 if none
	goMemLimit int64 // set by the sidecar, 0 if left to GOMEMLIMIT or unlimited
	bodyBudget int64 // 0: unbounded
}

// planMemory derives the plan from the container limit and the --max-buffered-bytes flag (negative:
// half the limit, or DefaultBodyBudget without one; 0: unbounded). GOMEMLIMIT in the environment wins
// over the derived soft limit (90 % of the container's: the rest is the runtime's own and the kernel's
// page cache for the binary).
func planMemory(limit, flag int64, env string) memoryPlan {
	p := memoryPlan{limit: limit, bodyBudget: flag}
	if limit > 0 && env == "" {
		p.goMemLimit = limit / 10 * 9
	}
	if flag < 0 {
		p.bodyBudget = DefaultBodyBudget
		if limit > 0 {
			p.bodyBudget = limit / 2
		}
	}
	return p
}

// applyMemoryPlan sets the runtime's soft limit and says what the sidecar will hold to.
func applyMemoryPlan(p memoryPlan, log *slog.Logger) {
	if p.goMemLimit > 0 {
		debug.SetMemoryLimit(p.goMemLimit)
	}
	log.Info("Memory plan", "containerLimit", p.limit, "goMemLimit", debug.SetMemoryLimit(-1), "bufferedBodyBytes", p.bodyBudget)
}
