package snapshot

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

func (a *Active) commit() (*Layer, error) {
	if a.done {
		return nil, errFinished
	}
	if err := a.unmount(false); err != nil {
		return nil, err // still mounted: the caller may Discard
	}
	a.done = true
	defer os.RemoveAll(a.dir) // work dir, and the upper dir when it did not become a layer
	tmp, err := os.MkdirTemp(a.s.tmp, "layer")
	if err != nil {
		return nil, fmt.Errorf("snapshot: commit: %w", err)
	}
	l, err := a.writeLayer(tmp)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return l, nil
}

func (a *Active) writeLayer(tmp string) (*Layer, error) {
	hf, err := newHashFile(filepath.Join(tmp, tarName))
	if err != nil {
		return nil, fmt.Errorf("snapshot: commit: %w", err)
	}
	defer hf.Close()
	bw := bufio.NewWriterSize(hf, 1<<20)
	n, err := writeDiff(bw, a.upper())
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = hf.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: commit: %w", err)
	}
	// The upper dir becomes the layer's unpacked dir: a rename, no copy.
	if err := os.Rename(a.upper(), filepath.Join(tmp, diffName)); err != nil {
		return nil, fmt.Errorf("snapshot: commit: %w", err)
	}
	return a.s.publish(tmp, hf.sum, hf.size, n == 0)
}

// writeDiff writes the OCI layer tar of an overlay upper dir to w and returns its number of entries. It walks
// the upper dir only, in sorted order (identical trees give identical tars):
//   - a 0:0 character device (overlay whiteout) becomes an empty file .wh.<name>;
//   - a directory with trusted.overlay.opaque=y is followed by <dir>/.wh..wh..opq;
//   - files sharing an inode become hard links to the first path written;
//   - owners, modes (setuid, setgid, sticky), mtimes (whole seconds) and xattrs except trusted.overlay.* are kept.
func writeDiff(w io.Writer, upper string) (int, error) {
	fd, err := unix.Open(upper, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	d := &differ{
		tw:    tar.NewWriter(w),
		upper: upper,
		buf:   make([]byte, 256<<10),
		dent:  make([]byte, 32<<10),
		link:  make([]byte, unix.PathMax),
		xb:    xattrBuf{names: make([]byte, 4096), val: make([]byte, 4096)},
		links: map[[2]uint64]string{},
		pax:   map[string]string{},
	}
	if err := d.walk(fd, ""); err != nil {
		return 0, err
	}
	return d.n, d.tw.Close()
}

type differ struct {
	tw    *tar.Writer
	upper string
	buf   []byte // file content
	dent  []byte // getdents
	link  []byte // readlink
	xb    xattrBuf
	links map[[2]uint64]string // dev, ino -> first path
	pax   map[string]string
	hdr   tar.Header
	n     int
}

var epoch = time.Unix(0, 0)

func (d *differ) walk(dirfd int, prefix string) error {
	names, err := readNames(dirfd, d.dent)
	if err != nil {
		return fmt.Errorf("read dir %s: %w", prefix, err)
	}
	sort.Strings(names)
	var st unix.Stat_t
	for _, name := range names {
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat %s%s: %w", prefix, name, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			// Whiteouts may share one inode (overlayfs links them): test this before hard links.
			if err := d.marker(prefix + whiteoutPrefix + name); err != nil {
				return err
			}
			continue
		}
		if err := d.entry(dirfd, name, prefix+name, &st); err != nil {
			return fmt.Errorf("%s: %w", prefix+name, err)
		}
	}
	return nil
}

// marker writes an empty whiteout file (.wh.<name> or .wh..wh..opq) with fixed metadata.
func (d *differ) marker(name string) error {
	d.hdr = tar.Header{Typeflag: tar.TypeReg, Name: name, ModTime: epoch}
	d.n++
	if err := d.tw.WriteHeader(&d.hdr); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (d *differ) entry(dirfd int, name, rel string, st *unix.Stat_t) error {
	h := &d.hdr
	*h = tar.Header{
		Name:    rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, 0),
	}
	mode := st.Mode & unix.S_IFMT
	if mode == unix.S_IFSOCK {
		return nil // sockets have no tar form
	}
	if mode != unix.S_IFDIR && st.Nlink > 1 {
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := d.links[key]; ok {
			h.Typeflag, h.Linkname = tar.TypeLink, first
			d.n++
			return d.tw.WriteHeader(h)
		}
		d.links[key] = rel
	}
	fd := -1
	defer func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}()
	var err error
	switch mode {
	case unix.S_IFREG:
		h.Typeflag, h.Size = tar.TypeReg, st.Size
		fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOATIME, 0)
		if err == unix.EPERM { // O_NOATIME needs ownership or CAP_FOWNER
			fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		}
	case unix.S_IFDIR:
		h.Typeflag, h.Name = tar.TypeDir, rel+"/"
		fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	case unix.S_IFLNK:
		n, err := unix.Readlinkat(dirfd, name, d.link)
		if err != nil {
			return err
		}
		h.Typeflag, h.Linkname = tar.TypeSymlink, string(d.link[:n])
	case unix.S_IFCHR, unix.S_IFBLK:
		h.Typeflag = tar.TypeChar
		if mode == unix.S_IFBLK {
			h.Typeflag = tar.TypeBlock
		}
		h.Devmajor, h.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		h.Typeflag = tar.TypeFifo
	default:
		return fmt.Errorf("unsupported file type %#o", mode)
	}
	if err != nil {
		return err
	}
	opaque, err := d.xattrs(fd, rel)
	if err != nil {
		return err
	}
	d.n++
	if err := d.tw.WriteHeader(h); err != nil {
		return err
	}
	switch mode {
	case unix.S_IFREG:
		return d.copyFile(fd, st.Size)
	case unix.S_IFDIR:
		if opaque {
			if err := d.marker(rel + "/" + opaqueMarker); err != nil {
				return err
			}
		}
		return d.walk(fd, rel+"/")
	}
	return nil
}

// copyFile copies exactly size bytes of fd into the tar, without the read that would only report EOF.
func (d *differ) copyFile(fd int, size int64) error {
	for size > 0 {
		n, err := unix.Read(fd, d.buf[:min(int64(len(d.buf)), size)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("file shrank while reading (%d bytes missing)", size)
		}
		if _, err := d.tw.Write(d.buf[:n]); err != nil {
			return err
		}
		size -= int64(n)
	}
	return nil
}

// xattrs puts the entry's xattrs in the header as SCHILY.xattr records (overlayfs' own left out) and reports
// whether it is an opaque directory.
func (d *differ) xattrs(fd int, rel string) (opaque bool, err error) {
	p := ""
	if fd < 0 {
		p = d.upper + "/" + rel
	}
	list, err := d.xb.list(fd, p)
	if err != nil {
		return false, fmt.Errorf("list xattrs: %w", err)
	}
	for len(list) > 0 {
		var name string
		name, list = nextName(list)
		if name == "" {
			continue
		}
		if len(name) >= len(overlayXattrPrefix) && name[:len(overlayXattrPrefix)] == overlayXattrPrefix {
			if name == opaqueXattr {
				v, err := d.xb.get(fd, p, name)
				opaque = err == nil && string(v) == "y"
			}
			continue
		}
		v, err := d.xb.get(fd, p, name)
		if err == unix.ENODATA {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("xattr %s: %w", name, err)
		}
		if d.hdr.PAXRecords == nil {
			clear(d.pax)
			d.hdr.PAXRecords = d.pax
		}
		d.pax[paxXattrPrefix+name] = string(v)
	}
	return opaque, nil
}
