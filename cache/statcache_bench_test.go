package cache

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// makeContext10k writes a context of 10,000 small files in 100 directories and waits until none of them is
// racily clean any more (as in a real rebuild, where the files were written well before).
func makeContext10k(b *testing.B) string {
	b.Helper()
	base := os.Getenv("LAYERBUILD_BENCH_DIR")
	if base == "" {
		base = b.TempDir()
	}
	ctx, err := os.MkdirTemp(base, "context")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(ctx) })
	for d := 0; d < 100; d++ {
		dir := filepath.Join(ctx, fmt.Sprintf("pkg%02d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := 0; f < 100; f++ {
			content := fmt.Sprintf("package pkg%02d // file %d\n", d, f)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file%03d.go", f)), []byte(content), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	time.Sleep(RacyWindow + 100*time.Millisecond)
	return ctx
}

// hashContext does what a build does with the context: walk it (lstat of every entry, as builder/sources.go
// does), hash every regular file through the stat cache, save the cache.
func hashContext(b *testing.B, cacheDir, ctx string) *StatCache {
	c, err := OpenStatCache(cacheDir, ctx)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	err = filepath.WalkDir(ctx, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			if _, err := c.Hash(p, fi); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if n != 10000 {
		b.Fatalf("hashed %d files", n)
	}
	if err := c.Save(); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkHashContext10k: hashing a context of 10,000 unchanged files. warm: the stat cache is loaded from
// disk each time, as a build does, and answers every file (the target is < 50 ms/op); cold: no cache, every
// file is read (and the cache written); open: loading the cache file alone; walk: the lstat walk alone, the
// floor.
func BenchmarkHashContext10k(b *testing.B) {
	ctx := makeContext10k(b)
	b.Run("warm", func(b *testing.B) {
		cacheDir := b.TempDir()
		hashContext(b, cacheDir, ctx)
		for b.Loop() {
			c := hashContext(b, cacheDir, ctx)
			if hits, reads := c.Stats(); hits != 10000 || reads != 0 {
				b.Fatalf("warm cache: %d hits, %d reads", hits, reads)
			}
		}
	})
	b.Run("cold", func(b *testing.B) {
		base := b.TempDir()
		i := 0
		for b.Loop() {
			i++
			c := hashContext(b, filepath.Join(base, fmt.Sprint(i)), ctx)
			if _, reads := c.Stats(); reads != 10000 {
				b.Fatalf("cold cache: %d reads", reads)
			}
		}
	})
	b.Run("open", func(b *testing.B) { // loading the cache file of 10,000 entries alone
		cacheDir := b.TempDir()
		hashContext(b, cacheDir, ctx)
		for b.Loop() {
			c, err := OpenStatCache(cacheDir, ctx)
			if err != nil || c.Len() != 10000 {
				b.Fatalf("open: %v, %d entries", err, c.Len())
			}
		}
	})
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			err := filepath.WalkDir(ctx, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				_, err = d.Info()
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
