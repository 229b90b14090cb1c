package chartenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/internal/test/testenv"
)

// HostIP returns an address of this machine the API server can reach and an EndpointSlice may hold:
// the first non-loopback, non-link-local IPv4 address of an interface that is up (the API server refuses
// loopback endpoints).
func HostIP() (string, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("failed to list network interfaces: %w", err)
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
				return ipn.IP.String(), nil
			}
		}
	}
	return "", errors.New("this machine has no non-loopback IPv4 address: the webhook Service cannot be routed to the manager (EndpointSlices refuse loopback addresses)")
}

// PublishEndpoint does kube-proxy's and the EndpointSlice controller's part for a Service: it points the
// Service's port named portName at ip:port.
func PublishEndpoint(ctx context.Context, c client.Client, namespace, service, portName, ip string, port int32) error {
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: service + "-local",
			Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(portName), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	if err := c.Create(ctx, slice); err != nil {
		return fmt.Errorf("failed to publish the endpoint of service %s/%s: %w", namespace, service, err)
	}
	return nil
}

// MountSecret does the kubelet's part for a Secret volume: it writes the Secret's keys as files in dir,
// and again whenever they change, until ctx ends. Errors (the Secret is not there yet) are retried.
func MountSecret(ctx context.Context, c client.Client, namespace, name, dir string) {
	var last map[string][]byte
	for {
		s := &corev1.Secret{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s); err == nil && !sameData(s.Data, last) {
			ok := true
			for k, v := range s.Data {
				if err := os.WriteFile(filepath.Join(dir, k), v, 0o600); err != nil {
					ok = false
				}
			}
			if ok {
				last = s.Data
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func sameData(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// ServiceAccountKubeconfig writes to dir a kubeconfig that authenticates as the ServiceAccount
// namespace/name (a client certificate with the user and groups a ServiceAccount token would carry), so
// a process using it gets exactly the RBAC the chart grants that ServiceAccount.
func ServiceAccountKubeconfig(env *testenv.Env, namespace, name, dir string) (string, error) {
	u, err := env.AddUser(envtestUser(namespace, name), nil)
	if err != nil {
		return "", fmt.Errorf("failed to add the user of ServiceAccount %s/%s: %w", namespace, name, err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig-"+name)
	return path, os.WriteFile(path, kc, 0o600)
}
