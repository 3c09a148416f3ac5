package snapshot

import (
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestPrepareForRunHasStubsThatNeverReachTheLayer(t *testing.T) {
	needRoot(t)
	s := newStore(t)
	base := unpackBytes(t, s, mkTar(t, dir("etc"), file("etc/passwd", "root:x:0:0::/:/bin/sh\n"), dir("bin")))

	a, err := s.PrepareForRun([]v1.Hash{base.DiffID})
	must(t, err)
	for _, p := range []string{"proc", "dev", "sys", "etc/hosts", "etc/resolv.conf", "etc/hostname"} {
		if _, err := os.Lstat(filepath.Join(a.Rootfs, p)); err != nil {
			t.Errorf("PrepareForRun should show the stub %s: %v", p, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(a.Rootfs, "etc", "passwd")); string(b) != "root:x:0:0::/:/bin/sh\n" {
		t.Errorf("the image's files stay on top of the stubs: %q", b)
	}
	l, err := a.Commit()
	must(t, err)
	if !l.Empty {
		t.Errorf("an untouched run rootfs commits an empty layer; got %v", tarList(t, l.TarPath))
	}

	// A write next to a stub copies up only what it touches; the stubs stay out of the tar.
	a, err = s.PrepareForRun([]v1.Hash{base.DiffID})
	must(t, err)
	must(t, os.WriteFile(filepath.Join(a.Rootfs, "etc", "new"), []byte("x"), 0o644))
	l, err = a.Commit()
	must(t, err)
	for _, e := range tarList(t, l.TarPath) {
		for _, stub := range []string{"etc/hosts", "proc", "dev", "sys"} {
			if len(e) >= len(stub) && e[:len(stub)] == stub {
				t.Errorf("stub %s reached the layer: %v", stub, tarList(t, l.TarPath))
			}
		}
	}

	// Plain Prepare (COPY sources and targets) shows the image alone.
	p, err := s.Prepare([]v1.Hash{base.DiffID})
	must(t, err)
	defer p.Discard()
	if _, err := os.Lstat(filepath.Join(p.Rootfs, "proc")); err == nil {
		t.Error("Prepare must not show mountpoint stubs")
	}
}
