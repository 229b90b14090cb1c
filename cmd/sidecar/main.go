// Command sidecar is claude-guard's policy-enforcing proxy in front of the Anthropic API. It runs
// injected next to a workload, as a shared gateway, or standalone from a config file:
//
//	sidecar --config config/samples/sidecar-standalone.yaml --api-key-file ~/.anthropic-key
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	// The image has no /etc/ssl (an empty base, docs/images.md): these roots, compiled in, verify
	// api.anthropic.com (and a Vault, OIDC issuer or Redis with a public certificate). Go uses them only
	// when the system has none, so a CA bundle mounted at the usual paths (or SSL_CERT_FILE) still wins.
	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/claude-guard/claude-guard/sidecar/app"
)

func main() {
	var o app.Options
	o.BindFlags(flag.CommandLine)
	flag.Parse()
	o.Complete()
	if err := o.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, &o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
