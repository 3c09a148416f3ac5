package snapshot

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh." // aufs bookkeeping (.wh..wh.plnk, ...): skipped
	opaqueMarker   = ".wh..wh..opq"
)

// teeReader copies what is read from r to w: the tar is stored verbatim (and hashed) while it is unpacked.
type teeReader struct {
	r io.Reader
	w io.Writer
}

func (t *teeReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		if _, werr := t.w.Write(p[:n]); werr != nil {
			return n, werr
		}
	}
	return n, err
}

func (s *Snapshotter) unpack(r io.Reader) (*Layer, error) {
	tmp, err := os.MkdirTemp(s.tmp, "unpack")
	if err != nil {
		return nil, fmt.Errorf("snapshot: unpack: %w", err)
	}
	published := false
	defer func() {
		if !published {
			os.RemoveAll(tmp)
		}
	}()
	diff := filepath.Join(tmp, diffName)
	if err := os.Mkdir(diff, 0o755); err != nil {
		return nil, fmt.Errorf("snapshot: unpack: %w", err)
	}
	hf, err := newHashFile(filepath.Join(tmp, tarName))
	if err != nil {
		return nil, fmt.Errorf("snapshot: unpack: %w", err)
	}
	defer hf.Close()
	bw := bufio.NewWriterSize(hf, 256<<10)
	src := &teeReader{r: bufio.NewReaderSize(r, 256<<10), w: bw}

	t, err := openTree(diff)
	if err != nil {
		return nil, fmt.Errorf("snapshot: unpack: %w", err)
	}
	defer t.close()
	u := &unpacker{applier: newApplier(t, true)}
	tr := tar.NewReader(src)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("snapshot: unpack: read tar: %w", err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return nil, fmt.Errorf("snapshot: unpack %s: %w", hdr.Name, err)
		}
	}
	// The end-of-archive blocks and any padding belong to the blob too.
	if _, err := io.CopyBuffer(io.Discard, src, u.buf); err != nil {
		return nil, fmt.Errorf("snapshot: unpack: read tar: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("snapshot: unpack: write %s: %w", tarName, err)
	}
	if err := u.finish(); err != nil {
		return nil, fmt.Errorf("snapshot: unpack: %w", err)
	}
	t.close()
	published = true
	return s.publish(tmp, hf.sum, hf.size, u.count == 0)
}

// unpacker turns OCI layer entries into overlay form.
type unpacker struct {
	*applier
	count int // entries that change something
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	if escapes(hdr.Name) {
		return errors.New("name escapes the layer")
	}
	rel := cleanRel(hdr.Name)
	if rel == "" {
		return nil // the layer's root itself
	}
	parent, base := splitRel(rel)
	if strings.HasPrefix(base, whiteoutPrefix) {
		switch {
		case base == opaqueMarker:
			u.count++
			return u.opaque(parent)
		case strings.HasPrefix(base, whiteoutMeta):
			return nil
		}
		name := base[len(whiteoutPrefix):]
		if name == "." || name == ".." {
			return errors.New("invalid whiteout")
		}
		u.count++
		return u.whiteout(parent, name)
	}
	link := ""
	if hdr.Typeflag == tar.TypeLink {
		if escapes(hdr.Linkname) {
			return fmt.Errorf("hard link target %s is outside the layer", hdr.Linkname)
		}
		if link = cleanRel(hdr.Linkname); link == "" {
			return errors.New("hard link to the layer's root")
		}
	}
	u.count++
	if hdr.Typeflag == tar.TypeDir && u.isWhiteout(parent, base) {
		// ".wh.d" then "d/" in one layer: a directory replacing a lower one, which overlayfs needs opaque.
		if err := u.applier.entry(rel, link, hdr, r); err != nil {
			return err
		}
		return u.opaque(rel)
	}
	return u.applier.entry(rel, link, hdr, r)
}

func (u *unpacker) isWhiteout(parent, name string) bool {
	pfd, err := u.t.dir(parent, false)
	if err != nil {
		return false
	}
	var st unix.Stat_t
	return unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil &&
		st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// whiteout records the deletion of parent/name as overlayfs does: a 0:0 character device.
func (u *unpacker) whiteout(parent, name string) error {
	pfd, err := u.t.dir(parent, true)
	if err != nil {
		return err
	}
	if err := removeAt(pfd, name); err != nil && err != unix.ENOENT {
		return err
	}
	u.t.invalidate()
	if pfd, err = u.t.dir(parent, true); err != nil {
		return err
	}
	if err := unix.Mknodat(pfd, name, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("whiteout %s: %w", path.Join(parent, name), err)
	}
	return nil
}

// opaque marks dir as hiding the lower layers' content, as overlayfs does: trusted.overlay.opaque=y.
func (u *unpacker) opaque(dir string) error {
	pfd, err := u.t.dir(dir, true)
	if err != nil {
		return err
	}
	fd, err := unix.Openat(pfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	err = unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0)
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("opaque %s: %w", dir, err)
	}
	return nil
}
