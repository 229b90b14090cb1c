package imagebuild

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

var created = time.Date(2026, 7, 1, 12, 30, 45, 0, time.UTC)

type tarEntry struct {
	name string
	mode int64
	dir  bool
	data string
}

func readTar(t *testing.T, b []byte) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d:%d (%q:%q), want 0:0", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if !h.ModTime.Equal(created) {
			t.Errorf("%s: mtime %v, want %v", h.Name, h.ModTime, created)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{name: h.Name, mode: h.Mode, dir: h.Typeflag == tar.TypeDir, data: string(data)})
	}
}

func TestLayerTar(t *testing.T) {
	common := func(bin tarEntry, dirs ...string) []tarEntry {
		es := []tarEntry{
			{name: "etc/", mode: 0o755, dir: true},
			{name: "etc/group", mode: 0o644, data: "root:x:0:\nnonroot:x:65532:\n"},
			{name: "etc/passwd", mode: 0o644, data: "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n"},
			{name: "tmp/", mode: 0o1777, dir: true},
		}
		for _, d := range dirs {
			es = append(es, tarEntry{name: d, mode: 0o755, dir: true})
		}
		return append(es, bin)
	}
	for _, tc := range []struct {
		name, path, bin string
		want            []tarEntry
		wantErr         string
	}{
		{name: "manager", path: "/usr/local/bin/manager", bin: "ELF manager",
			want: common(tarEntry{name: "usr/local/bin/manager", mode: 0o755, data: "ELF manager"}, "usr/", "usr/local/", "usr/local/bin/")},
		{name: "top level", path: "/app", bin: "x",
			want: []tarEntry{
				{name: "app", mode: 0o755, data: "x"},
				{name: "etc/", mode: 0o755, dir: true},
				{name: "etc/group", mode: 0o644, data: "root:x:0:\nnonroot:x:65532:\n"},
				{name: "etc/passwd", mode: 0o644, data: "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n"},
				{name: "tmp/", mode: 0o1777, dir: true},
			}},
		{name: "beside the account files", path: "/etc/tool", bin: "x",
			want: []tarEntry{
				{name: "etc/", mode: 0o755, dir: true},
				{name: "etc/group", mode: 0o644, data: "root:x:0:\nnonroot:x:65532:\n"},
				{name: "etc/passwd", mode: 0o644, data: "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n"},
				{name: "etc/tool", mode: 0o755, data: "x"},
				{name: "tmp/", mode: 0o1777, dir: true},
			}},
		{name: "relative", path: "usr/bin/x", bin: "x", wantErr: "clean absolute"},
		{name: "unclean", path: "/usr//bin/x", bin: "x", wantErr: "clean absolute"},
		{name: "root", path: "/", bin: "x", wantErr: "clean absolute"},
		{name: "a directory", path: "/tmp", bin: "x", wantErr: "is a directory"},
		{name: "an account file", path: "/etc/passwd", bin: "x", wantErr: "is a file"},
		{name: "below a file", path: "/etc/passwd/x", bin: "x", wantErr: "below a file"},
		{name: "empty binary", path: "/usr/local/bin/x", wantErr: "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := LayerTar(tc.path, []byte(tc.bin), created.Add(300*time.Millisecond))
			if errorCase(t, err, tc.wantErr) {
				return
			}
			got := readTar(t, b)
			if len(got) != len(tc.want) {
				t.Fatalf("entries:\n%v\nwant\n%v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("entry %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestLayerTarIsDeterministic(t *testing.T) {
	a, err := LayerTar("/usr/local/bin/sidecar", []byte("bin"), created)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		b, err := LayerTar("/usr/local/bin/sidecar", []byte("bin"), created.In(time.FixedZone("x", 3600)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatal("two layers from the same inputs differ")
		}
	}
}
