// Package repo locates the repository for the test harnesses: scripts under hack/, the chart, config/.
package repo

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Root is the repository's top directory (found from this file's place in it, so it works from any test
// package's working directory and from commands run with go run).
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// Tool returns $env when set, else the directory hack/<script> prints: the script builds the tool or
// server from the module proxy on first use and caches it, so `go test ./...` works on a fresh clone
// too. The variable is set after the first build, so the test's child processes (and later calls) skip
// the script.
func Tool(env, script string) (string, error) {
	if d := os.Getenv(env); d != "" {
		return d, nil
	}
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(Root(), "hack", script))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/%s failed: %w\n%s", script, err, stderr.String())
	}
	dir := strings.TrimSpace(string(out))
	_ = os.Setenv(env, dir)
	return dir, nil
}
