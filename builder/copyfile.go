package builder

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/sys/unix"

	"github.com/layerbuild/layerbuild/snapshot"
)

// copier writes COPY/ADD results into a rootfs. Every destination path is resolved inside the rootfs, so a
// symlink already in the image can never send a write to the host.
type copier struct {
	rootfs    string
	chown     *owner  // --chown
	chmod     *uint32 // --chmod
	keepOwner bool    // sources from a stage/image keep their owners
	buf       []byte
	dirTimes  []dirTime
}

type dirTime struct {
	host string
	fi   fs.FileInfo
}

// owner of an entry written from src.
func (w *copier) ownerOf(fi fs.FileInfo) owner {
	if w.chown != nil {
		return *w.chown
	}
	if w.keepOwner && fi != nil {
		uid, gid := fileOwner(fi)
		return owner{uid, gid}
	}
	return owner{}
}

func (w *copier) createdDirOwner() owner {
	if w.chown != nil {
		return *w.chown
	}
	return owner{}
}

// mkdirAll creates the absolute container path p (and its parents) when missing and returns its host path.
func (w *copier) mkdirAll(p string, o owner) (string, error) {
	cur := "/"
	for _, comp := range strings.Split(strings.Trim(path.Clean(p), "/"), "/") {
		if comp == "" {
			continue
		}
		cur = path.Join(cur, comp)
		host, err := securejoin.SecureJoin(w.rootfs, cur)
		if err != nil {
			return "", err
		}
		fi, err := os.Lstat(host)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(host, 0o755); err != nil {
				return "", fmt.Errorf("mkdir %s: %w", cur, err)
			}
			if err := os.Lchown(host, o.uid, o.gid); err != nil {
				return "", fmt.Errorf("chown %s: %w", cur, err)
			}
		case err != nil:
			return "", err
		case !fi.IsDir():
			return "", fmt.Errorf("cannot create directory %s: a file of that name exists", cur)
		}
	}
	return securejoin.SecureJoin(w.rootfs, p)
}

// hostPath resolves the parent of container path p inside the rootfs (creating it) and returns the host
// path of p itself, with its last component not followed.
func (w *copier) hostPath(p string) (string, error) {
	parent, err := w.mkdirAll(path.Dir(p), w.createdDirOwner())
	if err != nil {
		return "", err
	}
	return filepath.Join(parent, path.Base(p)), nil
}

// copyMatch copies one source match to dest.
func (w *copier) copyMatch(m match, dest string, destIsDir, add bool) error {
	if m.dir {
		target := strings.TrimSuffix(dest, "/")
		if target == "" {
			target = "/"
		}
		for _, f := range m.files {
			if err := w.writeEntry(f, path.Join(target, f.rel)); err != nil {
				return err
			}
		}
		return nil
	}
	f := m.files[0]
	if add && f.fi.Mode().IsRegular() {
		ok, err := isArchive(f.host)
		if err != nil {
			return err
		}
		if ok {
			dir := strings.TrimSuffix(dest, "/")
			if _, err := w.mkdirAll(dir, w.createdDirOwner()); err != nil {
				return err
			}
			src, err := os.Open(f.host)
			if err != nil {
				return err
			}
			defer src.Close()
			if err := snapshot.Extract(w.rootfs, dir, src); err != nil {
				return fmt.Errorf("ADD %s: %w", m.name, err)
			}
			return nil
		}
	}
	target := strings.TrimSuffix(dest, "/")
	if destIsDir || w.isDir(target) {
		target = path.Join(target, path.Base("/"+m.name))
	}
	return w.writeEntry(f, target)
}

func (w *copier) isDir(p string) bool {
	host, err := securejoin.SecureJoin(w.rootfs, p)
	if err != nil {
		return false
	}
	fi, err := os.Stat(host)
	return err == nil && fi.IsDir()
}

