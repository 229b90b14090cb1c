package app

import (
	"path/filepath"
	"testing"
)

func TestContainerCPULimit(t *testing.T) {
	dir, write := cgroupFiles(t)
	absent := filepath.Join(dir, "absent")
	cases := []struct {
		name  string
		files cpuFiles
		want  float64
	}{
		{"cgroup v2 500m", cpuFiles{v2: write("v2", "50000 100000\n")}, 0.5},
		{"cgroup v2 2.5 CPUs", cpuFiles{v2: write("v2b", "250000 100000\n")}, 2.5},
		{"cgroup v2 max", cpuFiles{v2: write("v2max", "max 100000\n")}, 0},
		{"cgroup v2 garbage", cpuFiles{v2: write("v2bad", "100000\n")}, 0},
		{"v1 limit", cpuFiles{v2: absent, v1Quota: write("q", "200000\n"), v1Period: write("p", "100000\n")}, 2},
		{"v1 unlimited", cpuFiles{v2: absent, v1Quota: write("qu", "-1\n"), v1Period: write("pu", "100000\n")}, 0},
		{"no cgroup file", cpuFiles{v2: absent, v1Quota: absent, v1Period: absent}, 0},
	}
	for _, c := range cases {
		if got := containerCPULimit(c.files); got != c.want {
			t.Errorf("%s: containerCPULimit = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestPlanProcs(t *testing.T) {
	cases := []struct {
		name     string
		limit    float64
		maxProcs int
		current  int
		env      string
		want     int
	}{
		{"500m on a node where the runtime chose 2", 0.5, 0, 2, "", 1},
		{"exactly one CPU", 1, 0, 2, "", 1},
		{"1.5 CPUs: the runtime's 2 is right", 1.5, 0, 2, "", 0},
		{"no limit, no cap", 0, 0, 8, "", 0},
		{"no limit, --max-procs 1 (injected)", 0, 1, 8, "", 1},
		{"a cap above the limit", 0.5, 4, 2, "", 1},
		{"a cap above what the runtime chose", 0, 16, 8, "", 0},
		{"GOMAXPROCS set by the operator wins", 0.5, 1, 4, "4", 0},
		{"a limit above what the runtime chose", 16, 0, 8, "", 0},
	}
	for _, c := range cases {
		if got := planProcs(c.limit, c.maxProcs, c.current, c.env); got != c.want {
			t.Errorf("%s: planProcs = %d, want %d", c.name, got, c.want)
		}
	}
}
