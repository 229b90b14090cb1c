package chartenv

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// Release is an installed release of the chart.
type Release struct {
	Helm      *Helm
	Name      string
	Namespace string
}

// Install runs `helm install` with the chart in this repository and args (--set, -f, ...).
func (r *Release) Install(args ...string) (string, error) {
	return r.Helm.Run(append([]string{"install", r.Name, Chart(), "--namespace", r.Namespace, "--create-namespace"}, args...)...)
}

// Upgrade runs `helm upgrade` with args.
func (r *Release) Upgrade(args ...string) (string, error) {
	return r.Helm.Run(append([]string{"upgrade", r.Name, Chart(), "--namespace", r.Namespace}, args...)...)
}

// Uninstall runs `helm uninstall`.
func (r *Release) Uninstall() (string, error) {
	return r.Helm.Run("uninstall", r.Name, "--namespace", r.Namespace)
}

// Deployment returns the manager Deployment of the release's current manifest.
func (r *Release) Deployment() (*appsv1.Deployment, error) {
	manifest, err := r.Helm.Run("get", "manifest", r.Name, "--namespace", r.Namespace)
	if err != nil {
		return nil, err
	}
	return ManagerDeployment([]byte(manifest))
}

// ManagerDeployment finds the manager's Deployment in a rendered manifest.
func ManagerDeployment(manifest []byte) (*appsv1.Deployment, error) {
	for _, doc := range bytes.Split(manifest, []byte("\n---")) {
		var d appsv1.Deployment
		if err := yaml.Unmarshal(doc, &d); err != nil {
			return nil, fmt.Errorf("failed to parse the release manifest: %w", err)
		}
		if d.Kind == "Deployment" && d.Labels["app.kubernetes.io/component"] == "manager" {
			return &d, nil
		}
	}
	return nil, fmt.Errorf("the manifest holds no manager Deployment")
}

// ManagerArgs returns the arguments of the Deployment's manager container.
func ManagerArgs(d *appsv1.Deployment) ([]string, error) {
	i := slices.IndexFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == "manager" })
	if i < 0 {
		return nil, fmt.Errorf("deployment %s has no container named manager", d.Name)
	}
	return slices.Clone(d.Spec.Template.Spec.Containers[i].Args), nil
}

// Flag returns the value of --name=value in args, and whether it is there.
func Flag(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// Override replaces the values of flags (--name=value) in args, appending those args lacks. What a test
// overrides is only what a pod gets from its node: addresses to bind and where volumes are mounted.
func Override(args []string, flags map[string]string) []string {
	out := slices.Clone(args)
	for _, name := range slices.Sorted(maps.Keys(flags)) {
		i := slices.IndexFunc(out, func(a string) bool { return strings.HasPrefix(a, "--"+name+"=") || a == "--"+name })
		if i < 0 {
			out = append(out, "--"+name+"="+flags[name])
			continue
		}
		out[i] = "--" + name + "=" + flags[name]
	}
	return out
}
