package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/layerbuild/layerbuild/cache"
)

// TestStatCacheThroughBuilds: the context's stat cache never hides a change. A file rewritten with content of
// the same size and its mtime put back is rebuilt (its ctime moved); `touch` alone keeps the COPY cached;
// chmod rebuilds it.
func TestStatCacheThroughBuilds(t *testing.T) {
	e := newEnv(t)
	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM busybox\nCOPY . /app/\n",
		"a.txt":      "aaaa",
		"b.txt":      "bbbb",
		"run.sh":     "echo hi\n",
	})
	// Files changed within the racy window are not recorded; wait it out so that the first build records
	// every file and the second has to tell the edit from the cache entry.
	time.Sleep(cache.RacyWindow + 200*time.Millisecond)
	build := func(wantCached bool, why string) {
		t.Helper()
		r := e.run(nil, "build", "--progress", "plain", "-t", "sc", dir)
		if r.code != 0 {
			t.Fatalf("%s: build failed: %s", why, r)
		}
		if got := strings.Contains(r.stderr, "[2/2] CACHED"); got != wantCached {
			t.Fatalf("%s: COPY cached = %v, want %v:\n%s", why, got, wantCached, r)
		}
	}
	build(false, "first build")
	sc, err := cache.OpenStatCache(filepath.Join(e.root, "cache"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Len() != 4 {
		t.Fatalf("the first build recorded %d context files in the stat cache, want 4", sc.Len())
	}
	build(true, "unchanged")

	p := filepath.Join(dir, "a.txt")
	old, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // past the timestamp granularity: the write gets a new ctime
	writeFile(t, dir, "a.txt", "AAAA")
	if err := os.Chtimes(p, old.ModTime(), old.ModTime()); err != nil {
		t.Fatal(err)
	}
	if now, _ := os.Stat(p); now.Size() != old.Size() || !now.ModTime().Equal(old.ModTime()) || !os.SameFile(now, old) {
		t.Fatal("premise: same size, same mtime, same inode")
	}
	build(false, "same size and mtime, new content")
	if got := e.files("sc")["/app/a.txt"].data; got != "AAAA" {
		t.Fatalf("/app/a.txt = %q, want the new content", got)
	}

	now := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(dir, "b.txt"), now, now); err != nil {
		t.Fatal(err)
	}
	build(true, "touch")

	if err := os.Chmod(filepath.Join(dir, "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	build(false, "chmod 0755")
	if got := e.files("sc")["/app/run.sh"].hdr.Mode & 0o777; got != 0o755 {
		t.Fatalf("/app/run.sh mode %o, want 755", got)
	}
}
