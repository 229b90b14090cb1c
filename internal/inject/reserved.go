package inject

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// ReservedVolumePrefix starts the name of every volume injection adds (SidecarVolumes). A pod that
// declares or mounts such a volume itself is not injected: an app container mounting the name would
// read the sidecar's credentials once injection adds the volume.
const ReservedVolumePrefix = "claude-guard-"

// Refusal is a pod that declares what only injection may add. The webhook refuses such a pod at
// admission (it is not merely left uninjected): the same spec could otherwise start a process the
// cluster takes for the sidecar.
type Refusal struct {
	// Field is the pod field at fault, as the API server names fields (spec.containers[1].image).
	Field  string
	Reason string
}

func (r *Refusal) Error() string { return r.Field + ": " + r.Reason }

// checkReserved refuses a pod with a container named like the sidecar, other than the one injection
// wrote (verify checks that one: re-invocation shows the webhook its own output), or a container of
// another name running the sidecar's image. SPIRE's registration already withholds the sidecar's
// identity from such containers (Verify); refusing them at admission keeps a look-alike from starting.
// An empty image checks only the name.
func checkReserved(pod *corev1.Pod, image string, verify func() error) error {
	for i, c := range pod.Spec.Containers {
		if c.Name == wellknown.SidecarContainerName {
			return &Refusal{Field: fmt.Sprintf("spec.containers[%d].name", i),
				Reason: "the name " + wellknown.SidecarContainerName + " is reserved for the sidecar claude-guard injects"}
		}
	}
	for _, set := range []struct {
		field string
		cs    []corev1.Container
	}{{"spec.initContainers", pod.Spec.InitContainers}, {"spec.containers", pod.Spec.Containers}} {
		for i, c := range set.cs {
			if c.Name != wellknown.SidecarContainerName && SameImage(c.Image, image) {
				return &Refusal{Field: fmt.Sprintf("%s[%d].image", set.field, i),
					Reason: fmt.Sprintf("container %s runs %s, claude-guard's sidecar image, which only the injected sidecar may run", c.Name, c.Image)}
			}
		}
	}
	i := slices.IndexFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == wellknown.SidecarContainerName })
	if i < 0 {
		return nil
	}
	if err := verify(); err != nil {
		return &Refusal{Field: fmt.Sprintf("spec.initContainers[%d]", i),
			Reason: "the name " + wellknown.SidecarContainerName + " is reserved for the sidecar claude-guard injects, and this container is not that sidecar: " + err.Error()}
	}
	return nil
}

// SameImage reports whether image a names the repository of b, or b's digest: a tag of the sidecar's
// repository other than the configured one is still the sidecar. A copy pushed under another name and
// not pinned by digest is not recognised; it gains nothing, as the sidecar's identity goes only to the
// exact image injection wrote (spireentry selectors).
func SameImage(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	ra, da := splitImage(a)
	rb, db := splitImage(b)
	return ra == rb || (db != "" && da == db)
}

// splitImage returns an image reference's repository (without tag) and digest.
func splitImage(ref string) (repo, digest string) {
	repo, digest, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return repo, digest
}

// mountsReserved returns the first container that mounts a volume named like injection's, as "name
// (volume)", or "".
func mountsReserved(pod *corev1.Pod) string {
	for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
		if c.Name == wellknown.SidecarContainerName {
			continue
		}
		for _, m := range c.VolumeMounts {
			if strings.HasPrefix(m.Name, ReservedVolumePrefix) {
				return c.Name + " (" + m.Name + ")"
			}
		}
		for _, d := range c.VolumeDevices {
			if strings.HasPrefix(d.Name, ReservedVolumePrefix) {
				return c.Name + " (" + d.Name + ")"
			}
		}
	}
	return ""
}
