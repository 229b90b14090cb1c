package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMain runs main itself when the test binary is re-run with CG_RUN_MAIN set: the tests below
// check what the real command line prints.
func TestMain(m *testing.M) {
	if os.Getenv("CG_RUN_MAIN") != "" {
		os.Args = append([]string{"sidecar"}, strings.Fields(os.Getenv("CG_RUN_MAIN"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func run(t *testing.T, args string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "CG_RUN_MAIN="+args)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sidecar %s: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestVersionAndHelp(t *testing.T) {
	if out := run(t, "--version"); !strings.HasPrefix(out, "claude-guard sidecar ") || !strings.Contains(out, ", commit ") || !strings.Contains(out, "go1.") {
		t.Errorf("--version printed %q", out)
	}
	help := run(t, "--help")
	for _, want := range helpWants {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %q:\n%s", want, help)
		}
	}
}

// helpWants: what the help must say: where the docs are, and flags with their defaults.
var helpWants = []string{"docs/sidecar-config.md", "-config string", "-version", "(default 30m0s)", "ANTHROPIC_BASE_URL"}
