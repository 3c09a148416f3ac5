package snapshot

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// hostileSetup makes a sentinel dir outside the store, whose content must never change.
func hostileSetup(t *testing.T) (top, sentinel string) {
	needRoot(t)
	top = t.TempDir()
	sentinel = filepath.Join(top, "sentinel")
	must(t, os.Mkdir(sentinel, 0o755))
	must(t, os.WriteFile(filepath.Join(sentinel, "secret"), []byte("secret"), 0o600))
	return top, sentinel
}

// checkContained fails when the sentinel changed or a file named evil* exists under top outside allowed dirs,
// or in the host's root.
func checkContained(t *testing.T, top, sentinel string, allowed ...string) {
	t.Helper()
	ents, err := os.ReadDir(sentinel)
	must(t, err)
	if len(ents) != 1 || ents[0].Name() != "secret" {
		t.Errorf("sentinel dir changed: %v", ents)
	}
	var st unix.Stat_t
	must(t, unix.Stat(filepath.Join(sentinel, "secret"), &st))
	if st.Nlink != 1 {
		t.Errorf("sentinel file got hard links: nlink %d", st.Nlink)
	}
	filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasPrefix(d.Name(), "evil") {
			return nil
		}
		for _, a := range allowed {
			if strings.HasPrefix(p, a+"/") {
				return nil
			}
		}
		t.Errorf("written outside: %s", p)
		return nil
	})
	for _, p := range []string{"/evil", "/abs/evil", "/etc/evil"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("written to the host: %s", p)
		}
	}
}

func TestUnpackHostile(t *testing.T) {
	top, sentinel := hostileSetup(t)
	s, err := New(filepath.Join(top, "layers"))
	must(t, err)
	cases := []struct {
		name    string
		ents    []ent
		wantErr string   // "" : must succeed; "*": may fail or succeed (contained either way)
		inside  []string // must exist in the layer dir on success
	}{
		{"dotdot", []ent{file("../evil", "x")}, "escapes", nil},
		{"dotdot deep", []ent{dir("a/"), file("a/../../evil", "x")}, "escapes", nil},
		{"dotdot harmless", []ent{file("a/../evil.ok", "x")}, "", []string{"evil.ok"}},
		{"absolute", []ent{file("/abs/evil", "x")}, "", []string{"abs/evil"}},
		{"symlink to /", []ent{symlink("a", "/"), file("a/evil", "x")}, "", []string{"a", "evil"}},
		{"symlink to a host dir", []ent{symlink("a", sentinel), file("a/evil", "x")}, "*", nil},
		{"symlink chain out", []ent{symlink("up", "../../../../../../../../.."), symlink("chain", "up"+sentinel),
			file("chain/evil", "x")}, "*", nil},
		{"relative symlink out", []ent{dir("d/"), symlink("d/up", "../../.."), file("d/up/evil", "x")}, "", []string{"evil"}},
		{"hardlink dotdot", []ent{hardlink("h", "../../etc/passwd")}, "outside the layer", nil},
		{"hardlink absolute", []ent{hardlink("h", sentinel+"/secret")}, "hard link", nil},
		{"hardlink via symlink", []ent{symlink("s", sentinel), hardlink("h", "s/secret")}, "hard link", nil},
		{"device node", []ent{{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3}}, "", []string{"dev/null"}},
		{"whiteout of dot", []ent{file(".wh..", "")}, "invalid whiteout", nil},
		{"overlay xattr", []ent{{name: "r/", typ: tar.TypeDir, mode: 0o755,
			xattrs: map[string]string{"trusted.overlay.redirect": "/etc", "user.ok": "1"}}}, "", []string{"r"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := s.Unpack(bytes.NewReader(mkTar(t, tc.ents...)))
			switch {
			case err != nil && tc.wantErr == "":
				t.Fatalf("Unpack: %v", err)
			case err != nil && tc.wantErr != "*" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("Unpack error %q, want it to say %q", err, tc.wantErr)
			case err == nil && tc.wantErr != "" && tc.wantErr != "*":
				t.Fatalf("Unpack succeeded, want an error saying %q", tc.wantErr)
			}
			if err != nil {
				t.Logf("refused: %v", err)
			}
			if err == nil {
				for _, p := range tc.inside {
					if _, err := os.Lstat(filepath.Join(l.Dir, p)); err != nil {
						t.Errorf("missing inside the layer: %v", err)
					}
				}
			}
			checkContained(t, top, sentinel, filepath.Join(top, "layers"))
			left, _ := os.ReadDir(s.tmp)
			if len(left) != 0 {
				t.Errorf("temp work left: %v", left)
			}
		})
	}
	// trusted.overlay.* from a tar never reaches the disk; other xattrs do.
	l, err := s.Unpack(bytes.NewReader(mkTar(t, cases[len(cases)-1].ents...)))
	must(t, err)
	if _, err := unix.Getxattr(filepath.Join(l.Dir, "r"), "trusted.overlay.redirect", nil); err != unix.ENODATA {
		t.Errorf("trusted.overlay.redirect set from a tar: %v", err)
	}
	if _, err := unix.Getxattr(filepath.Join(l.Dir, "r"), "user.ok", nil); err != nil {
		t.Errorf("user.ok: %v", err)
	}
}

