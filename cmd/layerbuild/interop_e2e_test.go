package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/validate"
)

const interopDockerfile = `FROM busybox
ENV APP_HOME=/app LANG=C.UTF-8
WORKDIR /app
COPY app.txt /app/
RUN rm /bin/vi && echo built > /app/built.txt
LABEL org.example.team=builders
EXPOSE 8080
USER nobody
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/app.txt"]
`

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (.ci/run installs it)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

func TestInteropValidateSkopeoUmociPodman(t *testing.T) {
	if testing.Short() {
		t.Skip("heavy interop test")
	}
	e := newEnv(t)
	e.mustBuild(interopDockerfile, map[string]string{"app.txt": "hello"}, "-t", "interop:1")

	if err := validate.Image(e.v1image("interop:1")); err != nil {
		t.Errorf("go-containerregistry validate.Image: %v", err)
	}

	dir := t.TempDir()
	ociTar := filepath.Join(dir, "img.oci.tar")
	e.must("save", "--format", "oci-archive", "-o", ociTar, "interop:1")

	t.Run("skopeo", func(t *testing.T) {
		needTool(t, "skopeo")
		out, err := exec.Command("skopeo", "inspect", "--config", "oci-archive:"+ociTar).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo inspect: %v\n%s", err, out)
		}
		var cfg struct {
			Config struct {
				Env          []string
				Cmd          []string
				Entrypoint   []string
				User         string
				WorkingDir   string
				ExposedPorts map[string]struct{}
				Labels       map[string]string
			} `json:"config"`
		}
		if err := json.Unmarshal(out, &cfg); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		c := cfg.Config
		if !slices.Contains(c.Env, "APP_HOME=/app") || !slices.Equal(c.Cmd, []string{"cat /app/app.txt"}) ||
			!slices.Equal(c.Entrypoint, []string{"/bin/sh", "-c"}) || c.User != "nobody" || c.WorkingDir != "/app" ||
			c.Labels["org.example.team"] != "builders" {
			t.Errorf("skopeo sees config %+v", c)
		}
		if _, ok := c.ExposedPorts["8080/tcp"]; !ok {
			t.Errorf("skopeo sees ports %v", c.ExposedPorts)
		}
		// The store itself is an OCI layout skopeo reads.
		if out, err := exec.Command("skopeo", "inspect", "oci:"+e.root+":docker.io/library/interop:1").CombinedOutput(); err != nil {
			t.Errorf("skopeo inspect of the store: %v\n%s", err, out)
		}
	})

	t.Run("umoci", func(t *testing.T) {
		needTool(t, "umoci")
		layoutDir := filepath.Join(dir, "layout")
		if err := os.MkdirAll(layoutDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("tar", "-xf", ociTar, "-C", layoutDir).CombinedOutput(); err != nil {
			t.Fatalf("untar: %v\n%s", err, out)
		}
		idx, _ := os.ReadFile(filepath.Join(layoutDir, "index.json"))
		tag := "1"
		if !strings.Contains(string(idx), `"org.opencontainers.image.ref.name":"1"`) {
			t.Logf("index.json: %s", idx)
		}
		bundle := filepath.Join(dir, "bundle")
		if out, err := exec.Command("umoci", "unpack", "--image", layoutDir+":"+tag, bundle).CombinedOutput(); err != nil {
			t.Fatalf("umoci unpack: %v\n%s", err, out)
		}
		rootfs := filepath.Join(bundle, "rootfs")
		if b, err := os.ReadFile(filepath.Join(rootfs, "app", "app.txt")); err != nil || string(b) != "hello" {
			t.Errorf("app.txt in umoci's rootfs: %q %v", b, err)
		}
		if b, err := os.ReadFile(filepath.Join(rootfs, "app", "built.txt")); err != nil || string(b) != "built\n" {
			t.Errorf("built.txt in umoci's rootfs: %q %v", b, err)
		}
		if _, err := os.Lstat(filepath.Join(rootfs, "bin", "vi")); err == nil {
			t.Error("/bin/vi was deleted by a RUN but umoci's rootfs has it")
		}
		if _, err := os.Lstat(filepath.Join(rootfs, "bin", "busybox")); err != nil {
			t.Error("umoci's rootfs lacks /bin/busybox")
		}
	})

	t.Run("podman load", func(t *testing.T) {
		needTool(t, "podman")
		dockerTar := filepath.Join(dir, "img.docker.tar")
		e.must("save", "-o", dockerTar, "interop:1")
		pr, err := os.MkdirTemp("/tmp", "pm") // podman wants a short runroot
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(pr)
		podman := func(args ...string) (string, error) {
			base := []string{"--root", filepath.Join(pr, "root"), "--runroot", filepath.Join(pr, "run"),
				"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}
			out, err := exec.Command("podman", append(base, args...)...).CombinedOutput()
			return string(out), err
		}
		if out, err := podman("load", "-i", dockerTar); err != nil {
			t.Fatalf("podman load: %v\n%s", err, out)
		}
		out, err := podman("image", "inspect", "docker.io/library/interop:1")
		if err != nil {
			t.Fatalf("podman image inspect: %v\n%s", err, out)
		}
		if !strings.Contains(out, "APP_HOME=/app") || !strings.Contains(out, `"nobody"`) {
			t.Errorf("podman sees: %s", out)
		}
	})
}
