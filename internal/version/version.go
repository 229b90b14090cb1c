// Package version says what a binary was built from. It reads the build information the Go toolchain
// embeds (the main module's version and the VCS revision of the checkout) or, in the images, which are
// built without a VCS stamp, the release and revision the image build sets.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Info is what a binary was built from.
type Info struct {
	// Version is the main module's version: a tag, a pseudo-version, or "(devel)".
	Version string
	// Commit is the VCS revision, "unknown" when the build had none; Modified marks uncommitted changes.
	Commit   string
	Modified bool
	Go       string
	Platform string
}

// release and revision are set by the image build (internal/imagebuild, -ldflags -X), which builds
// without a VCS stamp so that a binary depends on the tree only; they win over the build information.
var release, revision string

// Get reads the running binary's build information.
func Get() Info {
	i := Info{Version: "(devel)", Commit: "unknown", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		i.fromBuildInfo(bi)
	}
	if release != "" {
		i.Version = release
	}
	if revision != "" {
		i.Commit, i.Modified = strings.CutSuffix(revision, "-dirty")
	}
	return i
}

func (i *Info) fromBuildInfo(bi *debug.BuildInfo) {
	if v := bi.Main.Version; v != "" {
		i.Version = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Commit = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		}
	}
}

// String is the line --version prints for binary (e.g. "claude-guard sidecar").
func (i Info) String(binary string) string {
	commit := i.Commit
	if i.Modified {
		commit += " (modified)"
	}
	return fmt.Sprintf("%s %s, commit %s, %s %s", binary, i.Version, commit, i.Go, i.Platform)
}