// writeEntry writes one source entry at container path target.
func (w *copier) writeEntry(f srcFile, target string) error {
	if target == "/" {
		return nil
	}
	host, err := w.hostPath(target)
	if err != nil {
		return err
	}
	o := w.ownerOf(f.fi)
	mode := f.fi.Mode()
	perm := uint32(mode.Perm())
	if mode&fs.ModeSetuid != 0 {
		perm |= unix.S_ISUID
	}
	if mode&fs.ModeSetgid != 0 {
		perm |= unix.S_ISGID
	}
	if mode&fs.ModeSticky != 0 {
		perm |= unix.S_ISVTX
	}
	if w.chmod != nil {
		perm = *w.chmod
	}
	existing, lerr := os.Lstat(host)
	exists := lerr == nil
	if exists && !(mode.IsDir() && existing.IsDir()) {
		if existing.IsDir() {
			if err := os.RemoveAll(host); err != nil {
				return err
			}
		} else if err := os.Remove(host); err != nil {
			return err
		}
	}
	switch {
	case mode.IsDir():
		if !exists || !existing.IsDir() {
			if err := os.Mkdir(host, 0o700); err != nil {
				return fmt.Errorf("mkdir %s: %w", target, err)
			}
		}
		w.dirTimes = append(w.dirTimes, dirTime{host, f.fi})
	case mode.IsRegular():
		if err := w.copyFile(f.host, host); err != nil {
			return fmt.Errorf("copy to %s: %w", target, err)
		}
	case mode&fs.ModeSymlink != 0:
		if err := os.Symlink(f.link, host); err != nil {
			return fmt.Errorf("symlink %s: %w", target, err)
		}
	case mode&fs.ModeNamedPipe != 0:
		if err := unix.Mkfifo(host, perm); err != nil {
			return fmt.Errorf("mkfifo %s: %w", target, err)
		}
	case mode&fs.ModeDevice != 0:
		st, _ := f.fi.Sys().(*syscall.Stat_t)
		typ := uint32(unix.S_IFBLK)
		if mode&fs.ModeCharDevice != 0 {
			typ = unix.S_IFCHR
		}
		if st == nil {
			return nil
		}
		if err := unix.Mknod(host, typ|perm, int(st.Rdev)); err != nil {
			return fmt.Errorf("mknod %s: %w", target, err)
		}
	default:
		return nil // sockets are not copied
	}
	if err := os.Lchown(host, o.uid, o.gid); err != nil {
		return fmt.Errorf("chown %s: %w", target, err)
	}
	if mode&fs.ModeSymlink == 0 {
		if err := unix.Chmod(host, perm); err != nil {
			return fmt.Errorf("chmod %s: %w", target, err)
		}
	}
	if !mode.IsDir() {
		return setTimes(host, f.fi)
	}
	return nil
}

func (w *copier) copyFile(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if w.buf == nil {
		w.buf = make([]byte, 128<<10)
	}
	_, err = io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{in}, w.buf)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeContent writes a heredoc source (COPY <<EOF dest).
func (w *copier) writeContent(target string, destIsDir bool, dest string, c instructions.SourceContent) error {
	if !destIsDir {
		target = dest
	}
	host, err := w.hostPath(target)
	if err != nil {
		return err
	}
	_ = os.Remove(host)
	if err := os.WriteFile(host, []byte(c.Data), 0o644); err != nil {
		return err
	}
	o := w.createdDirOwner()
	if err := os.Lchown(host, o.uid, o.gid); err != nil {
		return err
	}
	if w.chmod != nil {
		return unix.Chmod(host, *w.chmod)
	}
	return unix.Chmod(host, 0o644)
}

// finish sets directory times last, deepest first, since writing into a directory changes its mtime.
func (w *copier) finish() error {
	for i := len(w.dirTimes) - 1; i >= 0; i-- {
		if err := setTimes(w.dirTimes[i].host, w.dirTimes[i].fi); err != nil {
			return err
		}
	}
	return nil
}

func setTimes(host string, fi fs.FileInfo) error {
	mt := unix.NsecToTimespec(fi.ModTime().UnixNano())
	ts := []unix.Timespec{mt, mt}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, host, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", host, err)
	}
	return nil
}

// isArchive tells whether a file ADD should unpack: a tar, possibly gzip, bzip2 or zstd compressed.
func isArchive(name string) (bool, error) {
	f, err := os.Open(name)
	if err != nil {
		return false, err
	}
	defer f.Close()
	r, err := snapshot.Decompress(f)
	if err != nil {
		return false, nil
	}
	defer r.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(r, head)
	return n >= 262 && bytes.HasPrefix(head[257:], []byte("ustar")), nil
}
