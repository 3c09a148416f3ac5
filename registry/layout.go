package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// linkFile is os.Link; tests replace it to exercise the copy fallback.
var linkFile = os.Link

// HasBlob tells whether blob d is present.
func (s *Store) HasBlob(d v1.Hash) bool {
	if !validHash(d) {
		return false
	}
	info, err := os.Stat(s.BlobPath(d))
	return err == nil && info.Mode().IsRegular()
}

// BlobPath is where blob d lives (whether or not it exists).
func (s *Store) BlobPath(d v1.Hash) string {
	return filepath.Join(s.root, "blobs", d.Algorithm, d.Hex)
}

// OpenBlob opens blob d for reading.
func (s *Store) OpenBlob(d v1.Hash) (io.ReadCloser, error) {
	if !validHash(d) {
		return nil, fmt.Errorf("registry: open blob %q: invalid sha256 digest", d.String())
	}
	f, err := os.Open(s.BlobPath(d))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("registry: blob %s not in store: %w", d, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("registry: open blob %s: %w", d, err)
	}
	return f, nil
}

// readBlob reads a whole (small) blob: manifests, configs, indexes.
func (s *Store) readBlob(d v1.Hash) ([]byte, error) {
	rc, err := s.OpenBlob(d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("registry: read blob %s: %w", d, err)
	}
	return b, nil
}

// WriteBlob stores the bytes of r as a content-addressed blob and returns its digest and size.
// The blob is leased (kept from garbage collection) until an image using it is committed through
// this Store, or the Store is dropped.
func (s *Store) WriteBlob(r io.Reader) (v1.Hash, int64, error) {
	tmp, d, n, err := s.spool(r)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer os.Remove(tmp) // gone already when renamed in
	unlock, err := s.Lock()
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer unlock()
	if err := s.leases.add(d); err != nil {
		return v1.Hash{}, 0, err
	}
	if err := s.installLocked(tmp, d); err != nil {
		return v1.Hash{}, 0, err
	}
	return d, n, nil
}

// LinkBlob makes the complete file at path visible as blob d (hard link, else copy), atomically.
// The caller vouches that d is the sha256 of the file; a copy (another filesystem) is verified.
// Like WriteBlob, it leases d until an image using it is committed.
func (s *Store) LinkBlob(path string, d v1.Hash) error {
	if !validHash(d) {
		return fmt.Errorf("registry: link blob %s: invalid sha256 digest %q", path, d.String())
	}
	if s.HasBlob(d) {
		// Lease it and make sure it survived until then (a concurrent GC may just have removed it).
		present, err := s.leaseIfPresent(d)
		if err != nil || present {
			return err
		}
	}
	tmp := s.tempName("link")
	if err := linkFile(path, tmp); err != nil {
		if !isCrossDevice(err) {
			return fmt.Errorf("registry: link blob %s from %s: %w", d, path, err)
		}
		if err := s.copyVerified(path, tmp, d); err != nil {
			return err
		}
	}
	// If tmp and the blob are already links of one inode, rename does nothing and tmp stays.
	defer os.Remove(tmp)
	return s.installLeased(tmp, d)
}

func (s *Store) leaseIfPresent(d v1.Hash) (bool, error) {
	unlock, err := s.Lock()
	if err != nil {
		return false, err
	}
	defer unlock()
	if !s.HasBlob(d) {
		return false, nil
	}
	return true, s.leases.add(d)
}

// copyVerified copies src to the temp file dst, checking that its sha256 is want.
func (s *Store) copyVerified(src, dst string, want v1.Hash) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("registry: link blob %s: %w", want, err)
	}
	defer in.Close()
	got, _, err := writeSynced(dst, in)
	if err != nil {
		os.Remove(dst)
		return fmt.Errorf("registry: copy blob %s from %s: %w", want, src, err)
	}
	if got != want {
		os.Remove(dst)
		return fmt.Errorf("registry: link blob %s: content of %s has digest %s", want, src, got)
	}
	return nil
}

// installLocked renames the complete temp file tmp into place as blob d, unless d is there already.
// The caller holds the store lock, so garbage collection cannot run in between.
func (s *Store) installLocked(tmp string, d v1.Hash) error {
	if s.HasBlob(d) {
		return nil
	}
	dst := s.BlobPath(d)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("registry: store blob %s: %w", d, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("registry: store blob %s: %w", d, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("registry: store blob %s: %w", d, err)
	}
	return nil
}

// putBlobLocked stores small in-memory content (configs, manifests); the caller holds the lock.
func (s *Store) putBlobLocked(data []byte) (v1.Hash, error) {
	d := sha256Hash(data)
	if s.HasBlob(d) {
		return d, nil
	}
	tmp, got, _, err := s.spool(bytesReader(data))
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.Remove(tmp)
	if got != d {
		return v1.Hash{}, fmt.Errorf("registry: store blob %s: wrote content with digest %s", d, got)
	}
	return d, s.installLocked(tmp, d)
}

// spool copies r into a new fsynced temp file, hashing it on the way.
func (s *Store) spool(r io.Reader) (path string, d v1.Hash, n int64, err error) {
	path = s.tempName("blob")
	d, n, err = writeSynced(path, r)
	if err != nil {
		os.Remove(path)
		return "", v1.Hash{}, 0, fmt.Errorf("registry: write blob: %w", err)
	}
	return path, d, n, nil
}

// writeSynced creates path exclusively, copies r into it, fsyncs and closes it.
func writeSynced(path string, r io.Reader) (v1.Hash, int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return v1.Hash{}, 0, err
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, n, nil
}

// writeFileAtomic replaces path with data: temp file in tmp/, fsync, rename, fsync of the directory.
func (s *Store) writeFileAtomic(path string, data []byte) error {
	tmp := s.tempName(filepath.Base(path))
	if _, _, err := writeSynced(tmp, bytesReader(data)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("registry: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("registry: write %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("registry: write %s: %w", path, err)
	}
	return nil
}

// tempName is a fresh name in tmp/ that cleanTemp recognizes as ours.
func (s *Store) tempName(kind string) string {
	return filepath.Join(s.TempDir(), fmt.Sprintf("%s%s-%d-%s", tempPrefix, kind, os.Getpid(), randomHex(8)))
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// validHash accepts sha256 digests only: the layout keeps them under blobs/sha256.
func validHash(d v1.Hash) bool {
	return d.Algorithm == "sha256" && isHex(d.Hex) && len(d.Hex) == 64
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// installLeased leases blob d for this Store and moves the complete file tmp into place as d, under the lock.
func (s *Store) installLeased(tmp string, d v1.Hash) error {
	unlock, err := s.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := s.leases.add(d); err != nil {
		return err
	}
	return s.installLocked(tmp, d)
}
