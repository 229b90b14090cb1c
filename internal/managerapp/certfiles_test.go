package managerapp

import (
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestCertFilesWrite(t *testing.T) {
	dir := t.TempDir()
	c := &certFiles{dir: dir}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	// A Secret the rotator has not filled yet writes nothing: the webhook must not start on empty files.
	if err := c.write(&corev1.Secret{Data: map[string][]byte{"ca.crt": []byte("ca")}}); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("an unfilled Secret wrote %d files", len(entries))
	}
	for _, data := range []map[string][]byte{
		{"ca.crt": []byte("ca1"), "tls.crt": []byte("crt1"), "tls.key": []byte("key1")},
		{"ca.crt": []byte("ca1"), "tls.crt": []byte("crt2"), "tls.key": []byte("key2")}, // a rotation
	} {
		if err := c.write(&corev1.Secret{Data: data}); err != nil {
			t.Fatal(err)
		}
		for k, v := range data {
			if got := read(k); got != string(v) {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
			if fi, err := os.Stat(filepath.Join(dir, k)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, err %v; want 0600", k, fi.Mode(), err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "tls.key.tmp")); !os.IsNotExist(err) {
		t.Errorf("a temporary file was left behind: %v", err)
	}
}
