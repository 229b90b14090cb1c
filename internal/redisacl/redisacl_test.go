//go:build integration

package redisacl

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/claude-guard/claude-guard/internal/redislib"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
)

var master = []byte("0123456789abcdef0123456789abcdef")

// uid is a namespace UID for the tests that need one.
const uid = "6f1c2a44-0f6e-4b61-9a34-6f0e1c0e5a01"

func TestPassword(t *testing.T) {
	// The vector is computed independently: python3 -c "import hmac,hashlib; print(hmac.new(
	// b'0123456789abcdef0123456789abcdef', b'redis-user:team-a:6f1c2a44-0f6e-4b61-9a34-6f0e1c0e5a01', hashlib.sha256).hexdigest())"
	if got, want := Password(master, "team-a", uid), "635bfdf6b8057ec76c0dd40d84200092c62e703ce019f9f69581c08ba0489be2"; got != want {
		t.Fatalf("Password = %s, want %s", got, want)
	}
	if Password(master, "team-a", uid) == Password(master, "team-b", uid) {
		t.Fatal("two namespaces share a password")
	}
	if Password(master, "team-a", uid) == Password(master, "team-a", "0d3b7e0e-2f7a-4a57-8d0b-1c9a4e6f7b12") {
		t.Fatal("a namespace recreated (a new UID) keeps its password")
	}
	other := append([]byte(nil), master...)
	other[0] ^= 1
	if Password(master, "team-a", uid) == Password(other, "team-a", uid) {
		t.Fatal("two master secrets give the same password")
	}
}

func TestSetUserArgs(t *testing.T) {
	const grants = "-@all +fcall|cg_v1_reserve +fcall|cg_v1_adjust +fcall|cg_v1_once +hmget +hincrby +incr +pexpire +hget +hgetall +hello +auth"
	cases := []struct {
		ns      string
		db      int
		want    string
		wantErr string
	}{
		{ns: "team-a", want: "ACL SETUSER cg-team-a reset on >pw ~cg:{team-a}:* %R~cgrev:{team-a} resetchannels " + grants},
		{ns: "a", db: 3, want: "ACL SETUSER cg-a reset on >pw ~cg:{a}:* %R~cgrev:{a} resetchannels " + grants + " +select|3"},
		{ns: "Team-A", wantErr: "not a valid Kubernetes namespace name"},
		{ns: "a*", wantErr: "not a valid Kubernetes namespace name"},
		{ns: "a b", wantErr: "not a valid Kubernetes namespace name"},
		{ns: "", wantErr: "not a valid Kubernetes namespace name"},
	}
	for _, c := range cases {
		t.Run(c.ns, func(t *testing.T) {
			args, err := SetUserArgs(c.ns, "pw", c.db, false)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(strings.Trim(fmt.Sprint(args), "[]")); got != c.want {
				t.Fatalf("args = %s\nwant   %s", got, c.want)
			}
		})
	}
}

