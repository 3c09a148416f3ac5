package registry

import (
	"archive/tar"
	"encoding/json"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// writeOCIArchive writes a tar of an OCI image layout holding just images: oci-layout, index.json and
// blobs/sha256/<hex>. Each name gets one index entry whose org.opencontainers.image.ref.name is its tag
// ("latest"), as skopeo's oci-archive:FILE:TAG and umoci's --image DIR:TAG expect, and whose
// io.containerd.image.name is the full name (containerd's convention, which keeps two repositories
// with the same tag apart). An image saved by ID gets one entry without names.
func (s *Store) writeOCIArchive(tw *tar.Writer, images []*savedImage) error {
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
	for _, si := range images {
		d := v1.Descriptor{
			MediaType: si.img.Manifest.MediaType,
			Size:      -1,
			Digest:    si.img.Digest,
		}
		if d.MediaType == "" {
			d.MediaType = types.OCIManifestSchema1
		}
		if c := si.img.Config; c.OS != "" && c.Architecture != "" {
			d.Platform = &v1.Platform{OS: c.OS, Architecture: c.Architecture, Variant: c.Variant, OSVersion: c.OSVersion}
		}
		raw, err := s.readBlob(si.img.Digest)
		if err != nil {
			return err
		}
		d.Size = int64(len(raw))
		if len(si.tags) == 0 {
			idx.Manifests = append(idx.Manifests, d)
		}
		for _, t := range si.tags {
			e := d
			_, tag := SplitName(t)
			e.Annotations = map[string]string{annotationContainer: t}
			if tag != "" && !strings.Contains(tag, ":") {
				e.Annotations[annotationRefName] = tag
			}
			idx.Manifests = append(idx.Manifests, e)
		}
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := writeBytes(tw, ociLayoutFile, []byte(ociLayoutContent)); err != nil {
		return err
	}
	if err := writeBytes(tw, indexFileName, raw); err != nil {
		return err
	}
	for _, dir := range []string{"blobs", "blobs/sha256"} {
		if err := writeDir(tw, dir); err != nil {
			return err
		}
	}
	seen := map[v1.Hash]bool{}
	blob := func(d v1.Hash, size int64) error {
		if seen[d] {
			return nil
		}
		seen[d] = true
		return s.writeBlobEntry(tw, "blobs/sha256/"+d.Hex, d, size)
	}
	for _, si := range images {
		if err := blob(si.img.Digest, -1); err != nil {
			return err
		}
		m := si.img.Manifest
		if err := blob(m.Config.Digest, m.Config.Size); err != nil {
			return err
		}
		for _, l := range m.Layers {
			if err := blob(l.Digest, l.Size); err != nil {
				return err
			}
		}
	}
	return nil
}
