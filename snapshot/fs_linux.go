package snapshot

import (
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Every write below a tree goes through a directory fd obtained with openat2(RESOLVE_IN_ROOT): ".." and
// symlinks (absolute or relative, chained or not) resolve as if the tree were "/", so nothing outside it can be
// reached. The last component is then handled with *at calls that never follow it.
const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// tree is a directory treated as a root.
type tree struct {
	root     int    // O_PATH fd of the tree's root
	cacheRel string // the directory last resolved by dir, and its O_PATH fd (-1: none)
	cacheFd  int
}

func openTree(dir string) (*tree, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	return &tree{root: fd, cacheFd: -1}, nil
}

// close is idempotent.
func (t *tree) close() {
	t.invalidate()
	if t.root >= 0 {
		unix.Close(t.root)
		t.root = -1
	}
}

func (t *tree) invalidate() {
	if t.cacheFd >= 0 {
		unix.Close(t.cacheFd)
	}
	t.cacheFd, t.cacheRel = -1, ""
}

// resolve opens rel (relative, clean; "" is the root) inside the tree.
func (t *tree) resolve(rel string, flags int) (int, error) {
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: resolveFlags}
	for {
		fd, err := unix.Openat2(t.root, rel, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
}

// dir returns an O_PATH fd of the directory rel, creating missing components (0755) when create is set. The fd
// is cached (entries of a tar usually share their parent): the caller must not close it.
func (t *tree) dir(rel string, create bool) (int, error) {
	if t.cacheFd >= 0 && rel == t.cacheRel {
		return t.cacheFd, nil
	}
	fd, err := t.openDir(rel, create)
	if err != nil {
		return -1, err
	}
	t.invalidate()
	t.cacheRel, t.cacheFd = rel, fd
	return fd, nil
}

// openDir is dir without the cache: the caller owns the fd.
func (t *tree) openDir(rel string, create bool) (int, error) {
	fd, err := t.resolve(rel, unix.O_PATH|unix.O_DIRECTORY)
	if err == nil || err != unix.ENOENT || !create {
		return fd, err
	}
	// Walk down from the root, each prefix resolved in the tree, creating what is missing.
	fd, err = t.resolve("", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return -1, err
	}
	prefix := ""
	for _, c := range strings.Split(rel, "/") {
		prefix = path.Join(prefix, c)
		next, err := t.resolve(prefix, unix.O_PATH|unix.O_DIRECTORY)
		what := "open"
		if err == unix.ENOENT {
			what = "mkdir"
			if err = unix.Mkdirat(fd, c, 0o755); err == nil {
				unix.Fchmodat(fd, c, 0o755, 0) // not the umask's choice
			}
			if err == nil || err == unix.EEXIST {
				// Just made (or raced): never follow a symlink here. One that exists but leads nowhere inside
				// the root (a dangling or escaping symlink) fails here.
				next, err = unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				if err == unix.ENOTDIR || err == unix.ELOOP {
					err = fmt.Errorf("a symlink leading to no directory inside the root: %w", err)
				}
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, fmt.Errorf("%s %s: %w", what, prefix, err)
		}
		fd = next
	}
	return fd, nil
}

// cleanRel makes a tar name relative to its root: "/a/../b/" and "../../b" give "b"; "/" and "." give "".
func cleanRel(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// escapes reports whether the relative name climbs above its root ("../x", "a/../../x").
func escapes(name string) bool {
	if strings.HasPrefix(name, "/") {
		return false
	}
	c := path.Clean(name)
	return c == ".." || strings.HasPrefix(c, "../")
}

// splitRel splits a clean relative path into its parent dir ("" for the root) and last component.
func splitRel(rel string) (string, string) {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:]
	}
	return "", rel
}

// removeAt removes name in dirfd, recursively for a directory, never following symlinks.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err != unix.EISDIR {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	names, err := readNames(fd, make([]byte, 16<<10))
	for _, n := range names {
		if err == nil {
			err = removeAt(fd, n)
		}
	}
	unix.Close(fd)
	if err != nil {
		return err
	}
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

// readNames lists a directory opened for reading ("." and ".." left out), unsorted.
func readNames(fd int, buf []byte) ([]string, error) {
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

func writeFull(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// fdWriter is a plain io.Writer over a raw fd: no os.File per file, and no ReaderFrom, so io.CopyBuffer
// really uses the one buffer it is given.
type fdWriter struct{ fd int }

func (w *fdWriter) Write(p []byte) (int, error) {
	if err := writeFull(w.fd, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// xattrBuf lists and reads extended attributes with reused buffers. With fd < 0 it works on path without
// following a final symlink.
type xattrBuf struct {
	names []byte
	val   []byte
}

func isNotSup(err error) bool { return err == unix.ENOTSUP || err == unix.EOPNOTSUPP }

// list returns the NUL-separated names (nil when there are none or the filesystem has no xattrs).
func (x *xattrBuf) list(fd int, p string) ([]byte, error) {
	for {
		var n int
		var err error
		if fd >= 0 {
			n, err = unix.Flistxattr(fd, x.names)
		} else {
			n, err = unix.Llistxattr(p, x.names)
		}
		switch {
		case err == unix.ERANGE:
			x.names = make([]byte, 2*len(x.names)+4096)
			continue
		case isNotSup(err):
			return nil, nil
		case err != nil:
			return nil, err
		}
		return x.names[:n], nil
	}
}

func (x *xattrBuf) get(fd int, p, name string) ([]byte, error) {
	for {
		var n int
		var err error
		if fd >= 0 {
			n, err = unix.Fgetxattr(fd, name, x.val)
		} else {
			n, err = unix.Lgetxattr(p, name, x.val)
		}
		if err == unix.ERANGE {
			x.val = make([]byte, 2*len(x.val)+4096)
			continue
		}
		if err != nil {
			return nil, err
		}
		return x.val[:n], nil
	}
}

// nextName pops the first name off a NUL-separated xattr list.
func nextName(list []byte) (string, []byte) {
	i := 0
	for i < len(list) && list[i] != 0 {
		i++
	}
	name := string(list[:i])
	if i < len(list) {
		i++
	}
	return name, list[i:]
}

const (
	overlayXattrPrefix = "trusted.overlay."
	opaqueXattr        = "trusted.overlay.opaque"
	paxXattrPrefix     = "SCHILY.xattr."
)
