// Command csiregistrar registers a node's CSI driver with the kubelet, as the node-driver-registrar of
// kubernetes-csi does: it asks the driver for its name over the driver's socket, then serves the kubelet's
// plugin registration API on a socket in the kubelet's plugins_registry folder, pointing the kubelet at the
// driver's socket as the kubelet sees it.
//
// The test cluster needs it because the Go module proxy this machine reaches does not serve
// node-driver-registrar; a production node runs registry.k8s.io/sig-storage/csi-node-driver-registrar
// with the same two flags (docs/install.md).
//
//	csiregistrar -csi-address /spiffe-csi/csi.sock \
//	  -kubelet-registration-path /var/lib/kubelet/plugins/csi.spiffe.io/csi.sock
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

func main() {
	csiAddress := flag.String("csi-address", "/csi/csi.sock", "the driver's socket, as this container sees it")
	kubeletPath := flag.String("kubelet-registration-path", "", "the driver's socket, as the kubelet sees it (required)")
	registrationDir := flag.String("plugin-registration-path", "/registration", "the kubelet's plugins_registry folder, as this container sees it")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if *kubeletPath == "" {
		log.Error("-kubelet-registration-path is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, *csiAddress, *kubeletPath, *registrationDir); err != nil {
		log.Error("registrar stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, csiAddress, kubeletPath, registrationDir string) error {
	name, err := driverName(ctx, csiAddress)
	if err != nil {
		return err
	}
	sock := filepath.Join(registrationDir, name+"-reg.sock")
	// A socket left by a previous run would make Listen fail; the kubelet re-registers the new one.
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the stale registration socket %s: %w", sock, err)
	}
	lis, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", sock, err)
	}
	defer os.Remove(sock)
	failed := make(chan error, 1)
	srv := grpc.NewServer()
	registerapi.RegisterRegistrationServer(srv, &registration{name: name, endpoint: kubeletPath, log: log, failed: failed})
	go func() {
		<-ctx.Done()
		srv.GracefulStop()
	}()
	log.Info("serving plugin registration", "driver", name, "socket", sock, "endpoint", kubeletPath)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()
	select {
	case err := <-failed:
		srv.Stop()
		return err
	case err := <-serveErr:
		return err
	}
}

// driverName asks the driver at address for its name, waiting for it to answer: the registrar starts
// beside the driver and may be first.
func driverName(ctx context.Context, address string) (string, error) {
	conn, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", fmt.Errorf("dialing the driver at %s: %w", address, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		resp, err := csi.NewIdentityClient(conn).GetPluginInfo(ctx, &csi.GetPluginInfoRequest{}, grpc.WaitForReady(true))
		if err == nil && resp.GetName() != "" {
			return resp.GetName(), nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("the driver at %s did not give its name: %w", address, errors.Join(err, ctx.Err()))
		}
		time.Sleep(time.Second)
	}
}

// registration is the kubelet's side of the handshake: GetInfo tells it where the driver is, and
// NotifyRegistrationStatus says whether it took it.
type registration struct {
	registerapi.UnimplementedRegistrationServer
	name, endpoint string
	log            *slog.Logger
	failed         chan<- error
}

func (r *registration) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              r.name,
		Endpoint:          r.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (r *registration) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if !s.PluginRegistered {
		// As node-driver-registrar does: exit, so the container restarts and registration is retried.
		select {
		case r.failed <- fmt.Errorf("the kubelet refused driver %s: %s", r.name, s.Error):
		default:
		}
		return &registerapi.RegistrationStatusResponse{}, nil
	}
	r.log.Info("the kubelet registered the driver", "driver", r.name)
	return &registerapi.RegistrationStatusResponse{}, nil
}
