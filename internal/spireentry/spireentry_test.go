package spireentry

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

var pod = Pod{
	Namespace: "shop", Name: "chat-7d9f-x2", ServiceAccount: "chat",
	UID: "0b6a1d0e-2f43-4c1b-9a55-5b0f6f0c3e21", NodeUID: "7f1e9c2a-8d44-4f0b-b1a3-1c2d3e4f5a6b",
	Image: "ghcr.io/claude-guard/sidecar:v0.1.0", Policy: "chat", TrustDomain: "claude-guard.test",
}

// TestEntryGolden pins the whole object the SPIRE Controller Manager receives (testdata/entry.yaml;
// UPDATE_GOLDEN=1 rewrites it).
func TestEntryGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"entry", Options{ClusterName: "claude-guard"}},
		{"entry-class", Options{ClusterName: "prod-eu", ClassName: "tenants"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := yaml.Marshal(Entry(tc.o, pod).Object)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.name+".yaml")
			if os.Getenv("UPDATE_GOLDEN") != "" {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("%s differs:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}

func TestSameSpec(t *testing.T) {
	o := Options{ClusterName: "claude-guard"}
	base := Entry(o, pod)
	other := pod
	other.Image = "ghcr.io/claude-guard/sidecar:v0.2.0"
	moved := pod
	moved.NodeUID = "another-node"
	td := pod
	td.TrustDomain = "prod.example"
	relabeled := Entry(o, pod)
	relabeled.SetLabels(map[string]string{"x": "y"})
	for _, tc := range []struct {
		name string
		b    bool
		same bool
	}{
		{"itself", SameSpec(base, Entry(o, pod)), true},
		{"labels do not count", SameSpec(base, relabeled), true},
		{"another image", SameSpec(base, Entry(o, other)), false},
		{"another node (parent)", SameSpec(base, Entry(o, moved)), false},
		{"another trust domain", SameSpec(base, Entry(o, td)), false},
		{"a class name", SameSpec(base, Entry(Options{ClusterName: "claude-guard", ClassName: "c"}, pod)), false},
	} {
		if tc.b != tc.same {
			t.Errorf("%s: SameSpec = %v, want %v", tc.name, tc.b, tc.same)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := (Options{}).Validate(); err == nil {
		t.Error("no cluster name: want an error")
	}
	if err := (Options{ClusterName: "claude-guard"}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestCurrent: an entry as written is current for its trust domain and cluster settings; an edited one,
// or one for another trust domain, cluster or class, is not (the controller then reads the pod again).
func TestCurrent(t *testing.T) {
	o := Options{ClusterName: "claude-guard"}
	edited := Entry(o, pod)
	if err := unstructured.SetNestedStringSlice(edited.Object, []string{"k8s:ns:shop"}, "spec", "selectors"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		current bool
		want    bool
	}{
		{"as written", Current(Entry(o, pod), o, pod.TrustDomain), true},
		{"selectors edited", Current(edited, o, pod.TrustDomain), false},
		{"another trust domain", Current(Entry(o, pod), o, "prod.example"), false},
		{"another cluster", Current(Entry(o, pod), Options{ClusterName: "eu"}, pod.TrustDomain), false},
		{"another class", Current(Entry(o, pod), Options{ClusterName: "claude-guard", ClassName: "c"}, pod.TrustDomain), false},
	} {
		if tc.current != tc.want {
			t.Errorf("%s: Current = %v, want %v", tc.name, tc.current, tc.want)
		}
	}
}
