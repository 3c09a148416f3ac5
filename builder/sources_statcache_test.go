package builder

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/layerbuild/layerbuild/cache"
	"github.com/layerbuild/layerbuild/parser"
)

// contextDigest is what `COPY . /dst` hashes from ctx (with the stat cache c, or reading every file when nil).
func contextDigest(tb testing.TB, ctx string, c *cache.StatCache) string {
	tb.Helper()
	sr := &sourceRoot{dir: ctx, ignore: &parser.Ignore{}, stat: c}
	ms, err := sr.expand([]string{"."})
	if err != nil {
		tb.Fatal(err)
	}
	d, _, err := sr.digest(ms)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// TestStatCacheDigestIsTheSame: the stat cache changes how a COPY source digest is computed, not what it is.
func TestStatCacheDigestIsTheSame(t *testing.T) {
	ctx := t.TempDir()
	for name, content := range map[string]string{"a.txt": "a", "dir/b.txt": "bb", "dir/sub/c": "", "big": string(make([]byte, 300<<10))} {
		p := filepath.Join(ctx, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a.txt", filepath.Join(ctx, "link")); err != nil {
		t.Fatal(err)
	}
	want := contextDigest(t, ctx, nil)
	cacheDir := t.TempDir()
	for i := 0; i < 2; i++ { // the first pass reads the files, the second answers from the cache
		c, err := cache.OpenStatCache(cacheDir, ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := contextDigest(t, ctx, c); got != want {
			t.Fatalf("pass %d: digest with the stat cache %s, without %s", i+1, got, want)
		}
		if err := c.Save(); err != nil {
			t.Fatal(err)
		}
	}
	// A stage or image source (no .dockerignore) never goes through the context's stat cache.
	c, _ := cache.OpenStatCache(t.TempDir(), ctx)
	sr := &sourceRoot{dir: ctx, keepOwner: true, stat: c}
	ms, err := sr.expand([]string{"."})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := sr.digest(ms); err != nil {
		t.Fatal(err)
	}
	if hits, reads := c.Stats(); hits+reads != 0 {
		t.Fatalf("a non-context source used the stat cache: %d hits, %d reads", hits, reads)
	}
}

// BenchmarkContextDigest10k: what `COPY . /app` costs before its cache lookup on a context of 10,000 unchanged
// files: the stat cache loaded from disk, the walk (load) and the digest, as a rebuild does it.
func BenchmarkContextDigest10k(b *testing.B) {
	ctx := b.TempDir()
	for d := 0; d < 100; d++ {
		dir := filepath.Join(ctx, fmt.Sprintf("pkg%02d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := 0; f < 100; f++ {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file%03d.go", f)), []byte(fmt.Sprintf("package pkg%02d // %d\n", d, f)), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	time.Sleep(cache.RacyWindow + 100*time.Millisecond) // nothing racily clean: a rebuild long after the edit
	cacheDir := b.TempDir()
	run := func() *cache.StatCache {
		c, err := cache.OpenStatCache(cacheDir, ctx)
		if err != nil {
			b.Fatal(err)
		}
		contextDigest(b, ctx, c)
		if err := c.Save(); err != nil {
			b.Fatal(err)
		}
		return c
	}
	run()
	for b.Loop() {
		if _, reads := run().Stats(); reads != 0 {
			b.Fatalf("%d files read on a warm cache", reads)
		}
	}
}
