package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunMountCache: a cache mount's content persists across builds (even with --no-cache) and never
// lands in the image.
func TestRunMountCache(t *testing.T) {
	if testing.Short() {
		t.Skip("three builds")
	}
	e := newEnv(t)
	df := "FROM busybox\n" +
		"RUN --mount=type=cache,target=/root/.cache,id=c1 sh -c 'ls /root/.cache > /seen; date +%s%N >> /root/.cache/stamp; echo hi > /root/.cache/f'\n"
	e.mustBuild(df, nil, "-t", "c:1")
	fs := e.files("c:1")
	if got := fs["/seen"].data; got != "" {
		t.Errorf("first build saw %q in a new cache", got)
	}
	for p := range fs {
		if strings.HasPrefix(p, "/root/.cache") {
			t.Errorf("%s landed in the image", p)
		}
	}
	// The step's layer never holds the mountpoint. Creating it copies its parent /root up (a known
	// leftover: the entry is there, with the base's metadata unchanged).
	for _, n := range e.layerEntries("c:1", 1) {
		if n != "seen" && n != "root" {
			t.Errorf("the RUN's layer holds %s", n)
		}
	}
	base := e.files("busybox")["/root"].hdr
	if got := fs["/root"].hdr; got == nil || base == nil || got.Mode != base.Mode || !got.ModTime.Equal(base.ModTime) ||
		got.Uid != base.Uid {
		t.Errorf("/root changed: %+v, base %+v", got, base)
	}
	e.mustBuild(df, nil, "-t", "c:2", "--no-cache")
	fs = e.files("c:2")
	if got := fs["/seen"].data; got != "f\nstamp\n" {
		t.Errorf("second build saw %q, want the first build's files", got)
	}
	if _, ok := fs["/root/.cache"]; ok {
		t.Errorf("/root/.cache landed in the image")
	}
	// Another id is another cache; a uid/gid/mode applies when the cache is created.
	e.mustBuild("FROM busybox\nRUN --mount=type=cache,target=/c,id=other,uid=7,gid=8,mode=0700 sh -c 'ls -A /c > /seen; stat -c %u:%g:%a /c > /own'\n",
		nil, "-t", "c:3")
	fs = e.files("c:3")
	if fs["/seen"].data != "" || fs["/own"].data != "7:8:700\n" {
		t.Errorf("id=other: seen %q own %q", fs["/seen"].data, fs["/own"].data)
	}
	if _, ok := fs["/c"]; ok {
		t.Errorf("/c landed in the image")
	}
}

// TestRunMountTmpfsAndBind: a tmpfs target starts empty; a bind from the context is read-only by default
// and shows the source (with .dockerignore applied); a bind from a stage shows that stage's files; none
// of them reaches the image, and the bound content is part of the cache key.
func TestRunMountTmpfsAndBind(t *testing.T) {
	if testing.Short() {
		t.Skip("several builds")
	}
	e := newEnv(t)
	df := "FROM busybox AS tools\n" +
		"RUN mkdir /out && echo from-stage > /out/tool\n" +
		"FROM busybox\n" +
		"RUN --mount=type=tmpfs,target=/tmp,size=1m sh -c 'ls -A /tmp > /tmpls; echo x > /tmp/y; df /tmp | tail -1 > /tmpdf'\n" +
		"RUN --mount=type=bind,source=src,target=/mnt/src sh -c 'cat /mnt/src/a > /bound; ls -A /mnt/src > /boundls; if echo z > /mnt/src/w 2>/dev/null; then echo writable; else echo ro; fi > /bindro'\n" +
		"RUN --mount=type=bind,source=src,target=/rw,rw sh -c 'echo z > /rw/new && cat /rw/new > /rwout'\n" +
		"RUN --mount=type=bind,from=tools,source=/out,target=/t cat /t/tool > /fromstage\n" +
		"WORKDIR /w\n" +
		"RUN --mount=type=bind,source=src/a,target=n/b/a --mount=type=tmpfs,target=/w/n cat /w/n/b/a > /nested\n"
	files := map[string]string{"src/a": "A1\n", "src/secret": "no\n", ".dockerignore": "src/secret\n"}
	e.mustBuild(df, files, "-t", "m:1")
	fs := e.files("m:1")
	want := map[string]string{"/tmpls": "", "/bound": "A1\n", "/boundls": "a\n", "/bindro": "ro\n", "/rwout": "z\n",
		"/fromstage": "from-stage\n", "/nested": "A1\n"}
	for p, w := range want {
		if got, ok := fs[p]; !ok || got.data != w {
			t.Errorf("%s = %q (present %v), want %q", p, got.data, ok, w)
		}
	}
	if !strings.Contains(fs["/tmpdf"].data, "tmpfs") && !strings.Contains(fs["/tmpdf"].data, "1024") {
		t.Logf("df /tmp: %q", fs["/tmpdf"].data)
	}
	for _, p := range []string{"/tmp/y", "/mnt", "/mnt/src", "/rw", "/t", "/out", "/w/n"} {
		if _, ok := fs[p]; ok {
			t.Errorf("%s landed in the image", p)
		}
	}
	// The context's own files were not touched by the rw mount; a changed bound file rebuilds the step.
	files["src/a"] = "A2\n"
	files["Dockerfile"] = df
	dir := writeContext(t, files)
	e.must("build", "-t", "m:2", dir)
	if err := os.WriteFile(filepath.Join(dir, "src", "a"), []byte("A3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.run(nil, "build", "--progress", "plain", "-t", "m:3", dir)
	if r.code != 0 || !strings.Contains(r.stderr, "1 file changed: src/a") {
		t.Errorf("the report does not name the changed bound file: %s", r)
	}
	if got := e.files("m:2")["/bound"].data; got != "A2\n" {
		t.Errorf("after changing src/a: /bound = %q", got)
	}
	if got := e.files("m:3")["/bound"].data; got != "A3\n" {
		t.Errorf("after changing src/a again: /bound = %q", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "src", "new")); b != nil {
		t.Errorf("the rw bind wrote into the context")
	}
}

// TestRunMountErrors: unsupported types and a missing target fail before anything runs, naming the line.
func TestRunMountErrors(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ mount, want string }{
		{"type=secret,id=x", "not supported yet"},
		{"type=ssh", "not supported yet"},
		{"type=cache", "target is required"},
		{"type=tmpfs", "target is required"},
	} {
		r := e.build("FROM busybox\nRUN echo start\nRUN --mount="+tc.mount+" true\n", nil)
		if r.code == 0 {
			t.Errorf("--mount=%s: build succeeded", tc.mount)
			continue
		}
		if !strings.Contains(r.stderr, "Dockerfile:3") || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("--mount=%s: error lacks the line or %q: %s", tc.mount, tc.want, r.stderr)
		}
		if strings.Contains(r.stderr, "echo start") && strings.Contains(r.stderr, "DONE") {
			t.Errorf("--mount=%s: steps ran before the error: %s", tc.mount, r.stderr)
		}
	}
}
