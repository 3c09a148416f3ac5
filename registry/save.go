package registry

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// savedImage is one image to write, with the names it is saved under (none when asked for by ID).
type savedImage struct {
	img  *Image
	tags []string
}

// Save writes the images refs name to w as "docker-archive" (loads with docker/podman load) or
// "oci-archive" (a tar of an OCI layout). Blobs are streamed from the store, never held in memory,
// and leased for the duration so a concurrent Remove cannot collect them halfway.
func (s *Store) Save(w io.Writer, refs []string, format string) error {
	if len(refs) == 0 {
		return errors.New("registry: save: no image given")
	}
	var write func(*tar.Writer, []*savedImage) error
	switch format {
	case "docker-archive", "docker":
		write = s.writeDockerArchive
	case "oci-archive", "oci":
		write = s.writeOCIArchive
	default:
		return fmt.Errorf("registry: save: unknown format %q (want docker-archive or oci-archive)", format)
	}
	images, err := s.resolveForSave(refs)
	if err != nil {
		return err
	}
	var blobs []v1.Hash
	for _, si := range images {
		blobs = append(blobs, si.img.Digest, si.img.ID)
		for _, l := range si.img.Manifest.Layers {
			blobs = append(blobs, l.Digest)
		}
	}
	if err := s.leaseAll(blobs); err != nil {
		return fmt.Errorf("registry: save: %w", err)
	}
	defer s.releaseAll(blobs)

	tw := tar.NewWriter(w)
	if err := write(tw, images); err != nil {
		return fmt.Errorf("registry: save: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("registry: save: %w", err)
	}
	return nil
}

// resolveForSave looks up every ref and groups the names per image, in the order given.
func (s *Store) resolveForSave(refs []string) ([]*savedImage, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	var out []*savedImage
	byDigest := map[v1.Hash]*savedImage{}
	for _, ref := range refs {
		recs, byName, err := s.resolve(idx, ref)
		if err != nil {
			return nil, fmt.Errorf("registry: save: %w", err)
		}
		si := byDigest[recs[0].desc.Digest]
		if si == nil {
			img, err := s.loadImage(recs[0])
			if err != nil {
				return nil, fmt.Errorf("registry: save: %w", err)
			}
			si = &savedImage{img: img}
			byDigest[img.Digest] = si
			out = append(out, si)
		}
		if byName != "" && !contains(si.tags, byName) {
			si.tags = append(si.tags, byName)
		}
	}
	return out, nil
}

// leaseAll checks the blobs are present and leases them, under the lock.
func (s *Store) leaseAll(ds []v1.Hash) error {
	unlock, err := s.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	for i, d := range ds {
		if !s.HasBlob(d) {
			s.releaseLocked(ds[:i])
			return fmt.Errorf("blob %s is not in the store", d)
		}
		if err := s.leases.add(d); err != nil {
			s.releaseLocked(ds[:i])
			return err
		}
	}
	return nil
}

func (s *Store) releaseAll(ds []v1.Hash) {
	if unlock, err := s.Lock(); err == nil {
		s.releaseLocked(ds)
		unlock()
	}
}

func (s *Store) releaseLocked(ds []v1.Hash) { _ = s.leases.release(ds) }

// dockerManifestEntry is one element of manifest.json in a `docker save` archive.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// writeDockerArchive writes docker save's format: manifest.json, <config hex>.json and
// <diffID hex>/layer.tar per layer (uncompressed, as docker writes them; compressed blobs are
// decompressed on the way). RepoTags are full names (docker.io/library/busybox:latest): docker load
// reads them as busybox:latest, while podman load would turn a short "busybox:latest" into
// localhost/busybox:latest.
func (s *Store) writeDockerArchive(tw *tar.Writer, images []*savedImage) error {
	var manifest []dockerManifestEntry
	type layerFile struct {
		name string
		desc v1.Descriptor
	}
	var layers []layerFile
	seen := map[string]bool{}
	for _, si := range images {
		diffIDs := si.img.Config.RootFS.DiffIDs
		if len(diffIDs) != len(si.img.Manifest.Layers) {
			return fmt.Errorf("image %s: config has %d diff IDs for %d layers", si.img.ID, len(diffIDs), len(si.img.Manifest.Layers))
		}
		e := dockerManifestEntry{Config: si.img.ID.Hex + ".json", RepoTags: append([]string{}, si.tags...)}
		for i, l := range si.img.Manifest.Layers {
			name := diffIDs[i].Hex + "/layer.tar"
			e.Layers = append(e.Layers, name)
			if !seen[name] {
				seen[name] = true
				layers = append(layers, layerFile{name: name, desc: l})
			}
		}
		manifest = append(manifest, e)
	}
	raw, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	if err := writeBytes(tw, "manifest.json", raw); err != nil {
		return err
	}
	for _, si := range images {
		raw, err := s.readBlob(si.img.ID)
		if err != nil {
			return err
		}
		if err := writeBytes(tw, si.img.ID.Hex+".json", raw); err != nil {
			return err
		}
	}
	for _, l := range layers {
		if err := writeDir(tw, l.name[:len(l.name)-len("/layer.tar")]); err != nil {
			return err
		}
		if err := s.writeUncompressedLayer(tw, l.name, l.desc.Digest); err != nil {
			return err
		}
	}
	return nil
}

// writeUncompressedLayer writes blob d as an uncompressed tar entry. A compressed blob is read twice:
// once to learn the size the tar header needs, once to copy.
func (s *Store) writeUncompressedLayer(tw *tar.Writer, name string, d v1.Hash) error {
	open := func() (io.Reader, func(), bool, error) {
		f, err := os.Open(s.BlobPath(d))
		if err != nil {
			return nil, nil, false, fmt.Errorf("layer %s: %w", d, err)
		}
		r, closeR, compressed, err := decompress(f)
		if err != nil {
			f.Close()
			return nil, nil, false, fmt.Errorf("layer %s: %w", d, err)
		}
		return r, func() { closeR(); f.Close() }, compressed, nil
	}
	r, done, compressed, err := open()
	if err != nil {
		return err
	}
	if !compressed {
		defer done()
		info, err := os.Stat(s.BlobPath(d))
		if err != nil {
			return fmt.Errorf("layer %s: %w", d, err)
		}
		return writeEntry(tw, name, r, info.Size())
	}
	size, err := io.Copy(io.Discard, r)
	done()
	if err != nil {
		return fmt.Errorf("layer %s: %w", d, err)
	}
	r, done, _, err = open()
	if err != nil {
		return err
	}
	defer done()
	return writeEntry(tw, name, r, size)
}

// decompress returns a reader of the uncompressed bytes of r, sniffing gzip and zstd.
func decompress(r io.Reader) (io.Reader, func(), bool, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, false, err
		}
		return zr, func() { zr.Close() }, true, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, nil, false, err
		}
		return zr, zr.Close, true, nil
	}
	return br, func() {}, false, nil
}

// Entries get fixed times and modes so the same images always save to the same bytes.
var archiveTime = time.Unix(0, 0).UTC()

func writeEntry(tw *tar.Writer, name string, r io.Reader, size int64) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: archiveTime, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	n, err := io.Copy(tw, r)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("write %s: %d bytes, expected %d", name, n, size)
	}
	return nil
}

func writeBytes(tw *tar.Writer, name string, b []byte) error {
	return writeEntry(tw, name, bytes.NewReader(b), int64(len(b)))
}

func writeDir(tw *tar.Writer, name string) error {
	hdr := &tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: archiveTime, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// writeBlobEntry streams blob d into the archive under name, checking its size against the descriptor.
func (s *Store) writeBlobEntry(tw *tar.Writer, name string, d v1.Hash, size int64) error {
	f, err := os.Open(s.BlobPath(d))
	if err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	if size >= 0 && info.Size() != size {
		return fmt.Errorf("blob %s is %d bytes, its descriptor says %d", d, info.Size(), size)
	}
	return writeEntry(tw, name, f, info.Size())
}
