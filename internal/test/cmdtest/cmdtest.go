// Package cmdtest runs a command's own main in its test binary, so that a test checks what the real
// command line prints (flags, --help, --version) without building the binary separately.
package cmdtest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

const envArgs = "CG_RUN_MAIN"

// Main is the test binary's TestMain: re-run by Run, it runs main with the arguments Run passed, as the
// command name; otherwise it runs the tests.
func Main(m *testing.M, name string, main func()) {
	if args, ok := os.LookupEnv(envArgs); ok {
		os.Args = append([]string{name}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Run runs the command with args (space-separated) and returns its combined output; a failing exit
// fails the test.
func Run(t *testing.T, args string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envArgs+"="+args)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", args, err, out)
	}
	return string(out)
}
