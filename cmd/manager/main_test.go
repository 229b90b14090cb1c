package main

import (
	"strings"
	"testing"

	"github.com/claude-guard/claude-guard/internal/test/cmdtest"
)

func TestMain(m *testing.M) { cmdtest.Main(m, "manager", main) }

// TestVersionAndHelp checks what the real command line prints: the version line, and a help that says
// where the docs are and gives flags with their defaults.
func TestVersionAndHelp(t *testing.T) {
	if out := cmdtest.Run(t, "--version"); !strings.HasPrefix(out, "claude-guard manager ") || !strings.Contains(out, ", commit ") || !strings.Contains(out, "go1.") {
		t.Errorf("--version printed %q", out)
	}
	help := cmdtest.Run(t, "--help")
	for _, want := range []string{"docs/install.md", "-no-tenant string", "-version", `(default "Deny")`} {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %q:\n%s", want, help)
		}
	}
}
