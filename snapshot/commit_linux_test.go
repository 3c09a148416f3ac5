package snapshot

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func baseTar(t testing.TB) []byte {
	return mkTar(t,
		dir("bin/"), ent{name: "bin/sh", typ: '0', mode: 0o755, body: "#!shell"},
		dir("data/"), file("data/a", "a"), file("data/b", "b"), dir("data/sub/"), file("data/sub/c", "c"),
		dir("etc/"), file("etc/keep", "keep"), file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
		dir("usr/"), dir("usr/lib/"), file("usr/lib/libc.so", "elf"),
	)
}

// TestCommitDiff changes a rootfs the ways a RUN step does and checks the layer tar entry by entry, then that
// the tar, unpacked elsewhere, gives back what the step saw.
func TestCommitDiff(t *testing.T) {
	s := newStore(t)
	base := unpackBytes(t, s, baseTar(t))
	a := prepare(t, s, base)
	r := a.Rootfs
	if got := view(t, r); got["etc/keep"] == "" || got["usr/lib/libc.so"] == "" {
		t.Fatalf("base not visible in the rootfs: %v", got)
	}
	steps := []struct {
		what string
		do   func(root string) error
	}{
		{"add a file with a user xattr", func(r string) error {
			if err := os.WriteFile(r+"/new.txt", []byte("new"), 0o644); err != nil {
				return err
			}
			return unix.Setxattr(r+"/new.txt", "user.test", []byte("v1"), 0)
		}},
		{"delete a base file", func(r string) error { return os.Remove(r + "/etc/keep") }},
		{"replace a base dir", func(r string) error {
			if err := os.RemoveAll(r + "/data"); err != nil {
				return err
			}
			if err := os.Mkdir(r+"/data", 0o750); err != nil {
				return err
			}
			return os.WriteFile(r+"/data/new", []byte("n"), 0o644)
		}},
		{"hard links", func(r string) error {
			if err := os.Mkdir(r+"/hl", 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(r+"/hl/a", []byte("linked"), 0o644); err != nil {
				return err
			}
			return os.Link(r+"/hl/a", r+"/hl/b")
		}},
		{"absolute symlink", func(r string) error { return os.Symlink("/etc/passwd", r+"/lnk") }},
		{"setuid file", func(r string) error {
			if err := os.WriteFile(r+"/suid", []byte("su"), 0o644); err != nil {
				return err
			}
			return os.Chmod(r+"/suid", 0o755|os.ModeSetuid)
		}},
		{"fifo", func(r string) error { return unix.Mkfifo(r+"/fifo", 0o600) }},
		{"char device", func(r string) error { return unix.Mknod(r+"/zero", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))) }},
		{"chmod a base file", func(r string) error { return os.Chmod(r+"/bin/sh", 0o700) }},
		{"owner", func(r string) error { return os.Lchown(r+"/new.txt", 1000, 1001) }},
	}
	for _, st := range steps {
		if err := st.do(r); err != nil {
			t.Fatalf("%s: %v", st.what, err)
		}
	}
	// redirect_dir=off: renaming a lower dir is refused (tools copy instead), so the upper stays a plain diff.
	if err := os.Rename(r+"/usr", r+"/usr2"); !errors.Is(err, unix.EXDEV) {
		t.Errorf("rename of a lower dir: %v, want EXDEV", err)
	}
	saw := view(t, r)
	l, err := a.Commit()
	must(t, err)
	if l.Empty {
		t.Fatal("layer marked empty")
	}
	if got := mountsUnder(filepath.Dir(r)); len(got) != 0 {
		t.Fatalf("still mounted after Commit: %v", got)
	}
	want := []string{
		"bin/ dir 755",
		"bin/sh file 700",
		"data/ dir 750",
		"data/.wh..wh..opq file 0",
		"data/new file 644",
		"etc/ dir 755",
		"etc/.wh.keep file 0",
		"fifo fifo 600",
		"hl/ dir 755",
		"hl/a file 644",
		"hl/b hardlink 644 -> hl/a",
		"lnk symlink 777 -> /etc/passwd",
		"new.txt file 644 user.test=v1",
		"suid file 4755",
		"zero char 644 1:5", // mknod under umask 022
	}
	got := tarList(t, l.TarPath)
	if !slices.Equal(got, want) {
		t.Fatalf("layer tar:\n got %q\nwant %q", got, want)
	}
	if _, err := exec.LookPath("tar"); err == nil { // another reader: GNU tar
		out, err := exec.Command("tar", "--xattrs", "-tvf", l.TarPath).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "hl/b link to hl/a") {
			t.Errorf("GNU tar: %v\n%s", err, out)
		}
	}
	b, err := os.ReadFile(l.TarPath)
	must(t, err)
	if fmt.Sprintf("%x", sha256.Sum256(b)) != l.DiffID.Hex || int64(len(b)) != l.Size {
		t.Fatalf("diffID/size do not match the tar")
	}
	if _, err := os.Stat(filepath.Join(l.Dir, "new.txt")); err != nil {
		t.Fatalf("the upper dir did not become the layer dir: %v", err)
	}

	// The same store, remounted over both layers.
	a2 := prepare(t, s, base, l)
	diffViews(t, "remount", view(t, a2.Rootfs), saw)
	must(t, a2.Discard())

	// Another store, from the tars only.
	s2 := newStore(t)
	base2 := unpackBytes(t, s2, baseTar(t))
	l2 := unpackBytes(t, s2, b)
	if l2.DiffID != l.DiffID {
		t.Fatalf("diffID %s after Unpack, %s after Commit", l2.DiffID, l.DiffID)
	}
	a3 := prepare(t, s2, base2, l2)
	got3 := view(t, a3.Rootfs)
	diffViews(t, "unpacked", got3, saw)
	if _, ok := got3["etc/keep"]; ok {
		t.Error("deleted file visible")
	}
	if _, ok := got3["data/a"]; ok {
		t.Error("content of the replaced dir visible")
	}
}

