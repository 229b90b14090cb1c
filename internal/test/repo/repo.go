// Package repo locates the repository for the test harnesses: scripts under hack/, the chart, config/.
package repo

import (
	"path/filepath"
	"runtime"
)

// Root is the repository's top directory (found from this file's place in it, so it works from any test
// package's working directory and from commands run with go run).
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}
