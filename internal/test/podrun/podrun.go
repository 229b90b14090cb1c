// Package podrun runs one container of a pod, exactly as the API server stored it, as a local process:
// the part of a kubelet that tests and the demo need until a real kubelet is available. It resolves the
// container's environment (values, $(VAR) references, downward-API fields, Secret and ConfigMap keys),
// materializes its ConfigMap and Secret volumes under a scratch root, expands $(VAR) in command and
// args, starts the process, and waits for its startup probe.
//
// Two things differ from a kubelet, by necessity: the image is replaced by a local binary (looked up by
// the container's command), and mount paths are placed under Root, so every occurrence of a mount path in
// args and env values is rewritten to its place under Root. Nothing else is taken from anywhere but the
// stored pod and the objects it references.
package podrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Runner starts containers of stored pods.
type Runner struct {
	// Client reads the ConfigMaps and Secrets the pod references.
	Client client.Reader
	// Root is the scratch directory volumes are materialized under.
	Root string
	// Binaries maps a container's command[0] to the local binary that stands in for its image.
	Binaries map[string]string
	// Output receives the process's stdout and stderr.
	Output io.Writer
	// CSI stands in for CSI drivers: called with the mount's directory under Root for a volume of that
	// driver (e.g. the SPIFFE CSI driver places the Workload API socket there).
	CSI map[string]func(dir string) error
	// Tokens, when set, issues service-account tokens for projected serviceAccountToken volumes, as the
	// kubelet does with the TokenRequest API.
	Tokens func(ctx context.Context, namespace, serviceAccount, audience string, expirationSeconds int64) (string, error)
}

// Process is a running container.
type Process struct {
	Cmd       *exec.Cmd
	Container corev1.Container
	// Args and Env are what the process was started with, after resolution and path rewriting.
	Args []string
	Env  []string
	done chan error

	stopOnce sync.Once
	stopErr  error
	unlock   func()
}

// Stop interrupts the process and waits for it to exit. It may be called more than once.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() {
		_ = p.Cmd.Process.Signal(os.Interrupt)
		select {
		case p.stopErr = <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.Cmd.Process.Kill()
			p.stopErr = <-p.done
		}
		p.unlock()
	})
	return p.stopErr
}

// Start runs container name of pod and waits until its startup probe (if any) succeeds.
func (r *Runner) Start(ctx context.Context, pod *corev1.Pod, name string) (*Process, error) {
	c, err := container(pod, name)
	if err != nil {
		return nil, err
	}
	bin, ok := r.Binaries[firstOr(c.Command)]
	if !ok {
		return nil, fmt.Errorf("no local binary stands in for command %q of container %s", firstOr(c.Command), name)
	}
	if err := r.materialize(ctx, pod, c); err != nil {
		return nil, err
	}
	env, err := r.environment(ctx, pod, c)
	if err != nil {
		return nil, err
	}
	vars := map[string]string{}
	for _, e := range env {
		vars[e.Name] = e.Value
	}
	var args []string
	for _, a := range append(append([]string{}, c.Command[1:]...), c.Args...) {
		args = append(args, r.rewrite(c, expand(a, vars)))
	}
	// A pod's ports are fixed by its spec, so two runners (say, two test packages running in parallel)
	// would collide on them: hold a machine-wide lock per port while the process lives.
	unlock, err := lockPorts(ctx, c)
	if err != nil {
		return nil, err
	}
	p := &Process{Container: c, Args: args, done: make(chan error, 1), unlock: unlock}
	for _, e := range env {
		p.Env = append(p.Env, e.Name+"="+r.rewrite(c, e.Value))
	}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + r.Root}, p.Env...)
	p.Cmd.Stdout, p.Cmd.Stderr = r.Output, r.Output
	if err := p.Cmd.Start(); err != nil {
		unlock()
		return nil, fmt.Errorf("failed to start container %s: %w", name, err)
	}
	go func() { p.done <- p.Cmd.Wait() }()
	if err := waitStartup(ctx, c, p.done); err != nil {
		_ = p.Stop()
		return nil, err
	}
	return p, nil
}

// portRE finds the ports a container listens on from "--...=host:port" style arguments and its ports.
var portRE = regexp.MustCompile(`:(\d{2,5})$`)