// TestUnpackWhiteouts: OCI whiteouts become overlay whiteouts, and overlayfs hides the lower entries.
func TestUnpackWhiteouts(t *testing.T) {
	s := newStore(t)
	base := unpackBytes(t, s, baseTar(t))
	top := unpackBytes(t, s, mkTar(t,
		file("etc/.wh.keep", ""), dir("data/"), file("data/.wh..wh..opq", ""), file("data/z", "z"),
		file(".wh..wh.plnk", ""), file("usr/lib/.wh.libc.so", ""),
		file(".wh.bin", ""), dir("bin/"), file("bin/busybox", "bb"), // whiteout then a new dir: opaque
	))
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(top.Dir, "etc/keep"), &st))
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("etc/keep is not a 0:0 char device: mode %o rdev %d", st.Mode, st.Rdev)
	}
	v := make([]byte, 8)
	n, err := unix.Getxattr(filepath.Join(top.Dir, "data"), opaqueXattr, v)
	if err != nil || string(v[:n]) != "y" {
		t.Errorf("data not opaque: %q %v", v[:max(n, 0)], err)
	}
	if _, err := os.Lstat(filepath.Join(top.Dir, ".wh..wh.plnk")); err == nil {
		t.Error("aufs metadata unpacked")
	}
	a := prepare(t, s, base, top)
	got := view(t, a.Rootfs)
	for _, gone := range []string{"etc/keep", "data/a", "data/sub", "usr/lib/libc.so", "bin/sh"} {
		if _, ok := got[gone]; ok {
			t.Errorf("%s visible", gone)
		}
	}
	for _, kept := range []string{"etc/passwd", "data/z", "bin/busybox"} {
		if _, ok := got[kept]; !ok {
			t.Errorf("%s missing", kept)
		}
	}
	// The merged view commits back to the same whiteouts.
	must(t, os.Remove(a.Rootfs+"/etc/passwd"))
	l, err := a.Commit()
	must(t, err)
	want := []string{"etc/ dir 755", "etc/.wh.passwd file 0"}
	if got := tarList(t, l.TarPath); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("tar %q, want %q", got, want)
	}
}

// TestUnpackMetadata: owners, setuid, xattrs, times, sparse files and odd entry orders.
func TestUnpackMetadata(t *testing.T) {
	s := newStore(t)
	big := strings.Repeat("\x00", 1<<20) + "end"
	l := unpackBytes(t, s, mkTar(t,
		ent{name: "deep/er/f", typ: tar.TypeReg, mode: 0o4750, body: "suid", uid: 1234,
			xattrs: map[string]string{"user.a": "b"}}, // parents missing: created 0755
		ent{name: "deep/", typ: tar.TypeDir, mode: 0o711, uid: 7}, // a dir after its content
		symlink("deep/l", "er/f"),
		hardlink("deep/h", "deep/er/f"),
		ent{name: "fifo", typ: tar.TypeFifo, mode: 0o640},
		file("replaced", "one"), dir("replaced/"), file("replaced/x", "x"),
		file("zeros", big),
	))
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(l.Dir, "deep/er/f"), &st))
	if st.Mode&0o7777 != 0o4750 || st.Uid != 1234 || st.Nlink != 2 || st.Mtim.Sec != baseTime.Unix() {
		t.Errorf("deep/er/f: mode %o uid %d nlink %d mtime %d", st.Mode, st.Uid, st.Nlink, st.Mtim.Sec)
	}
	must(t, unix.Lstat(filepath.Join(l.Dir, "deep"), &st))
	if st.Mode&0o7777 != 0o711 || st.Uid != 7 || st.Mtim.Sec != baseTime.Unix() {
		t.Errorf("deep: mode %o uid %d mtime %d", st.Mode, st.Uid, st.Mtim.Sec)
	}
	must(t, unix.Lstat(filepath.Join(l.Dir, "deep/er"), &st))
	if st.Mode&0o7777 != 0o755 {
		t.Errorf("implicit parent deep/er: mode %o", st.Mode)
	}
	must(t, unix.Lstat(filepath.Join(l.Dir, "fifo"), &st))
	if st.Mode != unix.S_IFIFO|0o640 {
		t.Errorf("fifo: mode %o", st.Mode)
	}
	if fi, err := os.Stat(filepath.Join(l.Dir, "replaced/x")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("replaced/x: %v", err)
	}
	if _, err := unix.Getxattr(filepath.Join(l.Dir, "deep/er/f"), "user.a", nil); err != nil {
		t.Errorf("xattr: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(l.Dir, "zeros"))
	if err != nil || string(b) != big {
		t.Errorf("zeros: %d bytes, %v", len(b), err)
	}
}

// TestUnpackSparse: a huge sparse file (GNU and PAX sparse formats, made by GNU tar) keeps its holes.
func TestUnpackSparse(t *testing.T) {
	s := newStore(t)
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar binary to make the fixture")
	}
	src := t.TempDir()
	f, err := os.Create(filepath.Join(src, "huge"))
	must(t, err)
	must(t, f.Truncate(1<<30))
	_, err = f.WriteAt([]byte("tail"), 1<<30-4)
	must(t, err)
	must(t, f.Close())
	for _, format := range []string{"gnu", "posix"} {
		out, err := exec.Command("tar", "-C", src, "--sparse", "--format="+format, "-cf", "-", "huge").Output()
		must(t, err)
		l := unpackBytes(t, s, out)
		var st unix.Stat_t
		must(t, unix.Stat(filepath.Join(l.Dir, "huge"), &st))
		if st.Size != 1<<30 || st.Blocks*512 > 1<<20 {
			t.Errorf("%s: size %d, %d bytes allocated", format, st.Size, st.Blocks*512)
		}
		b := make([]byte, 4)
		g, err := os.Open(filepath.Join(l.Dir, "huge"))
		must(t, err)
		g.ReadAt(b, 1<<30-4)
		g.Close()
		if string(b) != "tail" {
			t.Errorf("%s: tail %q", format, b)
		}
	}
}
