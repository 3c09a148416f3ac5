package builder

import (
	"fmt"
	"io"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/layerbuild/layerbuild/registry"
	"github.com/layerbuild/layerbuild/snapshot"
)

// Import turns a root filesystem tarball (plain, gzip, bzip2 or zstd) into a one-layer image, as
// `docker import` does, and names it.
func (b *Builder) Import(r io.Reader, source string, names []string) (*registry.Image, error) {
	release, err := b.Cache.Use() // prune must not remove the layer between unpack and commit
	if err != nil {
		return nil, err
	}
	defer release()
	dr, err := snapshot.Decompress(r)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", source, err)
	}
	defer dr.Close()
	l, err := b.Snap.Unpack(dr)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", source, err)
	}
	if err := b.Store.LinkBlob(l.TarPath, l.DiffID); err != nil {
		return nil, fmt.Errorf("import %s: %w", source, err)
	}
	now := time.Now().UTC()
	cfg := &v1.ConfigFile{
		Created:      v1.Time{Time: now},
		OS:           "linux",
		Architecture: runtime.GOARCH,
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{l.DiffID}},
		History: []v1.History{{Created: v1.Time{Time: now}, CreatedBy: "layerbuild import",
			Comment: "Imported from " + source}},
	}
	desc := v1.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: l.DiffID, Size: l.Size}
	img, err := b.Store.CommitImage(cfg, []v1.Descriptor{desc}, names)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", source, err)
	}
	return img, nil
}
