package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// CommitImage writes cfg and an OCI manifest over layers (whose blobs must already be present) and points
// names (already normalized) at it, all in one atomic index update. With no names the image is kept untagged.
// Names another image had move to this one. Committing the same config and layers again gives the same
// image (same ID and manifest digest) and only adds names.
func (s *Store) CommitImage(cfg *v1.ConfigFile, layers []v1.Descriptor, names []string) (*Image, error) {
	if cfg == nil {
		return nil, errors.New("registry: commit image: no config")
	}
	full := make([]string, 0, len(names))
	for _, n := range names {
		f, err := tagName(n)
		if err != nil {
			return nil, fmt.Errorf("registry: commit image: %w", err)
		}
		full = append(full, f)
	}
	c := *cfg
	if c.RootFS.Type == "" {
		c.RootFS.Type = "layers"
	}
	if c.RootFS.DiffIDs == nil {
		c.RootFS.DiffIDs = []v1.Hash{} // the spec wants an array, never null
	}
	if len(c.RootFS.DiffIDs) != len(layers) {
		return nil, fmt.Errorf("registry: commit image: config lists %d diff IDs for %d layers", len(c.RootFS.DiffIDs), len(layers))
	}
	for i, l := range layers {
		if !validHash(l.Digest) || l.MediaType == "" || l.Size < 0 {
			return nil, fmt.Errorf("registry: commit image: layer %d: descriptor needs a sha256 digest, a media type and a size", i)
		}
	}
	cfgRaw, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("registry: commit image: encode config: %w", err)
	}
	m := &v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(cfgRaw)), Digest: sha256Hash(cfgRaw)},
		Layers:        layers,
	}
	if m.Layers == nil {
		m.Layers = []v1.Descriptor{}
	}
	manRaw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("registry: commit image: encode manifest: %w", err)
	}
	desc := v1.Descriptor{
		MediaType:   types.OCIManifestSchema1,
		Size:        int64(len(manRaw)),
		Digest:      sha256Hash(manRaw),
		Annotations: map[string]string{annotationCreated: time.Now().UTC().Format(time.RFC3339Nano)},
	}
	if c.OS != "" && c.Architecture != "" {
		desc.Platform = &v1.Platform{OS: c.OS, Architecture: c.Architecture, Variant: c.Variant, OSVersion: c.OSVersion}
	}

	unlock, err := s.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	layerDigests := make([]v1.Hash, len(layers))
	for i, l := range layers {
		if !s.HasBlob(l.Digest) {
			return nil, fmt.Errorf("registry: commit image: layer %d blob %s is not in the store", i, l.Digest)
		}
		layerDigests[i] = l.Digest
	}
	if _, err := s.putBlobLocked(cfgRaw); err != nil {
		return nil, fmt.Errorf("registry: commit image: %w", err)
	}
	if _, err := s.putBlobLocked(manRaw); err != nil {
		return nil, fmt.Errorf("registry: commit image: %w", err)
	}
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	if old := findRec(idx, desc.Digest); old != nil {
		desc = old.desc // keep when it first entered the store
	}
	if len(full) == 0 {
		idx.addUntagged(desc)
	}
	for _, n := range full {
		idx.setName(desc, n)
	}
	if err := s.writeIndex(idx); err != nil {
		return nil, err
	}
	if err := s.leases.release(layerDigests); err != nil {
		return nil, err
	}
	rec := findRec(idx, desc.Digest)
	return s.loadImage(rec)
}

// Lookup finds an image by name (normalized as docker does), full or short ID, or manifest digest.
func (s *Store) Lookup(ref string) (*Image, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	recs, _, err := s.resolve(idx, ref)
	if err != nil {
		return nil, err
	}
	return s.loadImage(recs[0])
}

// Images lists every image, newest first (by config creation time, then by when it entered the store).
func (s *Store) Images() ([]*Image, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	var out []*Image
	committed := map[v1.Hash]time.Time{}
	for _, r := range idx.images() {
		img, err := s.loadImage(r)
		if errors.Is(err, fs.ErrNotExist) {
			continue // an entry a foreign tool left without its blobs: nothing to show or use
		}
		if err != nil {
			return nil, err
		}
		committed[img.Digest] = r.committed
		out = append(out, img)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return committed[out[i].Digest].After(committed[out[j].Digest])
	})
	return out, nil
}

// Tag points newName at the image ref names.
func (s *Store) Tag(ref, newName string) error {
	full, err := tagName(newName)
	if err != nil {
		return fmt.Errorf("registry: tag %s: %w", ref, err)
	}
	unlock, err := s.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	recs, _, err := s.resolve(idx, ref)
	if err != nil {
		return err
	}
	idx.setName(recs[0].desc, full)
	return s.writeIndex(idx)
}

