package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestGet(t *testing.T) {
	s := newStore(t)
	l := unpackBytes(t, s, baseTar(t))
	got, err := s.Get(l.DiffID)
	must(t, err)
	if *got != *l {
		t.Errorf("Get = %+v, want %+v", got, l)
	}
	missing := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", 1)}
	if _, err := s.Get(missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing): %v", err)
	}
	for _, bad := range []v1.Hash{{Algorithm: "sha256", Hex: "../../etc"}, {Algorithm: "md5", Hex: l.DiffID.Hex}} {
		if _, err := s.Get(bad); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%v): %v, want an invalid-diffID error", bad, err)
		}
	}
	if _, err := s.Prepare([]v1.Hash{missing}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Prepare over a missing layer: %v", err)
	}
}

// TestConcurrentUnpack: two processes' snapshotters on one root making the same layer: one copy wins, both
// get it, nothing is left in tmp.
func TestConcurrentUnpack(t *testing.T) {
	needRoot(t)
	root := filepath.Join(t.TempDir(), "layers")
	s1, err := New(root)
	must(t, err)
	s2, err := New(root)
	must(t, err)
	data := baseTar(t)
	var wg sync.WaitGroup
	ids := make([]v1.Hash, 8)
	errs := make([]error, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := s1
			if i%2 == 1 {
				s = s2
			}
			l, err := s.Unpack(bytes.NewReader(data))
			if err == nil {
				ids[i] = l.DiffID
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		must(t, err)
		if ids[i] != ids[0] {
			t.Fatalf("diffIDs differ: %v", ids)
		}
	}
	l, err := s1.Get(ids[0])
	must(t, err)
	if b, err := os.ReadFile(filepath.Join(l.Dir, "etc/passwd")); err != nil || len(b) == 0 {
		t.Fatalf("layer content: %v", err)
	}
	for _, s := range []*Snapshotter{s1, s2} {
		if left, _ := os.ReadDir(s.tmp); len(left) != 0 {
			t.Errorf("left in %s: %v", s.tmp, left)
		}
	}
}

// TestNewCleansStale: the work of a dead process (its lock released, its overlay still mounted) is unmounted
// and removed by the next New; a live process's work is kept.
func TestNewCleansStale(t *testing.T) {
	needRoot(t)
	root := filepath.Join(t.TempDir(), "layers")
	live, err := New(root)
	must(t, err)
	liveA, err := live.Prepare(nil)
	must(t, err)
	defer liveA.Discard()

	dead, err := New(root)
	must(t, err)
	a, err := dead.Prepare(nil)
	must(t, err)
	must(t, os.WriteFile(a.Rootfs+"/x", []byte("x"), 0o644))
	dead.lock.Close() // what the kernel does when the process dies

	if _, err := New(root); err != nil {
		t.Fatal(err)
	}
	if got := mountsUnder(dead.tmp); len(got) != 0 {
		t.Errorf("dead process's mounts left: %v", got)
	}
	if _, err := os.Stat(dead.tmp); !os.IsNotExist(err) {
		t.Errorf("dead process's work dir left: %v", err)
	}
	if got := mountsUnder(live.tmp); len(got) != 1 {
		t.Errorf("live process's mount touched: %v", got)
	}
	must(t, os.WriteFile(liveA.Rootfs+"/y", nil, 0o644))
	l, err := liveA.Commit()
	must(t, err)
	if got := tarList(t, l.TarPath); len(got) != 1 || got[0] != "y file 644" {
		t.Errorf("live commit: %q", got)
	}
	must(t, a.Discard()) // already gone: fine
}
