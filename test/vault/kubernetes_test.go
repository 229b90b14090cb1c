//go:build integration

package vault

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/sidecar/credentials"
)

// TestKubernetesAuthWithTheAPIServerAsTokenReviewer logs in to OpenBao with a projected-style
// service-account token (audience "vault") issued by a real kube-apiserver, which OpenBao asks to review
// the token: the fallback for clusters without SPIFFE.
func TestKubernetesAuthWithTheAPIServerAsTokenReviewer(t *testing.T) {
	w := setup(t)
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	cs := w.kubernetesAuth(t, env)
	ctx := context.Background()
	token := func(ns, sa string, audiences ...string) string {
		t.Helper()
		return serviceAccountToken(t, cs, ns, sa, audiences...)
	}

	cases := []struct {
		name, ns, audience, want, cause string
	}{
		{"team-a's service account reads team-a's key", "team-a", "vault", keyA, ""},
		{"team-b's service account cannot log in as team-a", "team-b", "vault", "", "failed to log in"},
		{"a token for another audience is refused", "team-a", "other", "", "failed to log in"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(file, []byte(token(c.ns, "chat-"+string(rune('a'+i)), c.audience)), 0o600); err != nil {
				t.Fatal(err)
			}
			v, err := credentials.NewVault(credentials.VaultOptions{
				Address: w.bao.Addr, CACert: w.caPEM, AuthMethod: "kubernetes", Role: "team-a", TokenFile: file,
				Mount: "secret", Path: "tenants/team-a/anthropic", Field: "api_key",
				RefreshInterval: 200 * time.Millisecond, MaxStaleness: time.Hour,
			})
			if err != nil {
				t.Fatal(err)
			}
			runCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			go v.Run(runCtx)
			eventuallyKey(t, v, c.want, c.cause)
		})
	}
}

// kubernetesAuth makes the Env's API server OpenBao's token reviewer for the kubernetes auth method and
// writes team-a's kubernetes role, and returns a clientset for the Env.
func (w *world) kubernetesAuth(t *testing.T, env *testenv.Env) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// OpenBao reviews tokens with a reviewer account allowed to create TokenReviews.
	reviewer := serviceAccountToken(t, cs, "kube-system", "openbao-reviewer")
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "openbao-reviewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "openbao-reviewer", Namespace: "kube-system"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := w.rootClient.Sys().EnableAuthWithOptions("kubernetes", &vaultapi.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.rootClient.Logical().WriteWithContext(ctx, "auth/kubernetes/config", map[string]any{
		"kubernetes_host": env.Config.Host, "kubernetes_ca_cert": string(env.Config.CAData),
		"token_reviewer_jwt": reviewer, "disable_local_ca_jwt": true,
	}); err != nil {
		t.Fatal(err)
	}
	w.tenant(t, "team-a", "tenants/team-a", "team-a", "--methods", "kubernetes")
	return cs
}

// serviceAccountToken creates (if needed) the namespace and service account and returns a token for it.
func serviceAccountToken(t *testing.T, cs *kubernetes.Clientset, ns, sa string, audiences ...string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}
