package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/layerbuild/layerbuild/registry"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The end-to-end tests drive the real binary against a temporary store, with a busybox base image made
// from Debian's busybox-static. They need root (namespaces, overlayfs).

var (
	lbBin      string
	busyboxTar string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "cmd/layerbuild tests need root (namespaces, overlayfs): skipped")
		return 0
	}
	dir, err := os.MkdirTemp("", "layerbuild-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	lbBin = filepath.Join(dir, "layerbuild")
	if out, err := exec.Command("go", "build", "-o", lbBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build layerbuild: %v\n%s", err, out)
		return 1
	}
	busyboxTar = filepath.Join(dir, "busybox.tar")
	if out, err := exec.Command("../../scripts/busybox-rootfs.sh", busyboxTar).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "make busybox rootfs (needs busybox-static): %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// env is one test's store.
type env struct {
	t    *testing.T
	root string
}

// newEnv makes an empty store with busybox:latest imported.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, root: filepath.Join(t.TempDir(), "store")}
	e.must("import", busyboxTar, "busybox:latest")
	return e
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs layerbuild with args on this store.
func (e *env) run(stdin io.Reader, args ...string) result {
	e.t.Helper()
	cmd := exec.Command(lbBin, args...)
	cmd.Env = append(os.Environ(), "LAYERBUILD_ROOT="+e.root)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run layerbuild %v: %v", args, err)
	}
	return r
}

func (e *env) must(args ...string) string {
	e.t.Helper()
	r := e.run(nil, args...)
	if r.code != 0 {
		e.t.Fatalf("layerbuild %s failed: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// writeContext writes files (path -> content; a trailing "/" makes a directory) into a new context dir.
func writeContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// build builds a Dockerfile with a context of files and returns the result.
func (e *env) build(dockerfile string, files map[string]string, args ...string) result {
	e.t.Helper()
	if files == nil {
		files = map[string]string{}
	}
	files["Dockerfile"] = dockerfile
	dir := writeContext(e.t, files)
	return e.run(nil, append(append([]string{"build", "--progress", "plain"}, args...), dir)...)
}

func (e *env) mustBuild(dockerfile string, files map[string]string, args ...string) result {
	e.t.Helper()
	r := e.build(dockerfile, files, args...)
	if r.code != 0 {
		e.t.Fatalf("build failed: %s", r)
	}
	return r
}

// image reads an image of the store through go-containerregistry's layout package (an independent reader).
func (e *env) image(ref string) v1.Image {
	e.t.Helper()
	_, img := e.stored(ref)
	p, err := layout.FromPath(e.root)
	if err != nil {
		e.t.Fatal(err)
	}
	vi, err := p.Image(img.Digest)
	if err != nil {
		e.t.Fatal(err)
	}
	return vi
}

// stored opens the test's store and finds ref in it.
func (e *env) stored(ref string) (*registry.Store, *registry.Image) {
	e.t.Helper()
	st, err := registry.Open(e.root)
	if err != nil {
		e.t.Fatal(err)
	}
	img, err := st.Lookup(ref)
	if err != nil {
		e.t.Fatal(err)
	}
	return st, img
}

// v1image is the store's own go-containerregistry view of an image (what save and push use).
func (e *env) v1image(ref string) v1.Image {
	e.t.Helper()
	st, img := e.stored(ref)
	vi, err := st.V1Image(img)
	if err != nil {
		e.t.Fatal(err)
	}
	return vi
}

func (e *env) config(ref string) *v1.ConfigFile {
	e.t.Helper()
	cf, err := e.image(ref).ConfigFile()
	if err != nil {
		e.t.Fatal(err)
	}
	return cf
}

// entry is one file of a flattened image.
type entry struct {
	hdr  *tar.Header
	data string
}

// files flattens an image (whiteouts applied by go-containerregistry's mutate.Extract) into path -> entry.
func (e *env) files(ref string) map[string]entry {
	e.t.Helper()
	rc := mutate.Extract(e.image(ref))
	defer rc.Close()
	out := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			e.t.Fatal(err)
		}
		var data []byte
		if h.Typeflag == tar.TypeReg {
			data, _ = io.ReadAll(tr)
		}
		out["/"+strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")] = entry{hdr: h, data: string(data)}
	}
	return out
}

// layerEntries lists the entry names of an image's layer i (raw, whiteouts included).
func (e *env) layerEntries(ref string, i int) []string {
	e.t.Helper()
	layers, err := e.image(ref).Layers()
	if err != nil {
		e.t.Fatal(err)
	}
	rc, err := layers[i].Uncompressed()
	if err != nil {
		e.t.Fatal(err)
	}
	defer rc.Close()
	var names []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			e.t.Fatal(err)
		}
		names = append(names, strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/"))
	}
	return names
}