// lockPorts takes an exclusive lock file per port the container uses (declared ports and host:port
// arguments), waiting for other holders, and returns the function that releases them.
func lockPorts(ctx context.Context, c corev1.Container) (func(), error) {
	ports := map[string]bool{}
	for _, p := range c.Ports {
		ports[fmt.Sprint(p.ContainerPort)] = true
	}
	for _, a := range c.Args {
		if m := portRE.FindStringSubmatch(a); m != nil {
			ports[m[1]] = true
		}
	}
	names := make([]string, 0, len(ports))
	for p := range ports {
		names = append(names, p)
	}
	sort.Strings(names) // a fixed order avoids deadlocks between runners
	var files []*os.File
	release := func() {
		for _, f := range files {
			_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			_ = f.Close()
		}
	}
	for _, p := range names {
		f, err := os.OpenFile(filepath.Join(os.TempDir(), "claude-guard-podrun-port-"+p+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			release()
			return nil, err
		}
		files = append(files, f)
		for syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			select {
			case <-ctx.Done():
				release()
				return nil, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return release, nil
}

func container(pod *corev1.Pod, name string) (corev1.Container, error) {
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if c.Name == name {
			return c, nil
		}
	}
	return corev1.Container{}, fmt.Errorf("pod %s/%s has no container %s", pod.Namespace, pod.Name, name)
}

func firstOr(cmd []string) string {
	if len(cmd) == 0 {
		return ""
	}
	return cmd[0]
}

// materialize writes the container's ConfigMap, Secret and projected service-account token volumes under
// Root and hands CSI volumes to the stand-in drivers; other volume types (host paths) become empty
// directories.
func (r *Runner) materialize(ctx context.Context, pod *corev1.Pod, c corev1.Container) error {
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		vols[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok {
			return fmt.Errorf("container %s mounts unknown volume %s", c.Name, m.Name)
		}
		dir := filepath.Join(r.Root, m.MountPath)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		var data map[string][]byte
		var items []corev1.KeyToPath
		switch {
		case v.ConfigMap != nil:
			cm := &corev1.ConfigMap{}
			if err := r.Client.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: v.ConfigMap.Name}, cm); err != nil {
				return fmt.Errorf("failed to read ConfigMap %s for volume %s: %w", v.ConfigMap.Name, m.Name, err)
			}
			data, items = map[string][]byte{}, v.ConfigMap.Items
			for k, s := range cm.Data {
				data[k] = []byte(s)
			}
		case v.Projected != nil:
			if err := r.project(ctx, pod, v.Projected, dir); err != nil {
				return fmt.Errorf("projected volume %s: %w", m.Name, err)
			}
			continue
		case v.CSI != nil:
			if f, ok := r.CSI[v.CSI.Driver]; ok {
				if err := f(dir); err != nil {
					return fmt.Errorf("CSI driver %s for volume %s: %w", v.CSI.Driver, m.Name, err)
				}
			}
			continue
		case v.Secret != nil:
			s := &corev1.Secret{}
			if err := r.Client.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: v.Secret.SecretName}, s); err != nil {
				return fmt.Errorf("failed to read Secret %s for volume %s: %w", v.Secret.SecretName, m.Name, err)
			}
			data, items = s.Data, v.Secret.Items
		default:
			continue
		}
		if len(items) == 0 {
			for k := range data {
				items = append(items, corev1.KeyToPath{Key: k, Path: k})
			}
		}
		for _, it := range items {
			b, ok := data[it.Key]
			if !ok {
				return fmt.Errorf("volume %s: key %s not found", m.Name, it.Key)
			}
			if err := os.WriteFile(filepath.Join(dir, it.Path), b, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// project writes the service-account tokens of a projected volume (other projections are not needed here).
func (r *Runner) project(ctx context.Context, pod *corev1.Pod, p *corev1.ProjectedVolumeSource, dir string) error {
	for _, src := range p.Sources {
		sat := src.ServiceAccountToken
		if sat == nil {
			continue
		}
		if r.Tokens == nil {
			return errors.New("a serviceAccountToken projection needs Runner.Tokens")
		}
		exp := int64(3600)
		if sat.ExpirationSeconds != nil {
			exp = *sat.ExpirationSeconds
		}
		tok, err := r.Tokens(ctx, pod.Namespace, pod.Spec.ServiceAccountName, sat.Audience, exp)
		if err != nil {
			return fmt.Errorf("failed to request a token for service account %s: %w", pod.Spec.ServiceAccountName, err)
		}
		if err := os.WriteFile(filepath.Join(dir, sat.Path), []byte(tok), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// environment resolves the container's env in order, as the kubelet does.
func (r *Runner) environment(ctx context.Context, pod *corev1.Pod, c corev1.Container) ([]corev1.EnvVar, error) {
	vars := map[string]string{}
	var out []corev1.EnvVar
	for _, e := range c.Env {
		val := expand(e.Value, vars)
		if s := e.ValueFrom; s != nil {
			var err error
			if val, err = r.valueFrom(ctx, pod, s); err != nil {
				return nil, fmt.Errorf("env %s of container %s: %w", e.Name, c.Name, err)
			}
		}
		vars[e.Name] = val
		out = append(out, corev1.EnvVar{Name: e.Name, Value: val})
	}
	return out, nil
}

func (r *Runner) valueFrom(ctx context.Context, pod *corev1.Pod, s *corev1.EnvVarSource) (string, error) {
	switch {
	case s.FieldRef != nil:
		switch s.FieldRef.FieldPath {
		case "metadata.name":
			return pod.Name, nil
		case "metadata.namespace":
			return pod.Namespace, nil
		case "spec.serviceAccountName":
			return pod.Spec.ServiceAccountName, nil
		case "spec.nodeName":
			return pod.Spec.NodeName, nil
		}
		return "", fmt.Errorf("field %s is not supported", s.FieldRef.FieldPath)
	case s.SecretKeyRef != nil:
		sec := &corev1.Secret{}
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: s.SecretKeyRef.Name}, sec); err != nil {
			return "", err
		}
		return string(sec.Data[s.SecretKeyRef.Key]), nil
	case s.ConfigMapKeyRef != nil:
		cm := &corev1.ConfigMap{}
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: s.ConfigMapKeyRef.Name}, cm); err != nil {
			return "", err
		}
		return cm.Data[s.ConfigMapKeyRef.Key], nil
	}
	return "", fmt.Errorf("unsupported value source")
}

var refRE = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand replaces $(VAR) with known values, leaves unknown references as written and turns $$ into $,
// as the kubelet does.
func expand(s string, vars map[string]string) string {
	return refRE.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if v, ok := vars[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// rewrite places the container's mount paths under Root, longest first so nested mounts win.
func (r *Runner) rewrite(c corev1.Container, s string) string {
	paths := make([]string, 0, len(c.VolumeMounts))
	for _, m := range c.VolumeMounts {
		paths = append(paths, m.MountPath)
	}
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
	for _, p := range paths {
		// A path already under Root (rewritten before) is left alone.
		if i := strings.Index(s, p); i >= 0 && !strings.HasSuffix(s[:i], filepath.Clean(r.Root)) {
			return s[:i] + filepath.Join(r.Root, p) + s[i+len(p):]
		}
	}
	return s
}

// waitStartup polls the container's startup probe (HTTP only) on loopback until it succeeds, the process
// exits, or the probe's failure budget is spent.
func waitStartup(ctx context.Context, c corev1.Container, exited chan error) error {
	p := c.StartupProbe
	if p == nil || p.HTTPGet == nil {
		return nil
	}
	url := fmt.Sprintf("http://127.0.0.1:%d%s", p.HTTPGet.Port.IntValue(), p.HTTPGet.Path)
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second / 10 // probe faster than a kubelet would
	deadline := time.Now().Add(time.Duration(max(p.FailureThreshold, 1)*max(p.PeriodSeconds, 1)) * time.Second)
	hc := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode >= 200 && resp.StatusCode < 400 {
				return nil
			}
		}
		select {
		case err := <-exited:
			exited <- err
			if err == nil {
				err = errors.New("exit status 0")
			}
			return fmt.Errorf("container %s exited before its startup probe passed: %w", c.Name, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(period):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("startup probe of container %s did not pass at %s", c.Name, url)
		}
	}
}
