// Command bao is the OpenBao server and CLI, built from the Go module proxy for claude-guard's tests
// (hack/openbao.sh). OpenBao's root module has no /v2 suffix, so it can only be required by the
// pseudo-version of its release commit; this wrapper pins it and nothing here touches the operator's go.mod.
package main

import (
	"os"

	"github.com/openbao/openbao/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
