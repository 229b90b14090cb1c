// Command chartgen keeps the Helm chart and the kustomize tree in config/ one source (docs/chart.md):
//
//	chartgen rbac -role ROLE.yaml -rules hack/chartgen/rbac.yaml -out charts/claude-guard/templates/_rbac.gen.tpl
//	chartgen kustomize -helm HELM -chart charts/claude-guard -out config
//
// rbac turns controller-gen's rules (from the +kubebuilder:rbac markers) into chart template helpers,
// each rule under the reason it exists. kustomize renders the chart with its default values and writes
// each template's output into config/<template directory>/, so `kubectl apply -k config/default` and
// `helm install` deploy the same objects. `make manifests` runs both; hack/verify.sh fails on drift.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: chartgen rbac|kustomize [flags]")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "rbac":
		err = runRBAC(args)
	case "kustomize":
		err = runKustomize(args)
	default:
		err = fmt.Errorf("unknown command %q (want rbac or kustomize)", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chartgen:", err)
		os.Exit(1)
	}
}

func runRBAC(args []string) error {
	fs := flag.NewFlagSet("rbac", flag.ContinueOnError)
	role := fs.String("role", "", "controller-gen's role.yaml")
	rules := fs.String("rules", "hack/chartgen/rbac.yaml", "why each permission is needed")
	out := fs.String("out", "charts/claude-guard/templates/_rbac.gen.tpl", "template file to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	roleYAML, err := os.ReadFile(*role)
	if err != nil {
		return fmt.Errorf("failed to read controller-gen's rules: %w", err)
	}
	rulesYAML, err := os.ReadFile(*rules)
	if err != nil {
		return fmt.Errorf("failed to read the justifications: %w", err)
	}
	tpl, err := RBACTemplate(roleYAML, rulesYAML, *rules)
	if err != nil {
		return err
	}
	return os.WriteFile(*out, tpl, 0o644)
}

func runKustomize(args []string) error {
	fs := flag.NewFlagSet("kustomize", flag.ContinueOnError)
	helm := fs.String("helm", "", "the helm binary (hack/helm.sh prints it)")
	chart := fs.String("chart", "charts/claude-guard", "the chart")
	out := fs.String("out", "config", "the kustomize tree to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rendered, err := helmTemplate(*helm, *chart)
	if err != nil {
		return err
	}
	files, err := Kustomize(rendered, *chart)
	if err != nil {
		return err
	}
	return writeTree(*out, files)
}
