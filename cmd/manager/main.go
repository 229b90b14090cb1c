// Command manager runs the claude-guard controllers (and, from the injection issue on, its webhook).
package main

import (
	"os"

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
