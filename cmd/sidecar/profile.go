//go:build benchprofile

package main

// Profiling for the benchmarks only (docs/performance.md): a binary built with -tags benchprofile and
// run with CLAUDE_GUARD_PROFILE_DIR set writes a CPU profile of its whole life (an idle sidecar adds no
// samples) and an allocation profile into that directory when it stops. Release builds have no
// profiling endpoint or profile output at all.

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
)

func init() {
	dir := os.Getenv("CLAUDE_GUARD_PROFILE_DIR")
	if dir == "" {
		return
	}
	runtime.MemProfileRate = 64 << 10
	f, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sidecar: profile:", err)
		return
	}
	stopProfile = func() {
		pprof.StopCPUProfile()
		_ = f.Close()
		a, err := os.Create(filepath.Join(dir, "allocs.pprof"))
		if err == nil {
			err = pprof.Lookup("allocs").WriteTo(a, 0)
			_ = a.Close()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "sidecar: profile:", err)
		}
	}
}