func TestCommitEmpty(t *testing.T) {
	s := newStore(t)
	base := unpackBytes(t, s, baseTar(t))
	for _, parents := range [][]*Layer{nil, {base}} {
		a := prepare(t, s, parents...)
		l, err := a.Commit()
		must(t, err)
		zero := make([]byte, 1024)
		if !l.Empty || l.Size != 1024 || l.DiffID.Hex != fmt.Sprintf("%x", sha256.Sum256(zero)) {
			t.Fatalf("empty commit: %+v", l)
		}
		must(t, a.Discard()) // no-op after Commit
		if _, err := a.Commit(); err == nil {
			t.Fatal("second Commit succeeded")
		}
		// An empty layer is a valid parent (and skipped as a lower dir).
		a2 := prepare(t, s, append(parents, l)...)
		if _, err := os.Stat(a2.Rootfs + "/etc"); (err == nil) != (len(parents) > 0) {
			t.Fatalf("rootfs over empty layer: %v", err)
		}
		must(t, a2.Discard())
	}
}

// TestCommitWalksOnlyUpper: one change over a 5,000-file base gives a tar of one or two entries.
func TestCommitWalksOnlyUpper(t *testing.T) {
	s := newStore(t)
	var ents []ent
	for d := 0; d < 50; d++ {
		ents = append(ents, dir(fmt.Sprintf("d%02d/", d)))
		for f := 0; f < 100; f++ {
			ents = append(ents, file(fmt.Sprintf("d%02d/f%03d", d, f), "x"))
		}
	}
	start := time.Now()
	base := unpackBytes(t, s, mkTar(t, ents...))
	t.Logf("unpacked 5,050 entries in %v", time.Since(start))
	for _, tc := range []struct {
		change func(r string) error
		want   []string
	}{
		{func(r string) error { return os.WriteFile(r+"/top", nil, 0o644) }, []string{"top file 644"}},
		{func(r string) error { return os.WriteFile(r+"/d07/f010", []byte("y"), 0o644) }, []string{"d07/ dir 755", "d07/f010 file 644"}},
	} {
		a := prepare(t, s, base)
		must(t, tc.change(a.Rootfs))
		start := time.Now()
		l, err := a.Commit()
		must(t, err)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("commit of one change took %v", d)
		}
		if got := tarList(t, l.TarPath); !slices.Equal(got, tc.want) {
			t.Errorf("tar %q, want %q", got, tc.want)
		}
	}
}