func TestPublicURL(t *testing.T) {
	cases := []struct{ in, want, wantErr string }{
		{in: "redis://:hunter2@redis:6379/0", want: "redis://redis:6379/0"},
		{in: "rediss://admin:hunter2@redis.example:6380/2?dial_timeout=1s", want: "rediss://redis.example:6380/2?dial_timeout=1s"},
		{in: "redis://redis:6379", want: "redis://redis:6379"},
		{in: "redis+cluster://admin:hunter2@10.0.0.1:7000?addr=10.0.0.2:7000", want: "redis+cluster://10.0.0.1:7000?addr=10.0.0.2:7000"},
		{in: "redis+sentinel://:hunter2@s1:26379/1?master_name=cg", want: "redis+sentinel://s1:26379/1?master_name=cg"},
		{in: "http://:hunter2@redis:6379", wantErr: "must start with redis://"},
		{in: "redis://:hunter2@redis:port", wantErr: "failed to parse the Redis URL"},
	}
	for _, c := range cases {
		t.Run(c.want+c.wantErr, func(t *testing.T) {
			got, err := PublicURL(c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("err = %v, want %q without the password", err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("PublicURL = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

// TestAdmin runs the ACL and FUNCTION commands against a real Redis whose admin is the
// password-protected default user, and checks what a namespace user can and cannot do.
func TestAdmin(t *testing.T) {
	srv := testservers.StartRedis(t, testservers.RedisOptions{Password: "admin-pw", NoFunctions: true})
	ctx := context.Background()
	a, err := NewAdmin(srv.URL, master)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for range 2 { // idempotent
		for _, ns := range []string{"team-a", "team-b"} {
			if err := a.EnsureUser(ctx, ns, uid); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := a.EnsureUser(ctx, "Not_A_Namespace", uid); err == nil {
		t.Fatal("EnsureUser accepted an invalid namespace")
	}
	if err := a.EnsureUser(ctx, "team-c", ""); err == nil {
		t.Fatal("EnsureUser accepted a namespace without a UID")
	}
	got, err := a.Namespaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Sort(got); !slices.Equal(got, []string{"team-a", "team-b"}) {
		t.Fatalf("Namespaces = %v", got)
	}

	o := srv.Options()
	o.Username, o.Password = "cg-team-a", a.Password("team-a", uid)
	user := redis.NewClient(o)
	defer user.Close()
	if loaded, err := a.EnsureFunctions(ctx); err != nil || !loaded {
		t.Fatalf("EnsureFunctions on an empty Redis = %v, %v; want loaded", loaded, err)
	}
	if loaded, err := a.EnsureFunctions(ctx); err != nil || loaded {
		t.Fatalf("EnsureFunctions again = %v, %v; want nothing to do", loaded, err)
	}
	if err := user.FCall(ctx, redislib.Once, []string{"cg:{team-a}:jti:x"}, "60000").Err(); err != nil {
		t.Fatalf("FCALL on its own key: %v", err)
	}
	assertConfined(t, ctx, user, "team-a", "team-b")

	if err := a.DeleteUser(ctx, "team-a"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteUser(ctx, "team-a"); err != nil {
		t.Fatalf("deleting a missing user: %v", err)
	}
	fresh := redis.NewClient(o)
	defer fresh.Close()
	if err := fresh.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("login as a deleted user: %v, want WRONGPASS", err)
	}

	// Unreachable: the error names the address, never the admin password.
	srv.Stop()
	err = a.EnsureUser(ctx, "team-b", uid)
	if err == nil || strings.Contains(err.Error(), "admin-pw") || strings.Contains(err.Error(), a.Password("team-b", uid)) {
		t.Fatalf("EnsureUser on a stopped Redis: %v", err)
	}
}

func TestNewAdminRefusesAShortMaster(t *testing.T) {
	if _, err := NewAdmin("redis://127.0.0.1:6379", []byte("short")); err == nil {
		t.Fatal("NewAdmin accepted a 5-byte master secret")
	}
}

func TestLoadMaster(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(good, append(master, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(short, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	existing := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: MasterSecretName},
		Data: map[string][]byte{MasterSecretKey: []byte("fedcba9876543210fedcba9876543210")}}
	cases := []struct {
		name, file, want, wantErr string
		objects                   bool
	}{
		{name: "file", file: good, want: string(master)},
		{name: "short file", file: short, wantErr: "at least 32 bytes"},
		{name: "missing file", file: filepath.Join(dir, "none"), wantErr: "failed to read --redis-acl-secret-file"},
		{name: "existing secret", objects: true, want: "fedcba9876543210fedcba9876543210"},
		{name: "generated secret"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := fake.NewClientBuilder()
			if c.objects {
				b = b.WithObjects(existing.DeepCopy())
			}
			k := b.Build()
			got, err := LoadMaster(ctx, c.file, k, k, "ops")
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.want != "" && string(got) != c.want {
				t.Fatalf("master = %q, want %q", got, c.want)
			}
			if c.want == "" {
				// Generated: 64 hex digits, stored, and read back the same by the next replica.
				if len(got) != 64 {
					t.Fatalf("generated master has %d bytes, want 64", len(got))
				}
				again, err := LoadMaster(ctx, "", k, k, "ops")
				if err != nil || string(again) != string(got) {
					t.Fatalf("second load = %q, %v; want the stored %q", again, err, got)
				}
			}
		})
	}
}
