package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// Remove deletes the unpacked layer diffID: its dir, tar and metadata. It does not ask whether anything still
// needs the layer (cache entries, images, a mounted rootfs stacked on it): the caller decides that.
//
// The layer dir is first renamed into this process's flock'd work dir, in one rename(2) on the same
// filesystem, and only then deleted. So Get sees either the whole layer or none of it, and when the process
// is killed halfway through, what is left sits in a work dir that the next New removes. The tar is unlinked,
// not truncated: an image blob hard-linked to it keeps its content.
func (s *Snapshotter) Remove(diffID v1.Hash) error { return s.remove(diffID) }

// List returns every layer unpacked here, sorted by diffID. Work in progress (tmp/) is not listed.
func (s *Snapshotter) List() ([]*Layer, error) { return s.list() }

func (s *Snapshotter) remove(diffID v1.Hash) error {
	hx, err := layerHex(diffID)
	if err != nil {
		return err
	}
	trash, err := os.MkdirTemp(s.tmp, "rm-")
	if err != nil {
		return fmt.Errorf("snapshot: remove layer %s: %w", diffID, err)
	}
	gone := filepath.Join(trash, hx)
	err = unix.Renameat2(unix.AT_FDCWD, filepath.Join(s.root, hx), unix.AT_FDCWD, gone, unix.RENAME_NOREPLACE)
	if err != nil {
		os.Remove(trash)
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("snapshot: remove layer %s: %w", diffID, ErrNotFound)
		}
		return fmt.Errorf("snapshot: remove layer %s: rename into %s: %w", diffID, trash, err)
	}
	// From here on the layer is gone for every reader; deleting its files is cleanup.
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("snapshot: layer %s removed, but deleting its files failed (the next run retries): %w",
			diffID, err)
	}
	return nil
}

func (s *Snapshotter) list() ([]*Layer, error) {
	des, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("snapshot: list layers: %w", err)
	}
	var out []*Layer
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		h := v1.Hash{Algorithm: "sha256", Hex: de.Name()}
		if _, err := layerHex(h); err != nil {
			continue // tmp/ and anything foreign
		}
		l, err := s.get(h)
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("snapshot: list layers: %w", err)
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DiffID.Hex < out[j].DiffID.Hex })
	return out, nil
}
