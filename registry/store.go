// Package registry holds images: the local store (an OCI image layout on disk that skopeo and umoci read)
// and, later, remote registries.
//
// On-disk layout of a store root:
//
//	oci-layout, index.json, blobs/sha256/<hex>   the OCI image layout (read by skopeo, umoci, go-containerregistry)
//	lock                                         flock taken around every index update and garbage collection
//	tmp/                                         temp files renamed into place (same filesystem as blobs/)
//	tmp/leases/                                  one file per live Store that wrote blobs not yet committed
//	layers/, cache/, ...                         owned by other packages
//
// Crash safety: blobs and index.json only ever appear by rename(2) of a complete, fsynced temp file,
// so a process killed at any moment leaves either the old or the new state. Leftover temp files are
// ignored; ours (named "registry-*") are removed by Open once older than an hour.
package registry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrNotFound is returned (wrapped) when a reference names no image in the store.
var ErrNotFound = errors.New("no such image")

// Image is one image of the local store.
type Image struct {
	ID       v1.Hash  // config digest, as docker's image ID
	Digest   v1.Hash  // manifest digest
	Names    []string // normalized references pointing at it, e.g. docker.io/library/busybox:latest
	Created  time.Time
	Size     int64 // sum of the layer blob sizes
	Manifest *v1.Manifest
	Config   *v1.ConfigFile
}

// Store is the local image store rooted at one directory. The directory is an OCI image layout
// (oci-layout, index.json, blobs/sha256/...); other packages keep their own subdirectories beside it
// (layers/, cache/, tmp/). Every write is atomic: temp file, fsync, rename.
//
// A Store is safe for use by several goroutines, and several processes may open the same root.
type Store struct {
	root   string
	leases *leaseSet
}

const (
	ociLayoutFile    = "oci-layout"
	ociLayoutContent = `{"imageLayoutVersion":"1.0.0"}`
	indexFileName    = "index.json"
	lockFileName     = "lock"
	tmpDirName       = "tmp"
	leaseDirName     = "leases"
	tempPrefix       = "registry-"
	staleTempAge     = time.Hour
)

// Open opens (creating when missing) the store at root.
func Open(root string) (*Store, error) {
	if root == "" {
		return nil, errors.New("registry: open store: empty root directory")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("registry: open store %s: %w", root, err)
	}
	s := &Store{root: abs, leases: newLeaseSet(filepath.Join(abs, tmpDirName, leaseDirName))}
	for _, dir := range []string{abs, filepath.Join(abs, "blobs", "sha256"), s.TempDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("registry: open store %s: %w", abs, err)
		}
	}
	if err := s.initLayout(); err != nil {
		return nil, fmt.Errorf("registry: open store %s: %w", abs, err)
	}
	s.cleanTemp()
	// The lease file (if this Store ever writes one) is released once the Store is unreachable:
	// nobody can commit the leased blobs any more.
	runtime.AddCleanup(s, func(l *leaseSet) { l.close() }, s.leases)
	return s, nil
}

// initLayout writes oci-layout and an empty index.json when they are missing. It takes the lock
// only then, so opening an existing store (possibly read-only) writes nothing.
func (s *Store) initLayout() error {
	layoutPath := filepath.Join(s.root, ociLayoutFile)
	indexPath := filepath.Join(s.root, indexFileName)
	if fileExists(layoutPath) && fileExists(indexPath) {
		return nil
	}
	unlock, err := s.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	if !fileExists(layoutPath) {
		if err := s.writeFileAtomic(layoutPath, []byte(ociLayoutContent)); err != nil {
			return err
		}
	}
	if !fileExists(indexPath) {
		if err := s.writeIndex(newIndex()); err != nil {
			return err
		}
	}
	return nil
}

// cleanTemp removes this package's temp files left in tmp/ by killed processes. Other packages'
// entries in tmp/ are theirs: a directory's mtime does not tell whether it is still in use.
func (s *Store) cleanTemp() {
	entries, err := os.ReadDir(s.TempDir())
	if err != nil {
		return
	}
	cutoff := time.Now().Add(-staleTempAge)
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		info, err := e.Info()
		if err == nil && info.ModTime().Before(cutoff) {
			_ = os.Remove(filepath.Join(s.TempDir(), e.Name()))
		}
	}
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// TempDir is a directory on the same filesystem as the blobs, for files that are renamed in later.
func (s *Store) TempDir() string { return filepath.Join(s.root, tmpDirName) }

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