// Remove behaves as `docker rmi`: by name it removes that name (and the image when no name is left);
// by ID it removes the image. Blobs no image uses any more are deleted. It returns what it did.
//
// By ID (or manifest digest) every name of the image goes with it, as `docker rmi -f ID` does; docker
// without -f refuses when the names are in several repositories. The lines are docker's:
// "Untagged: docker.io/library/busybox:latest", "Deleted: sha256:<image ID>".
func (s *Store) Remove(ref string) ([]string, error) {
	unlock, err := s.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	recs, byName, err := s.resolve(idx, ref)
	if err != nil {
		return nil, err
	}
	var lines, deletedIDs []string
	if byName != "" {
		idx.dropName(byName)
		lines = append(lines, "Untagged: "+byName)
		if r := findRec(idx, recs[0].desc.Digest); r != nil && len(r.names) > 0 {
			recs = nil // still named: only the name goes
		}
	}
	for _, r := range recs {
		if byName == "" {
			for _, n := range r.names {
				lines = append(lines, "Untagged: "+n)
			}
		}
		id, err := s.configDigest(r)
		if err != nil {
			return nil, err
		}
		idx.removeImage(r.desc.Digest)
		deletedIDs = append(deletedIDs, id.String())
	}
	if err := s.writeIndex(idx); err != nil {
		return nil, err
	}
	// An ID is deleted when no image left uses that config.
	left := map[string]bool{}
	for _, r := range idx.images() {
		if id, err := s.configDigest(r); err == nil {
			left[id.String()] = true
		}
	}
	for _, id := range deletedIDs {
		if !left[id] && !contains(lines, "Deleted: "+id) {
			lines = append(lines, "Deleted: "+id)
		}
	}
	if _, err := s.collectLocked(idx); err != nil {
		return lines, err
	}
	return lines, nil
}

// resolve finds the images ref means. byName is the normalized name when ref matched a name.
// Several images come back only for an ID shared by several manifests.
func (s *Store) resolve(idx *index, ref string) (recs []*imageRec, byName string, err error) {
	if ref == "" {
		return nil, "", errors.New("registry: empty image reference")
	}
	if h, ok := strings.CutPrefix(ref, "sha256:"); ok {
		if !isHex(h) || len(h) > 64 || len(h) < 4 {
			return nil, "", fmt.Errorf("registry: invalid image ID %q", ref)
		}
		return s.byID(idx, ref, h)
	}
	full, nerr := NormalizeName(ref)
	if nerr == nil {
		if r := idx.byName(full); r != nil {
			return []*imageRec{r}, full, nil
		}
		if hasDigest(full) {
			d, err := v1.NewHash(full[strings.Index(full, "@")+1:])
			if err == nil {
				if r := findRec(idx, d); r != nil {
					return []*imageRec{r}, "", nil
				}
			}
		}
	}
	if isHex(ref) && len(ref) >= 4 && len(ref) <= 64 {
		return s.byID(idx, ref, ref)
	}
	if nerr != nil {
		return nil, "", fmt.Errorf("registry: %w", nerr)
	}
	return nil, "", fmt.Errorf("%w: %s", ErrNotFound, FamiliarName(full))
}

// byID matches a full image ID or manifest digest, or a unique image ID prefix.
func (s *Store) byID(idx *index, ref, h string) ([]*imageRec, string, error) {
	var recs []*imageRec
	ids := map[string]bool{}
	for _, r := range idx.images() {
		id, err := s.configDigest(r)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		if strings.HasPrefix(id.Hex, h) || (len(h) == 64 && r.desc.Digest.Hex == h) {
			recs = append(recs, r)
			ids[id.Hex] = true
		}
	}
	if len(recs) == 0 {
		return nil, "", fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	if len(ids) > 1 {
		return nil, "", fmt.Errorf("registry: image ID prefix %q is ambiguous: it matches %d images", ref, len(ids))
	}
	// Named images first, then the newest, for Lookup and Tag to pick recs[0].
	sort.SliceStable(recs, func(i, j int) bool {
		if (len(recs[i].names) > 0) != (len(recs[j].names) > 0) {
			return len(recs[i].names) > 0
		}
		return recs[i].committed.After(recs[j].committed)
	})
	return recs, "", nil
}

func findRec(idx *index, d v1.Hash) *imageRec {
	for _, r := range idx.images() {
		if r.desc.Digest == d {
			return r
		}
	}
	return nil
}

// tagName normalizes a name an image can be given: digests are not names one assigns.
func tagName(n string) (string, error) {
	full, err := NormalizeName(n)
	if err != nil {
		return "", err
	}
	if hasDigest(full) {
		return "", fmt.Errorf("refusing to create a tag with a digest reference: %s", n)
	}
	return full, nil
}

func (s *Store) readManifest(d v1.Hash) (*v1.Manifest, error) {
	raw, err := s.readBlob(d)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytesReader(raw))
	if err != nil {
		return nil, fmt.Errorf("registry: parse manifest %s: %w", d, err)
	}
	return m, nil
}

func (s *Store) configDigest(r *imageRec) (v1.Hash, error) {
	m, err := s.readManifest(r.desc.Digest)
	if err != nil {
		return v1.Hash{}, err
	}
	return m.Config.Digest, nil
}

// loadImage reads the manifest and config of r.
func (s *Store) loadImage(r *imageRec) (*Image, error) {
	if r == nil {
		return nil, errors.New("registry: image vanished from index.json")
	}
	m, err := s.readManifest(r.desc.Digest)
	if err != nil {
		return nil, err
	}
	raw, err := s.readBlob(m.Config.Digest)
	if err != nil {
		return nil, err
	}
	cfg, err := v1.ParseConfigFile(bytesReader(raw))
	if err != nil {
		return nil, fmt.Errorf("registry: parse config %s of image %s: %w", m.Config.Digest, r.desc.Digest, err)
	}
	img := &Image{
		ID:       m.Config.Digest,
		Digest:   r.desc.Digest,
		Names:    append([]string(nil), r.names...),
		Created:  cfg.Created.Time,
		Manifest: m,
		Config:   cfg,
	}
	if img.Created.IsZero() {
		img.Created = r.committed
	}
	for _, l := range m.Layers {
		img.Size += l.Size
	}
	return img, nil
}
