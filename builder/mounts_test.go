package builder

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

func TestOpenCacheMountSharing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mounts", "c")
	got, done, err := openCacheMount(dir, instructions.MountSharingLocked, 0o750, os.Getuid(), os.Getgid())
	if err != nil || got != dir {
		t.Fatalf("locked: %q %v", got, err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("mode of a new cache: %v %v", fi.Mode(), err)
	}
	// While it is locked, a private mount gets a fresh directory of its own, removed by its cleanup.
	priv, pdone, err := openCacheMount(dir, instructions.MountSharingPrivate, 0o755, os.Getuid(), os.Getgid())
	if err != nil || priv == dir {
		t.Fatalf("private while locked: %q %v", priv, err)
	}
	pdone()
	if _, err := os.Stat(priv); !os.IsNotExist(err) {
		t.Errorf("the private directory stays: %v", err)
	}
	done()
	// Once free, private uses the cache itself; an existing cache keeps its mode.
	priv, pdone, err = openCacheMount(dir, instructions.MountSharingPrivate, 0o700, os.Getuid(), os.Getgid())
	if err != nil || priv != dir {
		t.Fatalf("private when free: %q %v", priv, err)
	}
	pdone()
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o750 {
		t.Errorf("an existing cache changed mode: %v", fi.Mode())
	}
}
