package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// gzipped gives the compressed media type for an uncompressed layer media type ("" when not one).
var gzipped = map[types.MediaType]types.MediaType{
	types.OCIUncompressedLayer:           types.OCILayer,
	types.DockerUncompressedLayer:        types.DockerLayer,
	types.OCIUncompressedRestrictedLayer: types.OCIRestrictedLayer,
}

// V1Image gives a go-containerregistry view of img, for save, push and validation.
//
// The view is the image in distribution form, as docker pushes it: layers the store keeps
// uncompressed (what the builder commits) are presented gzip-compressed, computed on the fly and
// streamed (their digests cost one compression pass, done when the manifest is first asked for).
// The config, and so the image ID, is the stored one; the manifest digest differs from img.Digest
// when such layers exist. go-containerregistry's validate.Image, which gunzips every layer, accepts it.
// An image without uncompressed layers is the stored one, read through go-containerregistry's layout.
func (s *Store) V1Image(img *Image) (v1.Image, error) {
	if img == nil || img.Manifest == nil {
		return nil, errors.New("registry: V1Image: no image")
	}
	for _, l := range img.Manifest.Layers {
		if gzipped[l.MediaType] != "" {
			return partial.CompressedToImage(&distImage{s: s, img: img})
		}
	}
	p, err := layout.FromPath(s.root)
	if err != nil {
		return nil, fmt.Errorf("registry: open layout %s: %w", s.root, err)
	}
	vi, err := p.Image(img.Digest)
	if err != nil {
		return nil, fmt.Errorf("registry: image %s: %w", img.Digest, err)
	}
	return vi, nil
}

// distImage is a partial.CompressedImageCore over a stored image, compressing uncompressed layers.
type distImage struct {
	s   *Store
	img *Image

	once   sync.Once
	raw    []byte
	err    error
	layers map[v1.Hash]partial.CompressedLayer // by presented digest
}

func (d *distImage) MediaType() (types.MediaType, error) {
	if d.img.Manifest.MediaType == "" {
		return types.OCIManifestSchema1, nil
	}
	return d.img.Manifest.MediaType, nil
}

func (d *distImage) RawConfigFile() ([]byte, error) { return d.s.readBlob(d.img.ID) }

func (d *distImage) RawManifest() ([]byte, error) {
	d.once.Do(d.build)
	return d.raw, d.err
}

func (d *distImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == d.img.Manifest.Config.Digest {
		return &storeBlob{s: d.s, desc: d.img.Manifest.Config}, nil
	}
	if _, err := d.RawManifest(); err != nil {
		return nil, err
	}
	if l, ok := d.layers[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("registry: image %s has no layer %s", d.img.Digest, h)
}

// build computes the distribution manifest: the stored one with compressed layer descriptors.
func (d *distImage) build() {
	m := *d.img.Manifest
	m.Layers = make([]v1.Descriptor, len(d.img.Manifest.Layers))
	d.layers = map[v1.Hash]partial.CompressedLayer{}
	for i, l := range d.img.Manifest.Layers {
		gz := gzipped[l.MediaType]
		if gz == "" {
			m.Layers[i] = l
			d.layers[l.Digest] = &storeBlob{s: d.s, desc: l}
			continue
		}
		if rec, ok := d.s.compressedFor("gzip", l.Digest); ok && gz != types.OCIRestrictedLayer {
			// Compressed before (an earlier push, or pulled so): serve the kept blob, compress nothing.
			m.Layers[i] = v1.Descriptor{MediaType: gz, Size: rec.Size, Digest: rec.Digest, URLs: l.URLs, Annotations: l.Annotations}
			d.layers[rec.Digest] = &storeBlob{s: d.s, desc: m.Layers[i]}
			continue
		}
		layer, err := partial.UncompressedToLayer(&uncompressedBlob{s: d.s, desc: l, mediaType: gz})
		if err == nil {
			m.Layers[i], err = layerDescriptor(layer, l)
		}
		if err != nil {
			d.err = fmt.Errorf("registry: compress layer %s: %w", l.Digest, err)
			return
		}
		d.layers[m.Layers[i].Digest] = layer
	}
	d.raw, d.err = json.Marshal(&m)
}

func layerDescriptor(layer v1.Layer, stored v1.Descriptor) (v1.Descriptor, error) {
	dg, err := layer.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	size, err := layer.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, _ := layer.MediaType()
	return v1.Descriptor{MediaType: mt, Size: size, Digest: dg, URLs: stored.URLs, Annotations: stored.Annotations}, nil
}

// storeBlob is a blob served as it is stored.
type storeBlob struct {
	s    *Store
	desc v1.Descriptor
}

func (b *storeBlob) Digest() (v1.Hash, error)            { return b.desc.Digest, nil }
func (b *storeBlob) Compressed() (io.ReadCloser, error)  { return b.s.OpenBlob(b.desc.Digest) }
func (b *storeBlob) Size() (int64, error)                { return b.desc.Size, nil }
func (b *storeBlob) MediaType() (types.MediaType, error) { return b.desc.MediaType, nil }
func (b *storeBlob) Descriptor() (*v1.Descriptor, error) { d := b.desc; return &d, nil }

// uncompressedBlob is a layer stored uncompressed: its digest is its diffID.
type uncompressedBlob struct {
	s         *Store
	desc      v1.Descriptor
	mediaType types.MediaType // presented (compressed) media type
}

func (b *uncompressedBlob) DiffID() (v1.Hash, error)             { return b.desc.Digest, nil }
func (b *uncompressedBlob) Uncompressed() (io.ReadCloser, error) { return b.s.OpenBlob(b.desc.Digest) }
func (b *uncompressedBlob) MediaType() (types.MediaType, error)  { return b.mediaType, nil }
