package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// TestRemove: a removed layer is gone for Get and List, a hard link of its tar (an image blob) keeps its
// content, nothing is left in the work dir, and removing it again or an invalid diffID are errors.
func TestRemove(t *testing.T) {
	s := newStore(t)
	a := unpackBytes(t, s, mkTar(t, dir("etc/"), file("etc/a", "layer a")))
	b := unpackBytes(t, s, mkTar(t, dir("etc/"), file("etc/b", "layer b")))
	blob := filepath.Join(t.TempDir(), "blob")
	must(t, os.Link(a.TarPath, blob))

	ls, err := s.List()
	must(t, err)
	if len(ls) != 2 || !hasLayer(ls, a.DiffID) || !hasLayer(ls, b.DiffID) {
		t.Fatalf("List = %v, want a and b", ls)
	}

	must(t, s.Remove(a.DiffID))
	if _, err := s.Get(a.DiffID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Remove: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(a.Dir)); !os.IsNotExist(err) {
		t.Errorf("layer dir still there: %v", err)
	}
	if got, err := os.ReadFile(blob); err != nil || string(got) != string(mkTar(t, dir("etc/"), file("etc/a", "layer a"))) {
		t.Errorf("the hard-linked blob lost its content: %v", err)
	}
	if left, _ := os.ReadDir(s.tmp); len(left) != 0 {
		t.Errorf("left in the work dir: %v", left)
	}
	ls, err = s.List()
	must(t, err)
	if len(ls) != 1 || ls[0].DiffID != b.DiffID {
		t.Errorf("List after Remove = %v, want only b", ls)
	}
	if l, err := s.Get(b.DiffID); err != nil || l.Size != b.Size {
		t.Errorf("the other layer: %v", err)
	}

	if err := s.Remove(a.DiffID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove twice: %v, want ErrNotFound", err)
	}
	missing := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", 7)}
	if err := s.Remove(missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove(missing): %v, want ErrNotFound", err)
	}
	for _, bad := range []v1.Hash{{Algorithm: "sha256", Hex: "../../etc"}, {Algorithm: "sha256", Hex: "tmp"}} {
		if err := s.Remove(bad); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("Remove(%v): %v, want an invalid-diffID error", bad, err)
		}
	}
	if _, err := os.Stat(filepath.Join(s.root, tmpDirName)); err != nil {
		t.Errorf("tmp dir: %v", err)
	}
	if left, _ := os.ReadDir(s.tmp); len(left) != 0 {
		t.Errorf("left in the work dir: %v", left)
	}

	// The same content can come back after a removal.
	again := unpackBytes(t, s, mkTar(t, dir("etc/"), file("etc/a", "layer a")))
	if b, err := os.ReadFile(filepath.Join(again.Dir, "etc/a")); err != nil || string(b) != "layer a" {
		t.Errorf("unpack after remove: %q %v", b, err)
	}
}

// TestListSkipsForeignEntries: List ignores tmp/, files and dirs that are no diffID.
func TestListSkipsForeignEntries(t *testing.T) {
	s := newStore(t)
	l := unpackBytes(t, s, baseTar(t))
	must(t, os.Mkdir(filepath.Join(s.root, "not-a-layer"), 0o755))
	must(t, os.WriteFile(filepath.Join(s.root, fmt.Sprintf("%064x", 3)), nil, 0o644))
	ls, err := s.List()
	must(t, err)
	if len(ls) != 1 || ls[0].DiffID != l.DiffID || ls[0].Size != l.Size || ls[0].TarPath != l.TarPath {
		t.Errorf("List = %+v, want just %+v", ls, l)
	}
}

// TestRemoveInterrupted: when deleting the files fails halfway (here a mount inside the layer makes rmdir
// fail; a kill -9 leaves the same state), the layer is already invisible to Get and List, and once the process
// is gone the next New deletes the rest.
func TestRemoveInterrupted(t *testing.T) {
	needRoot(t)
	root := filepath.Join(t.TempDir(), "layers")
	dead, err := New(root)
	must(t, err)
	l := unpackBytes(t, dead, mkTar(t, dir("mnt/"), file("mnt/f", "x"), file("g", "y")))
	must(t, unix.Mount("tmpfs", filepath.Join(l.Dir, "mnt"), "tmpfs", 0, ""))
	t.Cleanup(func() { unmountUnder(root) })

	if err := dead.Remove(l.DiffID); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("Remove with a busy mount inside: %v, want a cleanup error", err)
	}
	if _, err := dead.Get(l.DiffID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a half-deleted layer: %v, want ErrNotFound", err)
	}
	if ls, err := dead.List(); err != nil || len(ls) != 0 {
		t.Errorf("List of a half-deleted layer: %v %v", ls, err)
	}
	left, _ := os.ReadDir(dead.tmp)
	if len(left) != 1 {
		t.Fatalf("the half-deleted layer should wait in the work dir: %v", left)
	}
	dead.lock.Close() // the process dies

	next, err := New(root)
	must(t, err)
	if _, err := os.Stat(dead.tmp); !os.IsNotExist(err) {
		t.Errorf("the dead process's half-deleted layer is still there: %v", err)
	}
	if got := mountsUnder(dead.tmp); len(got) != 0 {
		t.Errorf("mounts left: %v", got)
	}
	if _, err := next.Get(l.DiffID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get: %v", err)
	}
}

func hasLayer(ls []*Layer, d v1.Hash) bool {
	for _, l := range ls {
		if l.DiffID == d {
			return true
		}
	}
	return false
}
