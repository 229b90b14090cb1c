//go:build integration

package controllers_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/claude-guard/claude-guard/controllers"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
)

// k is a client that reads straight from the API server (no cache), so assertions see the truth.
var k client.Client

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	spire, err := testservers.SPIREDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env, err := testenv.Start(testenv.WithSPIRECRDs(spire))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	k = env.Client

	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr), zap.Level(zapLevel())))
	stop, err := env.StartManager(testenv.ManagerOptions{Effective: effective.Options{
		NoTenant: effective.NoTenantDeny, VaultAddress: "https://vault.test:8200", Upstream: "https://api.anthropic.com",
		// The Vault cert auth of the suite's policies needs a SPIFFE identity.
		TrustDomain: "cluster.test",
	}, Registration: &controllers.RegistrationReconciler{Inject: registrationInject, Entries: registrationEntries}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 1
	}
	return code
}

// zapLevel keeps the controllers quiet unless CLAUDE_GUARD_TEST_LOGS is set.
func zapLevel() zapcore.Level {
	if os.Getenv("CLAUDE_GUARD_TEST_LOGS") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.ErrorLevel
}

// newNamespace creates a namespace named prefix-<random> with labels and returns its name. envtest runs
// no namespace controller, so namespaces are never really deleted: unique names keep reruns independent.
func newNamespace(t *testing.T, prefix string, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: labels}}
	if err := k.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k.Create(context.Background(), obj); err != nil {
		t.Fatalf("failed to create %T %s: %v", obj, obj.GetName(), err)
	}
	t.Cleanup(func() { _ = k.Delete(context.Background(), obj) })
}
