package snapshot

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
)

// countReader counts the bytes read: an empty stream is no archive, 1024 zero bytes are an empty one.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// extract is Extract: plain extraction (whiteout names are ordinary names), ownership and modes from the
// archive, every path resolved inside root as if root were "/" (the archive's and the rootfs' symlinks alike).
func extract(root, dest string, r io.Reader) error {
	dr, release, err := decompress(r)
	defer release()
	if err != nil {
		return fmt.Errorf("snapshot: extract: %w", err)
	}
	cr := &countReader{r: dr}
	tr := tar.NewReader(cr)
	hdr, err := tr.Next()
	if err != nil && (err != io.EOF || cr.n == 0) {
		return fmt.Errorf("snapshot: extract: %w: %v", ErrNotArchive, err)
	}
	t, err := openTree(root)
	if err != nil {
		return fmt.Errorf("snapshot: extract: %w", err)
	}
	defer t.close()
	destRel := cleanRel(dest)
	if _, err := t.dir(destRel, true); err != nil {
		return fmt.Errorf("snapshot: extract: %w", err)
	}
	a := newApplier(t, false)
	for ; hdr != nil; hdr, err = tr.Next() {
		if err := extractEntry(a, destRel, hdr, tr); err != nil {
			return fmt.Errorf("snapshot: extract %s: %w", hdr.Name, err)
		}
	}
	if err != io.EOF && err != nil {
		return fmt.Errorf("snapshot: extract: read archive: %w", err)
	}
	if err := a.finish(); err != nil {
		return fmt.Errorf("snapshot: extract: %w", err)
	}
	return nil
}

// extractEntry places one entry below destRel. A name climbing out ("../../x") is kept inside dest, as an
// absolute one is; a hard link whose target climbs out is refused.
func extractEntry(a *applier, destRel string, hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	rel := cleanRel(path.Join(destRel, cleanRel(hdr.Name)))
	if rel == destRel {
		return nil // dest itself: leave it as it is
	}
	link := ""
	if hdr.Typeflag == tar.TypeLink {
		if escapes(hdr.Linkname) {
			return fmt.Errorf("hard link target %s is outside the destination", hdr.Linkname)
		}
		link = cleanRel(path.Join(destRel, cleanRel(hdr.Linkname)))
		if link == destRel {
			return errors.New("hard link to the destination directory")
		}
	}
	return a.entry(rel, link, hdr, r)
}
