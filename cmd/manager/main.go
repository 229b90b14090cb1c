// Command manager runs the claude-guard controllers (and, from the injection issue on, its webhook).
package main

import (
	"os"

	// The image has no /etc/ssl (an empty base, docs/images.md): these roots, compiled in, verify a
	// rediss:// Redis with a public certificate (the Kubernetes API has its own CA). Go uses them only when
	// the system has none, so a CA bundle mounted at the usual paths (or SSL_CERT_FILE) still wins.
	_ "golang.org/x/crypto/x509roots/fallback"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/claude-guard/claude-guard/internal/managerapp"
)

func main() {
	opts := managerapp.NewOptions()
	opts.BindFlags()
	if err := opts.Validate(); err != nil {
		ctrl.Log.Error(err, "Invalid options")
		os.Exit(2)
	}
	if err := managerapp.Run(ctrl.SetupSignalHandler(), opts); err != nil {
		ctrl.Log.Error(err, "Manager exited with an error")
		os.Exit(1)
	}
}
