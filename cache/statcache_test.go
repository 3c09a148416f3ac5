package cache

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// later is a clock well past every file the tests write: nothing looks racily clean to it.
func later() time.Time { return time.Now().Add(time.Hour) }

func openLater(t *testing.T, cacheDir, ctx string) *StatCache {
	t.Helper()
	c, err := OpenStatCache(cacheDir, ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.now = later
	return c
}

func lstat(t *testing.T, p string) fs.FileInfo {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func statT(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	return lstat(t, p).Sys().(*syscall.Stat_t)
}

// hashOnce hashes p through c and checks the result against p's real content; it returns whether c read it.
func hashOnce(t *testing.T, c *StatCache, p string) bool {
	t.Helper()
	_, before := c.Stats()
	sum, err := c.Hash(p, lstat(t, p))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if sum != sha256.Sum256(data) {
		t.Fatalf("Hash(%s) is not the sha256 of its content %q", p, data)
	}
	_, after := c.Stats()
	return after > before
}

// tick waits out the file system's timestamp granularity, so that the next change gets a new ctime.
func tick() { time.Sleep(20 * time.Millisecond) }

func TestStatCacheDetectsChanges(t *testing.T) {
	const content = "hello, world\n"
	tests := []struct {
		name     string
		change   func(t *testing.T, p string)
		wantRead bool
		// same lists the stat fields the change must leave alone (the test's premise): only what is left
		// over can reveal it.
		same string
	}{
		{name: "unchanged", change: func(*testing.T, string) {}, same: "size mtime ctime ino mode"},
		{name: "touch", wantRead: true, same: "size ino mode", change: func(t *testing.T, p string) {
			tick()
			now := time.Now()
			if err := os.Chtimes(p, now, now); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "same size and mtime, new content: ctime moved", wantRead: true, same: "size mtime ino mode",
			change: func(t *testing.T, p string) {
				mtime := lstat(t, p).ModTime()
				tick()
				if err := os.WriteFile(p, []byte(strings.ToUpper(content)), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(p, mtime, mtime); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "replaced by rename: new inode", wantRead: true, same: "size mtime mode", change: func(t *testing.T, p string) {
			mtime := lstat(t, p).ModTime()
			tmp := p + ".new"
			if err := os.WriteFile(tmp, []byte(strings.ToUpper(content)), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(tmp, mtime, mtime); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, p); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "chmod", wantRead: true, same: "size mtime ino", change: func(t *testing.T, p string) {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cacheDir, ctx := t.TempDir(), t.TempDir()
			p := filepath.Join(ctx, "sub", "f.txt")
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			c := openLater(t, cacheDir, ctx)
			if !hashOnce(t, c, p) {
				t.Fatal("the first hash must read the file")
			}
			if hashOnce(t, c, p) {
				t.Fatal("a second hash with the same stat must come from the cache")
			}
			if err := c.Save(); err != nil {
				t.Fatal(err)
			}
			before := *statT(t, p)
			tc.change(t, p)
			after := *statT(t, p)
			fields := map[string]bool{
				"size":  before.Size == after.Size,
				"mtime": before.Mtim == after.Mtim,
				"ctime": before.Ctim == after.Ctim,
				"ino":   before.Ino == after.Ino,
				"mode":  before.Mode == after.Mode,
			}
			for _, f := range strings.Fields(tc.same) {
				if !fields[f] {
					t.Fatalf("premise: the change must keep %s", f)
				}
			}
			if tc.wantRead && fields["size"] && fields["mtime"] && fields["ctime"] && fields["ino"] && fields["mode"] {
				t.Fatal("premise: the change must move some stat field")
			}
			// A new build: the cache comes from disk.
			c2 := openLater(t, cacheDir, ctx)
			if c2.Len() != 1 {
				t.Fatalf("the saved cache has %d entries, want 1", c2.Len())
			}
			if got := hashOnce(t, c2, p); got != tc.wantRead {
				t.Fatalf("read = %v, want %v", got, tc.wantRead)
			}
		})
	}
}

// TestStatCacheRacilyClean: a file hashed within RacyWindow of its last change is hashed again on every use,
// in this build and the next ones, until the window has passed; so is one saved at the time it changed.
func TestStatCacheRacilyClean(t *testing.T) {
	cacheDir, ctx := t.TempDir(), t.TempDir()
	p := filepath.Join(ctx, "f")
	if err := os.WriteFile(p, []byte("fresh"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := OpenStatCache(cacheDir, ctx) // the real clock: f changed just now
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if !hashOnce(t, c, p) {
			t.Fatalf("hash %d of a racily clean file must read it", i+1)
		}
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.file); err == nil {
		t.Fatal("a cache with only racily clean entries has nothing to save")
	}
	// Hashed when it looked old enough, but saved at the time it changed (git's "racily clean" rule).
	c.now = later
	if !hashOnce(t, c, p) {
		t.Fatal("the racy entry must not serve later hashes")
	}
	c.now = time.Now
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	if c2 := openLater(t, cacheDir, ctx); c2.Len() != 0 {
		t.Fatalf("an entry whose file changed within %v of the save must not be saved", RacyWindow)
	}
	// Once the window has passed, it is trusted.
	c3 := openLater(t, cacheDir, ctx)
	hashOnce(t, c3, p)
	if err := c3.Save(); err != nil {
		t.Fatal(err)
	}
	if hashOnce(t, openLater(t, cacheDir, ctx), p) {
		t.Fatal("a quiet file must come from the cache")
	}
}

func TestStatCacheGarbageFileIsEmpty(t *testing.T) {
	cacheDir, ctx := t.TempDir(), t.TempDir()
	p := filepath.Join(ctx, "f")
	if err := os.WriteFile(p, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := openLater(t, cacheDir, ctx)
	hashOnce(t, c, p)
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	valid, err := os.ReadFile(c.file)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(valid)
	flipped[len(statMagic)+10] ^= 0x40
	huge := bytes.Clone(valid)
	huge[len(statMagic)+3] = 0x7f // entry count
	for name, data := range map[string][]byte{
		"empty":     {},
		"garbage":   bytes.Repeat([]byte("garbage!"), 100),
		"torn":      valid[:len(valid)-10],
		"flipped":   flipped,
		"huge":      huge,
		"magic":     []byte(statMagic),
		"other ver": append([]byte("LBSTAT\x00\x09"), valid[len(statMagic):]...),
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(c.file, data, 0o600); err != nil {
				t.Fatal(err)
			}
			c2 := openLater(t, cacheDir, ctx)
			if c2.Len() != 0 {
				t.Fatalf("a bad cache file must read as empty, got %d entries", c2.Len())
			}
			if !hashOnce(t, c2, p) {
				t.Fatal("with an empty cache the file is read")
			}
			if err := c2.Save(); err != nil {
				t.Fatal(err)
			}
			if c3 := openLater(t, cacheDir, ctx); c3.Len() != 1 || hashOnce(t, c3, p) {
				t.Fatal("Save must replace the bad file with a good one")
			}
		})
	}
}

// TestStatCacheConcurrentSave: two builds of one context save at the same time, again and again: the file is
// always one of them, whole.
func TestStatCacheConcurrentSave(t *testing.T) {
	cacheDir, ctx := t.TempDir(), t.TempDir()
	var paths []string
	for i := 0; i < 200; i++ {
		p := filepath.Join(ctx, fmt.Sprintf("f%03d", i))
		if err := os.WriteFile(p, []byte(fmt.Sprintf("file %d", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	a, b := openLater(t, cacheDir, ctx), openLater(t, cacheDir, ctx)
	halves := map[*StatCache][]string{a: paths[:100], b: paths[100:]}
	var wg sync.WaitGroup
	for c, ps := range halves {
		// Hash from several goroutines at once as well (go test -race).
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, p := range ps {
					if _, err := c.Hash(p, lstat(t, p)); err != nil {
						t.Error(err)
					}
				}
			}()
		}
	}
	wg.Wait()
	for c := range halves {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				c.mu.Lock()
				c.dirty = true
				c.mu.Unlock()
				if err := c.Save(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	final := openLater(t, cacheDir, ctx)
	if final.Len() != 100 {
		t.Fatalf("the saved cache has %d entries, want the 100 of one writer", final.Len())
	}
	for _, p := range paths {
		hashOnce(t, final, p) // every hash, cached or not, is checked against the content
	}
	if hits, reads := final.Stats(); hits != 100 || reads != 100 {
		t.Fatalf("hits, reads = %d, %d: want one writer's 100 entries", hits, reads)
	}
	des, _ := os.ReadDir(filepath.Join(cacheDir, "stat"))
	if len(des) != 1 {
		t.Fatalf("the stat dir holds %d files, want 1 (no temp files left)", len(des))
	}
}

// TestStatCacheKeepsUnseenEntries: a build that looks at part of the context keeps the other entries (another
// Dockerfile or --target needs them) until nobody has used them for a week.
func TestStatCacheKeepsUnseenEntries(t *testing.T) {
	cacheDir, ctx := t.TempDir(), t.TempDir()
	a, b := filepath.Join(ctx, "a"), filepath.Join(ctx, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := openLater(t, cacheDir, ctx)
	hashOnce(t, c, a)
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	c = openLater(t, cacheDir, ctx)
	hashOnce(t, c, b)
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	if n := openLater(t, cacheDir, ctx).Len(); n != 2 {
		t.Fatalf("%d entries, want a (unseen, recent) and b", n)
	}
	c = openLater(t, cacheDir, ctx)
	c.now = func() time.Time { return time.Now().Add(keepUnseen + 2*time.Hour) }
	if err := os.WriteFile(b, []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	hashOnce(t, c, b)
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	c = openLater(t, cacheDir, ctx)
	if n, read := c.Len(), hashOnce(t, c, b); n != 1 || read {
		t.Fatalf("%d entries, b read: %v: an entry unused for a week is dropped; a used one stays", n, read)
	}
}

// TestStatCacheSaveOnlyWhenChanged: a build that hashed nothing new does not rewrite the file.
func TestStatCacheSaveOnlyWhenChanged(t *testing.T) {
	cacheDir, ctx := t.TempDir(), t.TempDir()
	p := filepath.Join(ctx, "f")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := openLater(t, cacheDir, ctx+"/") // the same context however it is spelled
	hashOnce(t, c, p)
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	fi := lstat(t, c.file)
	c = openLater(t, cacheDir, ctx)
	if hashOnce(t, c, p) {
		t.Fatal("cached entry expected")
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	if fi2 := lstat(t, c.file); !os.SameFile(fi, fi2) {
		t.Fatal("nothing changed: the file must not be rewritten")
	}
}

// TestStatEntryMatchesEveryField: each recorded stat field on its own invalidates an entry (a real file system
// rarely changes one alone: a new inode also gets a new ctime).
func TestStatEntryMatchesEveryField(t *testing.T) {
	base := syscall.Stat_t{Size: 10, Mtim: syscall.Timespec{Sec: 1e9, Nsec: 5}, Ctim: syscall.Timespec{Sec: 1e9, Nsec: 7},
		Ino: 42, Dev: 3, Mode: syscall.S_IFREG | 0o644}
	e := statEntry{size: base.Size, mtime: tsNano(base.Mtim), ctime: tsNano(base.Ctim), ino: base.Ino, dev: base.Dev, mode: base.Mode}
	if !e.matches(&base) {
		t.Fatal("the recorded stat must match itself")
	}
	for name, change := range map[string]func(*syscall.Stat_t){
		"size":       func(s *syscall.Stat_t) { s.Size++ },
		"mtime ns":   func(s *syscall.Stat_t) { s.Mtim.Nsec++ },
		"mtime s":    func(s *syscall.Stat_t) { s.Mtim.Sec++ },
		"ctime ns":   func(s *syscall.Stat_t) { s.Ctim.Nsec++ },
		"inode":      func(s *syscall.Stat_t) { s.Ino++ },
		"device":     func(s *syscall.Stat_t) { s.Dev++ },
		"permission": func(s *syscall.Stat_t) { s.Mode |= 0o100 },
		"setuid":     func(s *syscall.Stat_t) { s.Mode |= syscall.S_ISUID },
	} {
		st := base
		change(&st)
		if e.matches(&st) {
			t.Errorf("a changed %s must not match", name)
		}
	}
	// atime and the owner are not part of it (chown moves ctime anyway).
	st := base
	st.Atim.Sec++
	st.Uid = 1000
	if !e.matches(&st) {
		t.Error("atime and owner must not matter")
	}
}

// TestStatCacheForgetsOldContexts: the cache file of a context no build opened for a week goes at the next
// Save of any context, as does a temp file a killed Save left; a context opened now and then stays.
func TestStatCacheForgetsOldContexts(t *testing.T) {
	cacheDir := t.TempDir()
	ctxs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	var files []string
	for _, ctx := range ctxs {
		p := filepath.Join(ctx, "f")
		if err := os.WriteFile(p, []byte(ctx), 0o644); err != nil {
			t.Fatal(err)
		}
		c := openLater(t, cacheDir, ctx)
		hashOnce(t, c, p)
		if err := c.Save(); err != nil {
			t.Fatal(err)
		}
		files = append(files, c.file)
	}
	tmp := filepath.Join(cacheDir, "stat", ".tmp-123")
	if err := os.WriteFile(tmp, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-keepUnseen - time.Hour)
	for _, p := range []string{files[0], files[1], tmp} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	// Context 1 is built again (nothing changed, nothing saved): opening it keeps its file.
	if c := openLater(t, cacheDir, ctxs[1]); c.Len() != 1 {
		t.Fatal("context 1 lost its entry")
	}
	// Context 2 saves something.
	c := openLater(t, cacheDir, ctxs[2])
	p := filepath.Join(ctxs[2], "g")
	if err := os.WriteFile(p, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	hashOnce(t, c, p)
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{files[0]: false, files[1]: true, files[2]: true, tmp: false} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s: exists = %v, want %v", filepath.Base(p), err == nil, want)
		}
	}
}
