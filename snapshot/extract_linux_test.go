package snapshot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

func gz(t *testing.T, b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	must(t, w.Close())
	return out.Bytes()
}

func zst(t *testing.T, b []byte) []byte {
	var out bytes.Buffer
	w, err := zstd.NewWriter(&out)
	must(t, err)
	w.Write(b)
	must(t, w.Close())
	return out.Bytes()
}

func bz2(t *testing.T, b []byte) []byte {
	if _, err := exec.LookPath("bzip2"); err != nil {
		t.Skip("no bzip2 binary to compress the fixture")
	}
	cmd := exec.Command("bzip2", "-c")
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	must(t, err)
	return out
}

// rootfsWithLinks is a container rootfs holding symlinks that point out of it when followed on the host.
func rootfsWithLinks(t *testing.T, root string) {
	must(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(t, os.Symlink("/", filepath.Join(root, "lnk")))
	must(t, os.Symlink("../../../../../..", filepath.Join(root, "up")))
}

func TestExtractFormats(t *testing.T) {
	needRoot(t)
	plain := mkTar(t, dir("d/"), file("d/f", "hello"), ent{name: "own", typ: tar.TypeReg, mode: 0o640, body: "o", uid: 4321},
		file(".wh.plain", "not a whiteout here"), hardlink("d/h", "d/f"), symlink("d/s", "f"))
	for _, tc := range []struct {
		name string
		data func(*testing.T) []byte
	}{
		{"plain", func(*testing.T) []byte { return plain }},
		{"gzip", func(t *testing.T) []byte { return gz(t, plain) }},
		{"zstd", func(t *testing.T) []byte { return zst(t, plain) }},
		{"bzip2", func(t *testing.T) []byte { return bz2(t, plain) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			rootfsWithLinks(t, root)
			must(t, Extract(root, "/app/sub", bytes.NewReader(tc.data(t))))
			if b, err := os.ReadFile(filepath.Join(root, "app/sub/d/f")); err != nil || string(b) != "hello" {
				t.Fatalf("d/f: %q %v", b, err)
			}
			var st unix.Stat_t
			must(t, unix.Lstat(filepath.Join(root, "app/sub/own"), &st))
			if st.Uid != 4321 || st.Mode&0o7777 != 0o640 {
				t.Errorf("own: uid %d mode %o", st.Uid, st.Mode)
			}
			must(t, unix.Lstat(filepath.Join(root, "app/sub/d/h"), &st))
			if st.Nlink != 2 {
				t.Errorf("hard link: nlink %d", st.Nlink)
			}
			if l, _ := os.Readlink(filepath.Join(root, "app/sub/d/s")); l != "f" {
				t.Errorf("symlink: %q", l)
			}
			if _, err := os.Stat(filepath.Join(root, "app/sub/.wh.plain")); err != nil {
				t.Errorf("whiteout-like name not extracted as is: %v", err)
			}
		})
	}
}

func TestExtractNotArchive(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	for _, data := range [][]byte{nil, []byte("just some text, not a tar\n"), gz(t, []byte("gzip of text"))} {
		err := Extract(root, "/dst", bytes.NewReader(data))
		if !errors.Is(err, ErrNotArchive) {
			t.Errorf("Extract(%q): %v, want ErrNotArchive", data[:min(len(data), 10)], err)
		}
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("something written for a non-archive: %v", ents)
	}
	// An empty archive is one: it only makes dest.
	must(t, Extract(root, "/dst", bytes.NewReader(mkTar(t))))
	if _, err := os.Stat(filepath.Join(root, "dst")); err != nil {
		t.Error(err)
	}
}

func TestExtractHostile(t *testing.T) {
	top, sentinel := hostileSetup(t)
	for _, tc := range []struct {
		name    string
		dest    string
		ents    []ent
		wantErr string
		inside  []string // relative to root
	}{
		{"dotdot", "/app", []ent{file("../../evil", "x")}, "", []string{"app/evil"}},
		{"absolute", "/app", []ent{file("/abs/evil", "x")}, "", []string{"app/abs/evil"}},
		{"dest through rootfs symlink", "/lnk/sub", []ent{file("evil", "x")}, "", []string{"sub/evil"}},
		{"entry through absolute rootfs symlink", "/", []ent{file("lnk/etc/evil", "x")}, "", []string{"etc/evil"}},
		{"entry through relative rootfs symlink", "/", []ent{file("up/evil", "x")}, "", []string{"evil"}},
		{"archive symlink to /", "/app", []ent{symlink("s", "/"), file("s/evil", "x")}, "", []string{"evil", "app/s"}},
		{"archive symlink chain", "/app", []ent{symlink("c1", "../../../../.."), symlink("c2", "c1/etc"), file("c2/evil", "x")},
			"", []string{"etc/evil"}},
		{"archive symlink to a host dir", "/app", []ent{symlink("s", sentinel), file("s/evil", "x")}, "*", nil},
		{"symlink replaced by a file", "/", []ent{file("lnk", "now a file"), file("lnk2/evil", "x")}, "", []string{"lnk", "lnk2/evil"}},
		{"hardlink dotdot", "/app", []ent{hardlink("h", "../../etc/passwd")}, "outside the destination", nil},
		{"hardlink to host file", "/app", []ent{hardlink("h", sentinel+"/secret")}, "hard link", nil},
		{"hardlink via symlink", "/app", []ent{symlink("s", sentinel), hardlink("h", "s/secret")}, "hard link", nil},
		{"hardlink via rootfs symlink", "/", []ent{hardlink("h", "lnk"+sentinel+"/secret")}, "hard link", nil},
		{"device node", "/app", []ent{{name: "null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3}}, "", []string{"app/null"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "rootfs")
			rootfsWithLinks(t, root)
			err := Extract(root, tc.dest, bytes.NewReader(gz(t, mkTar(t, tc.ents...))))
			switch {
			case err != nil && tc.wantErr == "":
				t.Fatalf("Extract: %v", err)
			case err != nil && tc.wantErr != "*" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("Extract error %q, want it to say %q", err, tc.wantErr)
			case err == nil && tc.wantErr != "" && tc.wantErr != "*":
				t.Fatalf("Extract succeeded, want an error saying %q", tc.wantErr)
			}
			if err != nil {
				t.Logf("refused: %v", err)
			}
			for _, p := range tc.inside {
				if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
					t.Errorf("missing inside root: %v", err)
				}
			}
			checkContained(t, top, sentinel, root)
		})
	}
}

// TestExtractIntoOverlay: ADD into a mounted rootfs, then Commit sees the extracted files.
func TestExtractIntoOverlay(t *testing.T) {
	s := newStore(t)
	base := unpackBytes(t, s, mkTar(t, dir("etc/"), symlink("lnk", "/"), file("etc/passwd", "root")))
	a := prepare(t, s, base)
	must(t, Extract(a.Rootfs, "/lnk/opt", bytes.NewReader(gz(t, mkTar(t, file("../x", "1"), file("y/z", "2"))))))
	l, err := a.Commit()
	must(t, err)
	want := []string{"opt/ dir 755", "opt/x file 644", "opt/y/ dir 755", "opt/y/z file 644"}
	if got := tarList(t, l.TarPath); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("tar %q, want %q", got, want)
	}
}
