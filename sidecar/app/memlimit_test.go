package app

import (
	"os"
	"path/filepath"
	"testing"
)

// cgroupFiles returns a temporary directory and a function that writes a file of stand-in cgroup
// content into it and returns its path.
func cgroupFiles(t *testing.T) (string, func(name, v string) string) {
	dir := t.TempDir()
	return dir, func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
}

func TestContainerMemoryLimit(t *testing.T) {
	dir, write := cgroupFiles(t)
	cases := []struct {
		name  string
		files []string
		want  int64
	}{
		{"cgroup v2 limit", []string{write("v2", "134217728\n")}, 128 << 20},
		{"cgroup v2 max", []string{write("v2max", "max\n")}, 0},
		{"v1 unlimited", []string{filepath.Join(dir, "absent"), write("v1", "9223372036854771712\n")}, 0},
		{"v1 limit after a missing v2 file", []string{filepath.Join(dir, "absent"), write("v1l", "268435456")}, 256 << 20},
		{"no cgroup file", []string{filepath.Join(dir, "absent")}, 0},
	}
	for _, c := range cases {
		if got := containerMemoryLimit(c.files); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

func TestPlanMemory(t *testing.T) {
	cases := []struct {
		name             string
		limit, flag      int64
		env              string
		wantGo, wantBody int64
	}{
		{"chart's 128Mi sidecar", 128 << 20, -1, "", 128 << 20 / 10 * 9, 64 << 20},
		{"GOMEMLIMIT set by the operator of the pod wins", 128 << 20, -1, "100MiB", 0, 64 << 20},
		{"no limit", 0, -1, "", 0, DefaultBodyBudget},
		{"flag", 128 << 20, 8 << 20, "", 128 << 20 / 10 * 9, 8 << 20},
		{"unbounded on purpose", 128 << 20, 0, "", 128 << 20 / 10 * 9, 0},
	}
	for _, c := range cases {
		p := planMemory(c.limit, c.flag, c.env)
		if p.goMemLimit != c.wantGo || p.bodyBudget != c.wantBody {
			t.Errorf("%s: GOMEMLIMIT %d, body budget %d; want %d, %d", c.name, p.goMemLimit, p.bodyBudget, c.wantGo, c.wantBody)
		}
	}
}
