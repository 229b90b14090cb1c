package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// KubectlCLI runs the kubectl that matches the test control plane against an Env, as a cluster admin.
type KubectlCLI struct {
	Path       string
	Kubeconfig string
}

// KubectlCLI writes an admin kubeconfig to dir and returns a runner for it.
func (e *Env) KubectlCLI(dir string) (*KubectlCLI, error) {
	kc, err := e.KubeconfigFile(dir)
	if err != nil {
		return nil, err
	}
	path, err := Kubectl()
	if err != nil {
		return nil, err
	}
	return &KubectlCLI{Path: path, Kubeconfig: kc}, nil
}

// Run runs kubectl with stdin ("" for none) and returns its combined output.
func (k *KubectlCLI) Run(stdin string, args ...string) (string, error) {
	cmd := exec.Command(k.Path, append([]string{"--kubeconfig", k.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Shell runs a shell script (a docs block, repo.DocBlock) with bash -euo pipefail, this kubectl first on
// PATH and KUBECONFIG pointing at the Env, as a reader of the docs would run it.
func (k *KubectlCLI) Shell(script string) (string, error) {
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(k.Path)+":"+os.Getenv("PATH"), "KUBECONFIG="+k.Kubeconfig)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
