package registry

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/docker/go-units"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/layerbuild/layerbuild/snapshot"
)

// Pull fetches ref from its registry into the store and tags it with ref's normalized name. From a
// multi-platform index it takes o.Platform (default linux and this machine's architecture). Every blob
// is verified (digest and size, and each layer's uncompressed content against the config's diffID) before
// it becomes visible; blobs already present are not fetched again. The tag is written last, in one index
// update: an interrupted pull leaves no tag, and the next pull fetches only what is missing.
func Pull(ctx context.Context, s *Store, ref string, o RemoteOptions) (*Image, error) {
	localName, err := tagName(ref)
	if err != nil && !strings.Contains(ref, "@") {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	var names []string
	if err == nil {
		names = []string{localName}
	}
	r, err := o.ParseRemote(ref)
	if err != nil {
		return nil, err
	}
	opts, err := o.remoteOptions(ctx, r.Context().Registry)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Get(r, opts...)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	var vi v1.Image
	switch {
	case desc.MediaType.IsIndex():
		child, err := choosePlatform(desc, o.platform())
		if err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
		vi, err = remote.Image(r.Context().Digest(child.String()), opts...)
		if err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
	case desc.MediaType.IsImage():
		if vi, err = desc.Image(); err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
	default:
		return nil, fmt.Errorf("pull %s: unsupported manifest type %s", ref, desc.MediaType)
	}
	img, err := pullImage(ctx, s, vi, names, r.Context().String(), &o)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	return img, nil
}

func (o *RemoteOptions) platform() v1.Platform {
	if o.Platform != nil {
		return *o.Platform
	}
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// choosePlatform picks the manifest for p from an index; a missing variant matches (arm64 images often
// have none).
func choosePlatform(desc *remote.Descriptor, p v1.Platform) (v1.Hash, error) {
	idx, err := desc.ImageIndex()
	if err != nil {
		return v1.Hash{}, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	var have []string
	var loose *v1.Descriptor
	for i, m := range im.Manifests {
		if m.Platform == nil {
			continue
		}
		have = append(have, m.Platform.String())
		if !m.MediaType.IsImage() || m.Platform.OS != p.OS || m.Platform.Architecture != p.Architecture {
			continue
		}
		if m.Platform.Variant == p.Variant {
			return m.Digest, nil
		}
		if loose == nil && (m.Platform.Variant == "" || p.Variant == "") {
			loose = &im.Manifests[i]
		}
	}
	if loose != nil {
		return loose.Digest, nil
	}
	if len(have) == 0 {
		return v1.Hash{}, fmt.Errorf("no manifest for platform %s: the index names no platforms", p.String())
	}
	return v1.Hash{}, fmt.Errorf("no manifest for platform %s in the index (it has: %s)", p.String(), strings.Join(have, ", "))
}

func pullImage(ctx context.Context, s *Store, vi v1.Image, names []string, source string, o *RemoteOptions) (*Image, error) {
	mt, err := vi.MediaType()
	if err != nil {
		return nil, err
	}
	if mt != types.OCIManifestSchema1 && mt != types.DockerManifestSchema2 {
		return nil, fmt.Errorf("unsupported manifest type %s", mt)
	}
	rawMan, err := vi.RawManifest()
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytesReader(rawMan))
	if err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	rawCfg, err := vi.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if got := sha256Hash(rawCfg); got != m.Config.Digest || int64(len(rawCfg)) != m.Config.Size {
		return nil, fmt.Errorf("config %s: received content has digest %s and size %d", m.Config.Digest, got, len(rawCfg))
	}
	cfg, err := v1.ParseConfigFile(bytesReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("config lists %d diff IDs for %d layers", len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	var fetched atomic.Int64
	err = parallel(ctx, o.jobs(), len(m.Layers), func(i int) error {
		l, diffID := m.Layers[i], cfg.RootFS.DiffIDs[i]
		if !validHash(l.Digest) || !validHash(diffID) {
			return fmt.Errorf("layer %d: unsupported digest %s", i, l.Digest)
		}
		if !l.MediaType.IsLayer() {
			return fmt.Errorf("layer %s: unsupported media type %s", l.Digest, l.MediaType)
		}
		present, err := s.leaseIfPresent(l.Digest)
		if err != nil {
			return err
		}
		if !present {
			if err := fetchLayer(s, vi, l); err != nil {
				return err
			}
			fetched.Add(1)
			o.progress("%s: pulled %s", short(l.Digest), units.HumanSize(float64(l.Size)))
		} else {
			o.progress("%s: already exists", short(l.Digest))
		}
		return verifyDiffID(s, l, diffID, source)
	})
	if err != nil {
		return nil, err
	}
	return s.commitPulled(rawMan, rawCfg, m, cfg, names)
}

// fetchLayer downloads one layer blob into the store. go-containerregistry checks the digest as the
// bytes stream; WriteBlob computes it again, and the blob becomes visible only when both agree.
func fetchLayer(s *Store, vi v1.Image, l v1.Descriptor) error {
	layer, err := vi.LayerByDigest(l.Digest)
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer rc.Close()
	tmp, d, n, err := s.spool(rc)
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer os.Remove(tmp)
	if d != l.Digest || n != l.Size {
		return fmt.Errorf("layer %s: received content has digest %s and size %d (manifest says size %d): rejected", l.Digest, d, n, l.Size)
	}
	return s.installLeased(tmp, d)
}

// verifyDiffID checks that the layer blob uncompresses to diffID (once: the verified mapping is
// recorded in the compressed-layer cache, which also lets images built on this one push it as it is).
func verifyDiffID(s *Store, l v1.Descriptor, diffID v1.Hash, source string) error {
	if l.Digest == diffID {
		return nil // uncompressed: the digest was the check
	}
	alg := "gzip"
	if strings.HasSuffix(string(l.MediaType), "zstd") {
		alg = "zstd"
	}
	if rec, ok := s.compressedFor(alg, diffID); ok && rec.Digest == l.Digest {
		return nil
	}
	rc, err := s.OpenBlob(l.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	r, err := snapshot.Decompress(rc)
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer r.Close()
	h := &hashCounter{h: sha256.New()}
	if _, err := io.Copy(h, r); err != nil {
		return fmt.Errorf("layer %s: decompress: %w", l.Digest, err)
	}
	if got := h.sum(); got != diffID {
		return fmt.Errorf("layer %s: uncompressed content has digest %s but the config says %s: rejected", l.Digest, got, diffID)
	}
	return s.recordCompressed(alg, diffID, compressedRec{Digest: l.Digest, Size: l.Size, Source: source})
}

// commitPulled stores the config and the manifest exactly as received (so the digests stay the
// registry's) and points names at it, in one index update under the lock.
func (s *Store) commitPulled(rawMan, rawCfg []byte, m *v1.Manifest, cfg *v1.ConfigFile, names []string) (*Image, error) {
	mt := m.MediaType
	if mt == "" {
		mt = types.OCIManifestSchema1
	}
	desc := v1.Descriptor{
		MediaType:   mt,
		Size:        int64(len(rawMan)),
		Digest:      sha256Hash(rawMan),
		Annotations: map[string]string{annotationCreated: time.Now().UTC().Format(time.RFC3339Nano)},
	}
	if cfg.OS != "" && cfg.Architecture != "" {
		desc.Platform = &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant, OSVersion: cfg.OSVersion}
	}
	unlock, err := s.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	digests := []v1.Hash{}
	for i, l := range m.Layers {
		if !s.HasBlob(l.Digest) {
			return nil, fmt.Errorf("layer %d blob %s is not in the store", i, l.Digest)
		}
		digests = append(digests, l.Digest)
	}
	if _, err := s.putBlobLocked(rawCfg); err != nil {
		return nil, err
	}
	if _, err := s.putBlobLocked(rawMan); err != nil {
		return nil, err
	}
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	if old := findRec(idx, desc.Digest); old != nil {
		desc = old.desc
	}
	if len(names) == 0 {
		idx.addUntagged(desc)
	}
	for _, n := range names {
		idx.setName(desc, n)
	}
	if err := s.writeIndex(idx); err != nil {
		return nil, err
	}
	if err := s.leases.release(digests); err != nil {
		return nil, err
	}
	return s.loadImage(findRec(idx, desc.Digest))
}
