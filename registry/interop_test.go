package registry

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Interop with the tools the design promises: skopeo and umoci read the store and the oci-archive,
// skopeo and podman read the docker-archive. Each part skips only when its tool is not installed.

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (apt-get install -y %s)", name, name)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

type skopeoInspect struct {
	Digest string
	Labels map[string]string
	Layers []string
	Os     string
}

func inspect(t *testing.T, ref string) skopeoInspect {
	t.Helper()
	var out skopeoInspect
	raw := run(t, needTool(t, "skopeo"), "inspect", ref)
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, raw)
	}
	return out
}

func TestInterop(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, filepath.Join(dir, "root"))
	base := addLayer(t, s, map[string]string{"etc/os-release": "ID=test\n"})
	top := addLayer(t, s, map[string]string{"hello.txt": "hello from layerbuild\n"})
	img := commit(t, s, "interop", []v1.Descriptor{base, top}, "busybox", "me/api:1")
	commit(t, s, "other", []v1.Descriptor{base}, "ghcr.io/a/b")

	ociArchive := filepath.Join(dir, "img.oci.tar")
	dockerArchive := filepath.Join(dir, "img.docker.tar")
	for path, format := range map[string]string{ociArchive: "oci-archive", dockerArchive: "docker-archive"} {
		f, _ := os.Create(path)
		if err := s.Save(f, []string{"busybox"}, format); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	checkInspect := func(t *testing.T, got skopeoInspect, wantDigest v1.Hash) {
		t.Helper()
		if wantDigest.Hex != "" && got.Digest != wantDigest.String() {
			t.Errorf("digest %s, want %s", got.Digest, wantDigest)
		}
		if got.Labels["test"] != "interop" || len(got.Layers) != 2 || got.Os != "linux" {
			t.Errorf("inspect = %+v", got)
		}
	}

	t.Run("skopeo reads the store", func(t *testing.T) {
		checkInspect(t, inspect(t, "oci:"+s.Root()+":docker.io/library/busybox:latest"), img.Digest)
		checkInspect(t, inspect(t, "oci:"+s.Root()+":docker.io/me/api:1"), img.Digest)
	})
	t.Run("skopeo reads the oci-archive", func(t *testing.T) {
		checkInspect(t, inspect(t, "oci-archive:"+ociArchive), img.Digest)
		checkInspect(t, inspect(t, "oci-archive:"+ociArchive+":latest"), img.Digest)
	})
	t.Run("skopeo reads the docker-archive", func(t *testing.T) {
		checkInspect(t, inspect(t, "docker-archive:"+dockerArchive), v1.Hash{})
		checkInspect(t, inspect(t, "docker-archive:"+dockerArchive+":docker.io/library/busybox:latest"), v1.Hash{})
	})
	t.Run("umoci unpacks the oci-archive and the store", func(t *testing.T) {
		umoci := needTool(t, "umoci")
		ext := filepath.Join(t.TempDir(), "layout")
		f, _ := os.Open(ociArchive)
		untar(t, f, ext)
		f.Close()
		for i, image := range []string{ext + ":latest", s.Root() + ":docker.io/library/busybox:latest"} {
			bundle := filepath.Join(t.TempDir(), "bundle")
			args := []string{"unpack", "--image", image, bundle}
			if os.Geteuid() != 0 {
				args = []string{"unpack", "--rootless", "--image", image, bundle}
			}
			run(t, umoci, args...)
			got, err := os.ReadFile(filepath.Join(bundle, "rootfs", "hello.txt"))
			if err != nil || string(got) != "hello from layerbuild\n" {
				t.Errorf("case %d: rootfs/hello.txt = %q, %v", i, got, err)
			}
			if _, err := os.Stat(filepath.Join(bundle, "rootfs", "etc", "os-release")); err != nil {
				t.Errorf("case %d: lower layer missing: %v", i, err)
			}
		}
	})
	t.Run("podman loads both archives", func(t *testing.T) {
		podman := needTool(t, "podman")
		if os.Geteuid() != 0 {
			t.Skip("podman load with a private storage root needs root")
		}
		for _, archive := range []string{dockerArchive, ociArchive} {
			st, err := os.MkdirTemp("", "lbpod") // podman wants a runroot under 50 characters
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(st) })
			common := []string{"--storage-driver=vfs", "--root", filepath.Join(st, "root"), "--runroot", filepath.Join(st, "r"), "--events-backend=none"}
			out := run(t, podman, append(common, "load", "-i", archive)...)
			if !strings.Contains(out, "docker.io/library/busybox:latest") {
				t.Errorf("podman load %s: %s", filepath.Base(archive), out)
			}
		}
	})
}
