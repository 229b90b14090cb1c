package version

import (
	"runtime"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	i := Info{Version: "v0.3.0", Commit: "0123abcd", Modified: true, Go: "go1.26.8", Platform: "linux/amd64"}
	if got, want := i.String("claude-guard sidecar"), "claude-guard sidecar v0.3.0, commit 0123abcd (modified), go1.26.8 linux/amd64"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if g := Get(); g.Go != runtime.Version() || !strings.Contains(g.Platform, "/") || g.Version == "" || g.Commit == "" {
		t.Fatalf("Get() = %+v", g)
	}
}

// TestImageBuildStamp: the release and revision the image build sets with -X win over the build
// information, and a "-dirty" revision reads as modified.
func TestImageBuildStamp(t *testing.T) {
	defer func(r, v string) { release, revision = r, v }(release, revision)
	release, revision = "0.4.0", "0123abcd-dirty"
	if g := Get(); g.Version != "0.4.0" || g.Commit != "0123abcd" || !g.Modified {
		t.Fatalf("Get() = %+v", g)
	}
}