// TestCommitDeterministic: identical trees give identical tars, and Unpack keeps a tar verbatim.
func TestCommitDeterministic(t *testing.T) {
	s := newStore(t)
	var ids []string
	for i := 0; i < 2; i++ {
		a := prepare(t, s)
		r := a.Rootfs
		must(t, os.MkdirAll(r+"/a/b", 0o755))
		must(t, os.WriteFile(r+"/a/b/f", []byte("same"), 0o644))
		must(t, os.Symlink("b/f", r+"/a/l"))
		must(t, unix.Setxattr(r+"/a/b/f", "user.k", []byte("v"), 0))
		for _, p := range []string{"a/b/f", "a/l", "a/b", "a"} {
			ts := []unix.Timespec{unix.NsecToTimespec(baseTime.UnixNano() + 123), unix.NsecToTimespec(baseTime.UnixNano() + 456)}
			must(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(r, p), ts, unix.AT_SYMLINK_NOFOLLOW))
		}
		l, err := a.Commit()
		must(t, err)
		ids = append(ids, l.DiffID.String())
	}
	if ids[0] != ids[1] {
		t.Fatalf("identical trees, different diffIDs: %v", ids)
	}
}

// TestPrepare130Layers: 130 lower dirs whose paths are each longer than fsconfig's 256-byte string limit and
// together far beyond the page-size limit of mount(2) options.
func TestPrepare130Layers(t *testing.T) {
	needRoot(t)
	s, err := New(filepath.Join(t.TempDir(), strings.Repeat("long-path-", 20), "layers"))
	must(t, err)
	if l := len(filepath.Join(s.root, strings.Repeat("0", 64), diffName)); l <= 256 {
		t.Fatalf("layer paths only %d bytes", l)
	}
	var layers []*Layer
	for i := 0; i < 130; i++ {
		layers = append(layers, unpackBytes(t, s, mkTar(t, file(fmt.Sprintf("f%03d", i), "x"), file("top", fmt.Sprint(i)))))
	}
	a := prepare(t, s, layers...)
	for _, p := range []string{"f000", "f064", "f129"} {
		if _, err := os.Stat(filepath.Join(a.Rootfs, p)); err != nil {
			t.Error(err)
		}
	}
	if b, err := os.ReadFile(a.Rootfs + "/top"); err != nil || string(b) != "129" {
		t.Errorf("top = %q, %v; want the topmost layer's 129", b, err)
	}
	must(t, os.WriteFile(a.Rootfs+"/mine", nil, 0o644))
	l, err := a.Commit()
	must(t, err)
	if got := tarList(t, l.TarPath); !slices.Equal(got, []string{"mine file 644"}) {
		t.Errorf("tar %q", got)
	}
}

func TestDiscard(t *testing.T) {
	s := newStore(t)
	base := unpackBytes(t, s, baseTar(t))
	a := prepare(t, s, base)
	must(t, os.WriteFile(a.Rootfs+"/x", nil, 0o644))
	must(t, os.Remove(a.Rootfs+"/etc/passwd"))
	// a process still in the rootfs: Discard detaches the mount instead of failing
	f, err := os.Open(a.Rootfs + "/etc")
	must(t, err)
	defer f.Close()
	must(t, a.Discard())
	if got := mountsUnder(s.root); len(got) != 0 {
		t.Fatalf("mounted after Discard: %v", got)
	}
	if _, err := os.Stat(filepath.Dir(a.Rootfs)); !os.IsNotExist(err) {
		t.Fatalf("work dir left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(base.Dir, "etc/passwd")); err != nil {
		t.Fatalf("base layer damaged: %v", err)
	}
}
