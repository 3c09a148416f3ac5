package snapshot

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// applier creates tar entries inside a tree; Unpack and Extract share it. Paths given to it are clean and
// relative to the tree's root; every parent is resolved inside the tree and the last component is never
// followed.
type applier struct {
	t      *tree
	strict bool // Unpack: xattr failures are errors (Extract skips what the filesystem refuses)
	buf    []byte
	w      fdWriter
	dirs   []dirTimes // times of directories, set after their content
}

type dirTimes struct {
	rel string
	ts  [2]unix.Timespec
}

func newApplier(t *tree, strict bool) *applier {
	return &applier{t: t, strict: strict, buf: make([]byte, 256<<10)}
}

func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

func headerTimes(hdr *tar.Header) [2]unix.Timespec {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	return [2]unix.Timespec{timespec(at), timespec(hdr.ModTime)}
}

// entry creates rel as described by hdr (content from r). link is the tree-relative target of a hard link.
func (a *applier) entry(rel, link string, hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeDir, tar.TypeReg, tar.TypeRegA, tar.TypeCont, tar.TypeGNUSparse, tar.TypeSymlink, tar.TypeLink,
		tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	parent, base := splitRel(rel)
	pfd, err := a.t.dir(parent, true)
	if err != nil {
		return err
	}
	isDir := hdr.Typeflag == tar.TypeDir
	var st unix.Stat_t
	switch err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == unix.ENOENT:
	case err != nil:
		return err
	case isDir && st.Mode&unix.S_IFMT == unix.S_IFDIR:
		// merge into the existing directory
	default:
		if hdr.Typeflag == tar.TypeLink && link == rel {
			return errors.New("hard link to itself")
		}
		if err := removeAt(pfd, base); err != nil {
			return fmt.Errorf("replace: %w", err)
		}
		if m := st.Mode & unix.S_IFMT; m == unix.S_IFDIR || m == unix.S_IFLNK {
			// Paths resolved earlier may have gone through what was removed.
			a.t.invalidate()
			if pfd, err = a.t.dir(parent, true); err != nil {
				return err
			}
		}
	}
	perm := uint32(hdr.Mode) & 0o7777
	ts := headerTimes(hdr)
	switch hdr.Typeflag {
	case tar.TypeDir:
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return err
			}
		}
		fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		err = a.fdMeta(fd, hdr, perm)
		unix.Close(fd)
		a.dirs = append(a.dirs, dirTimes{rel, ts})
		return err
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont, tar.TypeGNUSparse:
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		err = a.content(fd, hdr, r)
		if err == nil {
			err = a.fdMeta(fd, hdr, perm)
		}
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return err
		}
		if err := a.pathMeta(pfd, base, hdr, perm, false); err != nil {
			return err
		}
	case tar.TypeLink:
		return a.hardlink(pfd, base, link)
	default: // char, block, fifo
		mode := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode = unix.S_IFCHR
		case tar.TypeBlock:
			mode = unix.S_IFBLK
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(pfd, base, mode|perm, int(dev)); err != nil {
			return err
		}
		if err := a.pathMeta(pfd, base, hdr, perm, true); err != nil {
			return err
		}
	}
	return unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

func (a *applier) hardlink(pfd int, base, link string) error {
	tparent, tbase := splitRel(link)
	if tbase == "" {
		return errors.New("hard link to the root")
	}
	tfd, err := a.t.openDir(tparent, false)
	if err == nil {
		// flags 0: a symlink target is linked itself, never followed
		err = unix.Linkat(tfd, tbase, pfd, base, 0)
		unix.Close(tfd)
	}
	if err != nil {
		return fmt.Errorf("hard link to %s: %w", link, err)
	}
	return nil
}

// content writes a regular file's data. Sparse entries keep their holes, so a huge sparse file costs no disk.
func (a *applier) content(fd int, hdr *tar.Header, r io.Reader) error {
	if !isSparse(hdr) {
		a.w.fd = fd
		_, err := io.CopyBuffer(&a.w, r, a.buf)
		return err
	}
	var off int64
	for {
		n, err := io.ReadFull(r, a.buf)
		for i := 0; i < n; i += 4096 {
			blk := a.buf[i:min(i+4096, n)]
			if !allZero(blk) {
				if _, err := unix.Pwrite(fd, blk, off); err != nil {
					return err
				}
			}
			off += int64(len(blk))
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return unix.Ftruncate(fd, off)
		}
		if err != nil {
			return err
		}
	}
}

func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

var zeroBlock [4096]byte

func allZero(b []byte) bool { return bytes.Equal(b, zeroBlock[:len(b)]) }

// fdMeta sets owner, then mode (chown clears setuid), then xattrs (chown clears security.capability).
func (a *applier) fdMeta(fd int, hdr *tar.Header, perm uint32) error {
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(fd, perm); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return a.xattrs(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) }, false)
}

// pathMeta is fdMeta for what cannot be opened (symlinks, devices, fifos).
func (a *applier) pathMeta(pfd int, base string, hdr *tar.Header, perm uint32, chmod bool) error {
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if chmod {
		// base was just created by us in a dir we hold: not a symlink
		if err := unix.Fchmodat(pfd, base, perm, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if !hasXattrs(hdr) {
		return nil
	}
	p := "/proc/self/fd/" + strconv.Itoa(pfd) + "/" + base
	return a.xattrs(hdr, func(k string, v []byte) error { return unix.Lsetxattr(p, k, v, 0) }, true)
}

func hasXattrs(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, paxXattrPrefix) {
			return true
		}
	}
	return false
}

// xattrs sets the header's SCHILY.xattr records, except trusted.overlay.* ones: those would steer overlayfs
// (redirects, opacity) and only this package writes them.
func (a *applier) xattrs(hdr *tar.Header, set func(string, []byte) error, special bool) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattrPrefix)
		if !ok || strings.HasPrefix(name, overlayXattrPrefix) {
			continue
		}
		err := set(name, []byte(v))
		// user.* xattrs are not allowed on symlinks and devices: EPERM there is the filesystem's rule.
		if err == nil || isNotSup(err) || special && err == unix.EPERM || !a.strict {
			continue
		}
		return fmt.Errorf("xattr %s: %w", name, err)
	}
	return nil
}

// finish sets the times of directories, now that their content is written.
func (a *applier) finish() error {
	for i := len(a.dirs) - 1; i >= 0; i-- {
		d := a.dirs[i]
		parent, base := splitRel(d.rel)
		pfd, err := a.t.dir(parent, false)
		if err == nil {
			err = unix.UtimesNanoAt(pfd, base, d.ts[:], unix.AT_SYMLINK_NOFOLLOW)
		}
		if err != nil && err != unix.ENOENT && err != unix.ENOTDIR {
			return fmt.Errorf("times of %s: %w", d.rel, err)
		}
	}
	a.dirs = a.dirs[:0]
	return nil
}
