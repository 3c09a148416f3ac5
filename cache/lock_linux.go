package cache

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Use takes the shared "in use" lock that a build holds for its whole run; Exclusive (prune) waits for every
// build to finish and keeps new ones out while it removes entries and layers.
func (ix *Index) Use() (release func(), err error) { return ix.lock(unix.LOCK_SH) }

// Exclusive takes the lock that prune holds.
func (ix *Index) Exclusive() (release func(), err error) { return ix.lock(unix.LOCK_EX) }

func (ix *Index) lock(how int) (func(), error) {
	f, err := os.OpenFile(filepath.Join(ix.dir, "use.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cache: lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cache: lock: %w", err)
	}
	return func() { f.Close() }, nil
}
