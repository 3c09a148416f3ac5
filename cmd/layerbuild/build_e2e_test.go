package main

import (
	"archive/tar"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRunShellExecEnvWorkdirUser(t *testing.T) {
	e := newEnv(t)
	df := `FROM busybox
ENV GREETING="hello world" EMPTY=
WORKDIR /work
WORKDIR sub
RUN echo "$GREETING from $(pwd)" > /out-shell.txt
RUN ["/bin/sh", "-c", "echo exec form $GREETING > /out-exec.txt"]
USER nobody
RUN id -u > /tmp/uid.txt && touch /tmp/mine
USER 0:0
RUN echo $HOME > /home.txt
`
	r := e.mustBuild(df, nil, "-t", "t1")
	if !strings.Contains(r.stderr, "[5/10] RUN echo") {
		t.Errorf("progress should number steps: %s", r.stderr)
	}
	f := e.files("t1")
	checks := map[string]string{
		"/out-shell.txt": "hello world from /work/sub\n",
		"/out-exec.txt":  "exec form hello world\n",
		"/tmp/uid.txt":   "65534\n",
		"/home.txt":      "/root\n",
	}
	for p, want := range checks {
		if got := f[p].data; got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if h := f["/tmp/mine"].hdr; h == nil || h.Uid != 65534 {
		t.Errorf("/tmp/mine should belong to nobody: %+v", h)
	}
	if h := f["/work/sub"].hdr; h == nil || h.Typeflag != tar.TypeDir {
		t.Error("WORKDIR should create /work/sub")
	}
	cfg := e.config("t1")
	if cfg.Config.WorkingDir != "/work/sub" || cfg.Config.User != "0:0" {
		t.Errorf("workdir %q user %q", cfg.Config.WorkingDir, cfg.Config.User)
	}
}

func TestLayerKeepsWhiteoutsLinksSetuidFifos(t *testing.T) {
	e := newEnv(t)
	df := `FROM busybox
RUN mkdir -p /data/old && echo old > /data/old/f && echo keep > /data/keep
RUN rm /bin/vi && rm -rf /data && mkdir /data && echo new > /data/new \
 && echo x > /a && ln /a /hard && ln -s /a /soft && chmod 4755 /a && mkfifo /fifo
`
	e.mustBuild(df, nil, "-t", "wh")
	f := e.files("wh")
	if _, ok := f["/bin/vi"]; ok {
		t.Error("/bin/vi was deleted but is still in the image")
	}
	if _, ok := f["/bin/ls"]; !ok {
		t.Error("/bin/ls from the base is missing")
	}
	if _, ok := f["/data/keep"]; ok {
		t.Error("/data was replaced: /data/keep must be gone")
	}
	if f["/data/new"].data != "new\n" {
		t.Error("/data/new missing")
	}
	if h := f["/a"].hdr; h == nil || h.Mode&04000 == 0 {
		t.Errorf("/a should be setuid: %+v", h)
	}
	if h := f["/hard"].hdr; h == nil || h.Typeflag != tar.TypeLink || strings.TrimPrefix(h.Linkname, "/") != "a" {
		t.Errorf("/hard should be a hard link to a: %+v", h)
	}
	if h := f["/soft"].hdr; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/a" {
		t.Errorf("/soft should be a symlink to /a: %+v", h)
	}
	if h := f["/fifo"].hdr; h == nil || h.Typeflag != tar.TypeFifo {
		t.Errorf("/fifo should be a fifo: %+v", h)
	}
	last := e.layerEntries("wh", 2)
	for _, want := range []string{"bin/.wh.vi", "data/.wh..wh..opq"} {
		if !slices.Contains(last, want) {
			t.Errorf("layer 2 lacks %s: %v", want, last)
		}
	}
	// Only what the step changed is in its layer: nothing else of /bin.
	for _, n := range last {
		if strings.HasPrefix(n, "bin/") && n != "bin/.wh.vi" {
			t.Errorf("layer 2 holds %s, which the step did not change", n)
		}
	}
}

func TestCopySemantics(t *testing.T) {
	e := newEnv(t)
	files := map[string]string{
		"a.txt":         "a",
		"b.txt":         "b",
		"c.md":          "c",
		"dir/one":       "1",
		"dir/sub/two":   "2",
		"single":        "s",
		".dockerignore": "*.md\nignored/\n",
		"ignored/x":     "x",
		"script.sh":     "#!/bin/sh\n",
	}
	df := `FROM busybox
RUN echo app:x:1234:1234::/home/app:/bin/sh >> /etc/passwd && echo app:x:1234: >> /etc/group
COPY *.txt /multi/
COPY dir /copied
COPY dir/ /copied-slash/
COPY single /file-dest
COPY single /into-dir/
COPY a.txt b.txt relative/
WORKDIR /w
COPY single .
COPY --chown=app:app single /owned
COPY --chown=42 single /owned-num
COPY --chmod=0700 script.sh /bin/s.sh
`
	e.mustBuild(df, files, "-t", "cp")
	f := e.files("cp")
	want := map[string]string{
		"/multi/a.txt": "a", "/multi/b.txt": "b", "/copied/one": "1", "/copied/sub/two": "2",
		"/copied-slash/one": "1", "/file-dest": "s", "/into-dir/single": "s",
		"/relative/a.txt": "a", "/w/single": "s",
	}
	for p, w := range want {
		if f[p].data != w {
			t.Errorf("%s = %q, want %q", p, f[p].data, w)
		}
	}
	for _, p := range []string{"/multi/c.md", "/copied/dir", "/ignored"} {
		if _, ok := f[p]; ok {
			t.Errorf("%s should not exist", p)
		}
	}
	if h := f["/owned"].hdr; h.Uid != 1234 || h.Gid != 1234 {
		t.Errorf("--chown=app:app gave %d:%d", h.Uid, h.Gid)
	}
	if h := f["/owned-num"].hdr; h.Uid != 42 || h.Gid != 42 {
		t.Errorf("--chown=42 gave %d:%d", h.Uid, h.Gid)
	}
	if h := f["/multi/a.txt"].hdr; h.Uid != 0 || h.Mode&0o777 != 0o644 {
		t.Errorf("context files are root-owned and keep their mode: %d %o", h.Uid, h.Mode)
	}
	if h := f["/bin/s.sh"].hdr; h.Mode&0o7777 != 0o700 {
		t.Errorf("--chmod=0700 gave %o", h.Mode)
	}

	r := e.build("FROM busybox\nCOPY a.txt b.txt /nodir\n", map[string]string{"a.txt": "", "b.txt": ""})
	if r.code == 0 || !strings.Contains(r.stderr, "must be a directory") {
		t.Errorf("several sources to a non-directory should fail: %s", r)
	}
	r = e.build("FROM busybox\nCOPY missing.txt /x\n", nil)
	if r.code == 0 || !strings.Contains(r.stderr, "Dockerfile:2") || !strings.Contains(r.stderr, "not found") {
		t.Errorf("a missing source should name the line: %s", r)
	}
}

func TestCopyNeverReadsOutsideContext(t *testing.T) {
	e := newEnv(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("host secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nCOPY link /got\nCOPY tree /tree\n", "tree/": ""})
	if err := os.Symlink(secret, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../"+secret, filepath.Join(dir, "tree", "rel")); err != nil {
		t.Fatal(err)
	}
	r := e.run(nil, "build", "-t", "esc", dir)
	if r.code == 0 {
		f := e.files("esc")
		if strings.Contains(f["/got"].data, "host secret") {
			t.Fatal("COPY followed a symlink out of the context")
		}
		if h := f["/tree/rel"].hdr; h == nil || h.Typeflag != tar.TypeSymlink {
			t.Errorf("a symlink inside a copied directory is copied as a link: %+v", h)
		}
	} else if !strings.Contains(r.stderr, "not found") {
		t.Errorf("unexpected failure: %s", r)
	}
}

func TestAddExtractsLocalTar(t *testing.T) {
	e := newEnv(t)
	// busybox's own tar makes the archive inside a first build, then a second build ADDs it.
	dir := writeContext(t, map[string]string{"payload/x/y.txt": "inside", "payload/z": "zz"})
	tgz := filepath.Join(dir, "p.tar.gz")
	if err := tarGz(filepath.Join(dir, "payload"), tgz); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\nADD p.tar.gz /opt/\nADD payload/z /plain\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.must("build", "-t", "add", dir)
	f := e.files("add")
	if f["/opt/x/y.txt"].data != "inside" || f["/plain"].data != "zz" {
		t.Errorf("ADD results: %q %q", f["/opt/x/y.txt"].data, f["/plain"].data)
	}
	if _, ok := f["/opt/p.tar.gz"]; ok {
		t.Error("the archive itself should not be copied")
	}
}
