// Command manager runs the claude-guard controllers (and, from the injection issue on, its webhook).
package main

import (
	"flag"
	"fmt"
	"os"

	// The image has no /etc/ssl (an empty base, docs/images.md): these roots, compiled in, verify a
	// rediss:// Redis with a public certificate (the Kubernetes API has its own CA). Go uses them only when
	// the system has none, so a CA bundle mounted at the usual paths (or SSL_CERT_FILE) still wins.
	_ "golang.org/x/crypto/x509roots/fallback"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/claude-guard/claude-guard/internal/managerapp"
	"github.com/claude-guard/claude-guard/internal/version"
)

const usage = `claude-guard manager: the controllers (ClaudeAccessPolicy, ClaudeTenant, per-namespace Redis
users, SPIFFE registration) and the sidecar injection webhook.

It runs in the cluster, installed by the Helm chart (charts/claude-guard), which sets these flags from
its values: docs/install.md lists each value, docs/chart.md how the chart is built.

Flags:
`

func main() {
	opts := managerapp.NewOptions()
	showVersion := flag.Bool("version", false, "print the version, commit and Go version, then exit")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	opts.BindFlags()
	if *showVersion {
		fmt.Println(version.Get().String("claude-guard manager"))
		return
	}
	if err := opts.Validate(); err != nil {
		ctrl.Log.Error(err, "Invalid options")
		os.Exit(2)
	}
	if err := managerapp.Run(ctrl.SetupSignalHandler(), opts); err != nil {
		ctrl.Log.Error(err, "Manager exited with an error")
		os.Exit(1)
	}
}
