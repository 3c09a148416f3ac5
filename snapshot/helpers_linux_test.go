package snapshot

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// TestMain fixes the umask: expected modes below do not depend on the caller's.
func TestMain(m *testing.M) {
	unix.Umask(0o022)
	os.Exit(m.Run())
}

var baseTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// ent describes one tar entry to build.
type ent struct {
	name   string
	typ    byte
	mode   int64
	body   string
	link   string
	uid    int
	xattrs map[string]string
	major  int64
	minor  int64
}

func dir(name string) ent        { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func file(name, body string) ent { return ent{name: name, typ: tar.TypeReg, mode: 0o644, body: body} }
func symlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeSymlink, mode: 0o777, link: target}
}
func hardlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeLink, mode: 0o644, link: target}
}

func mkTar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Uid: e.uid, Gid: e.uid,
			ModTime: baseTime, Size: int64(len(e.body)), Devmajor: e.major, Devminor: e.minor}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		for k, v := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (overlay mounts, mknod, chown, trusted.* xattrs)")
	}
}

func newStore(t testing.TB) *Snapshotter {
	t.Helper()
	needRoot(t)
	s, err := New(filepath.Join(t.TempDir(), "layers"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func unpackBytes(t testing.TB, s *Snapshotter, b []byte) *Layer {
	t.Helper()
	l, err := s.Unpack(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(b); l.DiffID.Hex != fmt.Sprintf("%x", want) || l.Size != int64(len(b)) {
		t.Fatalf("Unpack: diffID %s size %d, want sha256:%x size %d", l.DiffID, l.Size, want, len(b))
	}
	return l
}

func prepare(t testing.TB, s *Snapshotter, layers ...*Layer) *Active {
	t.Helper()
	var ids []v1.Hash
	for _, l := range layers {
		ids = append(ids, l.DiffID)
	}
	a, err := s.Prepare(ids)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Discard() })
	return a
}

// tarList describes every entry of the tar at path: "name type mode [-> link] [xattrs]".
func tarList(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		s := fmt.Sprintf("%s %s %o", h.Name, typeName(h.Typeflag), h.Mode)
		if h.Linkname != "" {
			s += " -> " + h.Linkname
		}
		if h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock {
			s += fmt.Sprintf(" %d:%d", h.Devmajor, h.Devminor)
		}
		var xs []string
		for k, v := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				xs = append(xs, x+"="+v)
			}
		}
		sort.Strings(xs)
		if len(xs) > 0 {
			s += " " + strings.Join(xs, ",")
		}
		out = append(out, s)
	}
}

func typeName(f byte) string {
	switch f {
	case tar.TypeReg:
		return "file"
	case tar.TypeDir:
		return "dir"
	case tar.TypeLink:
		return "hardlink"
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeFifo:
		return "fifo"
	case tar.TypeChar:
		return "char"
	case tar.TypeBlock:
		return "block"
	}
	return string(f)
}

// view describes a mounted rootfs as a step sees it: type, mode, owner, size, link count, link target, content
// hash, user.* xattrs and mtime (whole seconds) of every path but the root.
func view(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("%o %d:%d size=%d nlink=%d mtime=%d", st.Mode, st.Uid, st.Gid, st.Size, st.Nlink, st.Mtim.Sec)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			desc = fmt.Sprintf("%o %d:%d mtime=%d", st.Mode, st.Uid, st.Gid, st.Mtim.Sec)
		case unix.S_IFLNK:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" sha=%x", sha256.Sum256(b))
		case unix.S_IFCHR, unix.S_IFBLK:
			desc += fmt.Sprintf(" dev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			buf := make([]byte, 4096)
			if n, err := unix.Llistxattr(p, buf); err == nil {
				for _, x := range strings.Split(string(buf[:n]), "\x00") {
					if strings.HasPrefix(x, "user.") {
						v := make([]byte, 256)
						m, _ := unix.Lgetxattr(p, x, v)
						desc += " " + x + "=" + string(v[:max(m, 0)])
					}
				}
			}
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffViews(t testing.TB, what string, got, want map[string]string) {
	t.Helper()
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if got[k] != want[k] {
			t.Errorf("%s: %s: got %q, want %q", what, k, got[k], want[k])
		}
	}
}

// mountsUnder lists the mount points below dir.
func mountsUnder(dir string) []string {
	var out []string
	for _, mp := range mountPoints() {
		if strings.HasPrefix(mp, dir+"/") || mp == dir {
			out = append(out, mp)
		}
	}
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
