package registry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// Lock takes the store-wide exclusive lock (flock on root/lock) used around index updates and
// garbage collection. flock locks belong to an open file description, so two Lock calls exclude each
// other whether they come from two processes or two goroutines of one process. The lock is released
// by unlock, or by the kernel when the process dies.
//
// Do not call other Store methods that write (WriteBlob, LinkBlob, CommitImage, Tag, Remove) while
// holding it: they take it themselves and would wait forever.
func (s *Store) Lock() (unlock func(), err error) {
	path := filepath.Join(s.root, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("registry: lock store: %w", err)
	}
	if err := flock(f, unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("registry: lock store %s: %w", path, err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			_ = flock(f, unix.LOCK_UN)
			f.Close()
		})
	}, nil
}

// flock applies how to f, retrying when a signal interrupts the wait.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// tryLockExclusive reports whether an exclusive lock on f could be taken without waiting.
func tryLockExclusive(f *os.File) (bool, error) {
	err := flock(f, unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

// isCrossDevice tells whether a link error means "use a copy instead": another filesystem, or a
// filesystem (or policy) that refuses hard links.
func isCrossDevice(err error) bool {
	return errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EMLINK) ||
		errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP)
}

const lockShared = unix.LOCK_SH
