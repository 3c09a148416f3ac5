package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostileTar makes a tarball whose entries try to escape the directory they are extracted into.
func hostileTar(t *testing.T, path, outside string) {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	add := func(h *tar.Header, data string) {
		h.Size = int64(len(data))
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(data))
	}
	rel := strings.TrimPrefix(outside, "/")
	add(&tar.Header{Name: "../../../../../../../../" + rel + "/dotdot", Typeflag: tar.TypeReg}, "x")
	add(&tar.Header{Name: "/" + rel + "/absolute", Typeflag: tar.TypeReg}, "x")
	add(&tar.Header{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: outside}, "")
	add(&tar.Header{Name: "esc/via-symlink", Typeflag: tar.TypeReg}, "x")
	add(&tar.Header{Name: "rootlink", Typeflag: tar.TypeSymlink, Linkname: "/"}, "")
	add(&tar.Header{Name: "rootlink" + outside + "/via-root-symlink", Typeflag: tar.TypeReg}, "x")
	add(&tar.Header{Name: "hard", Typeflag: tar.TypeLink, Linkname: "../../../../../../../etc/passwd"}, "")
	add(&tar.Header{Name: "ok.txt", Typeflag: tar.TypeReg}, "fine")
	tw.Close()
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestHostileArchivesStayInside(t *testing.T) {
	e := newEnv(t)
	outside := t.TempDir() // a host directory that must stay empty
	dir := writeContext(t, map[string]string{})
	hostileTar(t, filepath.Join(dir, "evil.tar"), outside)
	writeFile(t, dir, "Dockerfile", "FROM busybox\nRUN ln -s / /hostroot\nADD evil.tar /hostroot/x/\n")
	r := e.run(nil, "build", "-t", "evil", dir)
	entries, _ := os.ReadDir(outside)
	if len(entries) != 0 {
		t.Fatalf("ADD wrote outside the rootfs: %v (%s)", entries, r)
	}
	if r.code == 0 {
		if f := e.files("evil"); f["/x/ok.txt"].data != "fine" {
			t.Errorf("the harmless entry should be extracted: %v", f["/x/ok.txt"])
		}
	} else if strings.Contains(r.stderr, "panic") || !strings.Contains(r.stderr, "Dockerfile:3") {
		t.Errorf("refusing is fine, but with a clear error: %s", r)
	}

	// import of the same archive: nothing outside either.
	r = e.run(nil, "import", filepath.Join(dir, "evil.tar"), "evil-import")
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("import wrote outside its layer: %v (%s)", entries, r)
	}
}

func TestImportFromStdinAndCompressed(t *testing.T) {
	e := newEnv(t)
	raw, err := os.ReadFile(busyboxTar)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	r := e.run(bytes.NewReader(gz.Bytes()), "import", "-", "bb-gz:1")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "sha256:") {
		t.Fatalf("import of gzip from stdin: %s", r)
	}
	if _, ok := e.files("bb-gz:1")["/bin/busybox"]; !ok {
		t.Error("imported image lacks /bin/busybox")
	}
	if c := e.config("bb-gz:1"); c.OS != "linux" || len(c.RootFS.DiffIDs) != 1 {
		t.Errorf("imported config: %+v", c)
	}
	// A RUN with a SHELL from the image works on the imported base.
	e.mustBuild("FROM bb-gz:1\nSHELL [\"/bin/sh\", \"-c\", \"-e\"]\nRUN echo $0 > /shell.txt\n", nil, "-t", "sh")
	if got := e.files("sh")["/shell.txt"].data; got == "" {
		t.Error("RUN under SHELL produced nothing")
	}
}

func TestKilledBuildLeavesStoreUsable(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a build to be killed")
	}
	e := newEnv(t)
	before := snapshotStore(t, e.root)
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo started && sleep 30\n"})
	cmd := exec.Command(lbBin, "build", "--progress", "plain", "-t", "killed", dir)
	cmd.Env = append(os.Environ(), "LAYERBUILD_ROOT="+e.root)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	deadline := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	for sc.Scan() {
		if strings.Contains(sc.Text(), "| started") {
			break
		}
	}
	deadline.Stop()
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	time.Sleep(200 * time.Millisecond)

	if after := snapshotStore(t, e.root); strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Error("a killed build changed the image store")
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), e.root) {
		t.Errorf("a killed build left mounts under the store:\n%s", grepLines(string(mounts), e.root))
	}
	if out, _ := exec.Command("pgrep", "-f", "sleep 30").Output(); len(out) > 0 {
		t.Errorf("the killed build's RUN process lives on: pids %s", out)
	}
	e.mustBuild("FROM busybox\nRUN echo after > /after\n", nil, "-t", "after")
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestConcurrentBuildsOnOneStore(t *testing.T) {
	e := newEnv(t)
	const n = 4
	results := make(chan result, n)
	dirs := make([]string, n)
	for i := 0; i < n; i++ {
		df := "FROM busybox\nRUN echo shared > /shared\nRUN echo " + strings.Repeat("x", i+1) + " > /own\n"
		dirs[i] = writeContext(t, map[string]string{"Dockerfile": df})
		go func(i int) {
			results <- e.run(nil, "build", "-t", "par:"+strings.Repeat("v", i+1), dirs[i])
		}(i)
	}
	for i := 0; i < n; i++ {
		if r := <-results; r.code != 0 {
			t.Errorf("a concurrent build failed: %s", r)
		}
	}
	for i := 0; i < n; i++ {
		tag := "par:" + strings.Repeat("v", i+1)
		if got := e.files(tag)["/own"].data; got != strings.Repeat("x", i+1)+"\n" {
			t.Errorf("%s: /own = %q", tag, got)
		}
		// Every build that ran at the same time left its steps in the cache.
		if r := e.run(nil, "build", "--progress", "plain", "-t", tag, dirs[i]); !strings.Contains(r.stderr, "3 of 3 steps cached") {
			t.Errorf("%s: a rebuild after the concurrent builds should be fully cached:\n%s", tag, r.stderr)
		}
	}
}
