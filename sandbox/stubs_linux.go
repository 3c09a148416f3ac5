package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// stubs creates the mountpoints the sandbox needs but the rootfs lacks (/proc, /dev, /sys, /etc/hosts,
// ...) and removes them again after the sandbox is gone, so that the rootfs (an overlay whose upper dir
// becomes a layer) ends up exactly as the command left it.
//
// Creation happens before anything runs in the rootfs, so resolving paths with securejoin is enough.
// Removal happens after a possibly hostile command ran: every lookup then goes through openat2 with
// RESOLVE_IN_ROOT from a handle on the rootfs, and an entry is removed only when it is still the very
// inode we created (a command that swapped /etc for a symlink to a host path cannot make us delete
// anything outside the rootfs, or anything that is not ours).
type stubs struct {
	root    string
	rootFd  int
	created []stubEntry
	mine    map[string]bool // rel paths we created
	parents []*parentTimes  // pre-existing dirs whose mtime our stubs changed
}

type stubEntry struct {
	rel      string
	dir      bool
	dev, ino uint64
}

type parentTimes struct {
	rel          string
	dev, ino     uint64
	atime, mtime unix.Timespec // before we touched it
	after        unix.Timespec // mtime once our stubs were in place
	untouched    bool          // the command did not change it (decided before removal)
}

func newStubs(root string) (*stubs, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sandbox: open rootfs: %w", &os.PathError{Op: "open", Path: root, Err: err})
	}
	return &stubs{root: root, rootFd: fd, mine: map[string]bool{}}, nil
}

// ensure resolves path inside the rootfs and makes sure it exists as a directory (dir) or a non-directory,
// creating what is missing. It returns the resolved path inside the rootfs.
func (s *stubs) ensure(path string, dir bool) (string, error) {
	full, err := securejoin.SecureJoin(s.root, path)
	if err != nil {
		return "", fmt.Errorf("sandbox: resolve %s in rootfs: %w", path, err)
	}
	rel, err := filepath.Rel(s.root, full)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("sandbox: %s resolves outside the rootfs", path)
	}
	if rel == "." {
		return "", fmt.Errorf("sandbox: %s resolves to the rootfs itself", path)
	}
	rel = "/" + rel
	cur := "/"
	parts := strings.Split(rel[1:], "/")
	for i, part := range parts {
		next := filepath.Join(cur, part)
		last := i == len(parts)-1
		var st unix.Stat_t
		err := unix.Lstat(s.root+next, &st)
		if err == nil {
			isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
			switch {
			case st.Mode&unix.S_IFMT == unix.S_IFLNK:
				return "", fmt.Errorf("sandbox: %s: unexpected symlink at %s", path, next)
			case !last && !isDir, last && dir && !isDir:
				return "", fmt.Errorf("sandbox: %s: %s is not a directory", path, next)
			case last && !dir && isDir:
				return "", fmt.Errorf("sandbox: %s: %s is a directory", path, next)
			}
			cur = next
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			return "", fmt.Errorf("sandbox: stat %s in rootfs: %w", next, err)
		}
		if err := s.noteParent(cur); err != nil {
			return "", err
		}
		if last && !dir {
			fd, err := unix.Open(s.root+next, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
			if err != nil {
				return "", fmt.Errorf("sandbox: create mountpoint %s: %w", next, err)
			}
			unix.Close(fd)
		} else if err := unix.Mkdir(s.root+next, 0o755); err != nil {
			return "", fmt.Errorf("sandbox: create mountpoint %s: %w", next, err)
		}
		if err := unix.Lstat(s.root+next, &st); err != nil {
			return "", fmt.Errorf("sandbox: stat mountpoint %s: %w", next, err)
		}
		s.created = append(s.created, stubEntry{rel: next, dir: !last || dir, dev: st.Dev, ino: st.Ino})
		s.mine[next] = true
		cur = next
	}
	return rel, nil
}

// noteParent remembers the times of a pre-existing directory we are about to create an entry in.
func (s *stubs) noteParent(rel string) error {
	if s.mine[rel] {
		return nil
	}
	for _, p := range s.parents {
		if p.rel == rel {
			return nil
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(s.root+rel, &st); err != nil {
		return fmt.Errorf("sandbox: stat %s in rootfs: %w", rel, err)
	}
	s.parents = append(s.parents, &parentTimes{rel: rel, dev: st.Dev, ino: st.Ino, atime: st.Atim, mtime: st.Mtim})
	return nil
}

// sealed records the parents' mtimes once all stubs exist: a parent whose mtime still has that value
// after the run was not modified by the command, so its original times can be restored.
func (s *stubs) sealed() {
	for _, p := range s.parents {
		var st unix.Stat_t
		if err := unix.Lstat(s.root+p.rel, &st); err == nil {
			p.after = st.Mtim
		}
	}
}

// openInRoot opens rel (a directory) inside the rootfs, resolving every component inside it.
func (s *stubs) openInRoot(rel string) (int, error) {
	rel = strings.TrimPrefix(rel, "/")
	if rel == "" {
		rel = "."
	}
	return unix.Openat2(s.rootFd, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// sameInode reports whether name in dirfd is (dev, ino), without following a symlink.
func sameInode(dirfd int, name string, dev, ino uint64) (unix.Stat_t, bool) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, false
	}
	return st, st.Dev == dev && st.Ino == ino
}

// cleanup removes the stubs (newest first) and restores the parents' times. Entries that moved, changed
// type, are no longer ours or (for dirs) are no longer empty stay where they are. It returns the first
// real failure; s is unusable afterwards.
func (s *stubs) cleanup() error {
	defer unix.Close(s.rootFd)
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	for _, p := range s.parents {
		if fd, err := s.openInRoot(filepath.Dir(p.rel)); err == nil {
			st, ok := sameInode(fd, lastName(p.rel), p.dev, p.ino)
			p.untouched = ok && st.Mtim == p.after
			unix.Close(fd)
		}
	}
	for i := len(s.created) - 1; i >= 0; i-- {
		e := s.created[i]
		fd, err := s.openInRoot(filepath.Dir(e.rel))
		if err != nil {
			continue // the parent is gone or moved: nothing of ours to remove there
		}
		name := lastName(e.rel)
		st, ok := sameInode(fd, name, e.dev, e.ino)
		switch {
		case !ok:
		case e.dir:
			if err := unix.Unlinkat(fd, name, unix.AT_REMOVEDIR); err != nil &&
				!errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
				keep(fmt.Errorf("sandbox: remove mountpoint %s: %w", e.rel, err))
			}
		case st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == 0:
			if err := unix.Unlinkat(fd, name, 0); err != nil {
				keep(fmt.Errorf("sandbox: remove mountpoint %s: %w", e.rel, err))
			}
		}
		unix.Close(fd)
	}
	for _, p := range s.parents {
		if !p.untouched {
			continue
		}
		fd, err := s.openInRoot(p.rel)
		if err != nil {
			continue
		}
		if _, ok := sameInode(fd, ".", p.dev, p.ino); ok {
			if err := unix.UtimesNanoAt(fd, ".", []unix.Timespec{p.atime, p.mtime}, 0); err != nil {
				keep(fmt.Errorf("sandbox: restore times of %s: %w", p.rel, err))
			}
		}
		unix.Close(fd)
	}
	return first
}

func lastName(rel string) string {
	if rel == "/" {
		return "."
	}
	return filepath.Base(rel)
}
