// Package snapshot keeps image layers unpacked in overlayfs form, mounts a writable rootfs per step and turns
// what a step changed (the overlay upper dir) into an OCI layer tar.
//
// On disk, root (the store's layers/ dir) holds:
//
//	<diffID hex>/diff/      the layer unpacked in overlay form (whiteouts are 0:0 char devices, opaque dirs
//	                        carry the xattr trusted.overlay.opaque=y); a lower dir of later mounts
//	<diffID hex>/layer.tar  the uncompressed tar (sha256 = diffID)
//	<diffID hex>/meta.json  size and empty flag
//	tmp/<per-process dir>/  work in progress: flock'd by its process, removed by a later New once unlocked
//
// A layer dir becomes visible only by the rename of a complete temp dir (renameat2 RENAME_NOREPLACE): when two
// processes produce the same layer, the first rename wins and the other drops its copy (same content).
package snapshot

import (
	"errors"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrNotFound is returned (wrapped) for a layer that is not unpacked here.
var ErrNotFound = errors.New("layer not found")

// ErrNotArchive is returned (wrapped) by Extract when r is neither a tar nor a compressed tar; nothing was
// written then. ADD copies such a source as a plain file.
var ErrNotArchive = errors.New("not a tar archive")

// Layer is one layer: its uncompressed tar and its unpacked directory.
type Layer struct {
	DiffID  v1.Hash // sha256 of the uncompressed tar (= its digest: layers are stored uncompressed)
	Size    int64   // bytes of the tar
	Dir     string  // unpacked in overlay form (whiteouts as 0:0 char devices, opaque dirs by xattr); read-only
	TarPath string  // the tar itself
	Empty   bool    // the layer changes nothing
}

// Snapshotter manages layers under one directory (the store's layers/).
type Snapshotter struct {
	root string
	tmp  string // this process's flock'd work dir under root/tmp
	lock io.Closer
}

// New opens (creating when missing) a snapshotter rooted at root.
func New(root string) (*Snapshotter, error) { return newSnapshotter(root) }

// Get returns the layer with this diffID.
func (s *Snapshotter) Get(diffID v1.Hash) (*Layer, error) { return s.get(diffID) }

// Unpack reads an uncompressed layer tar (OCI whiteouts allowed), keeps the tar verbatim and unpacks it, never
// writing outside the new layer's directory. The layer becomes visible only when complete.
func (s *Snapshotter) Unpack(r io.Reader) (*Layer, error) { return s.unpack(r) }

// Active is a writable rootfs mounted over parent layers.
type Active struct {
	Rootfs string // the mounted overlay: read and write here

	s       *Snapshotter
	dir     string // temp dir holding upper/, work/, lower/ (scratch only) and merged/ (= Rootfs)
	mounted bool
	done    bool
}

// Prepare mounts a writable overlay over parents (lowest layer first; none for scratch).
func (s *Snapshotter) Prepare(parents []v1.Hash) (*Active, error) { return s.prepare(parents, false) }

// PrepareForRun is Prepare with a read-only bottom layer of mountpoint stubs (/proc, /dev, /sys, /etc/hosts,
// /etc/resolv.conf, /etc/hostname) beneath the parents, so a sandbox finds its mountpoints without creating them
// in the upper dir: they never reach the layer, and a command that changes nothing leaves an empty one.
func (s *Snapshotter) PrepareForRun(parents []v1.Hash) (*Active, error) {
	return s.prepare(parents, true)
}

// Commit unmounts the rootfs and turns what changed into a layer (walking only the upper dir).
// An unchanged rootfs gives a layer with Empty set.
func (a *Active) Commit() (*Layer, error) { return a.commit() }

// Discard unmounts the rootfs and throws its changes away.
func (a *Active) Discard() error { return a.discard() }

// Extract unpacks the tar stream r (plain, gzip, bzip2 or zstd: detected from its first bytes) into the
// directory dest of the tree rooted at root, as ADD does with a local archive. Paths and symlinks resolve
// inside root: nothing is written outside it.
func Extract(root, dest string, r io.Reader) error { return extract(root, dest, r) }
