package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/docker/go-units"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// PushResult is what Push did.
type PushResult struct {
	Ref      string  // the destination, as pushed
	Digest   v1.Hash // manifest digest in the registry
	Size     int64   // manifest size
	Uploaded int     // layers uploaded
	Existing int     // layers the registry had already
	Mounted  int     // layers mounted from another repository of the registry (pulled from there)
}

// Push sends the local image localRef to the registry as destRef (default: localRef's own name).
// Layers the store keeps uncompressed are gzip-compressed once and the compressed blob is kept (see
// CompressLayer), so pushing again compresses nothing; blobs the registry has are not uploaded (HEAD
// first); the manifest goes last, so a failed push never leaves a manifest pointing at missing blobs.
func Push(ctx context.Context, s *Store, localRef, destRef string, o RemoteOptions) (*PushResult, error) {
	img, err := s.Lookup(localRef)
	if err != nil {
		return nil, err
	}
	if destRef == "" {
		full, err := NormalizeName(localRef)
		if err != nil || !contains(img.Names, full) {
			return nil, fmt.Errorf("push %s: give a destination name (IMAGE DEST) to push an image by ID", localRef)
		}
		destRef = full
	}
	ref, err := o.ParseRemote(destRef)
	if err != nil {
		return nil, err
	}
	if _, ok := ref.(name.Digest); ok {
		return nil, fmt.Errorf("push %s: the destination must be a tag, not a digest", destRef)
	}
	if err := compressLayers(ctx, s, img, &o); err != nil {
		return nil, err
	}
	vi, err := s.V1Image(img)
	if err != nil {
		return nil, err
	}
	opts, err := o.remoteOptions(ctx, ref.Context().Registry)
	if err != nil {
		return nil, err
	}
	layers, err := vi.Layers()
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", destRef, err)
	}
	// Layers pulled from another repository of the same registry are mounted from there, not uploaded.
	sources := map[v1.Hash]name.Repository{}
	for _, l := range img.Manifest.Layers {
		if rec, ok := s.compressedFor("gzip", l.Digest); ok && rec.Source != "" {
			if src, err := name.NewRepository(rec.Source); err == nil && src.RegistryStr() == ref.Context().RegistryStr() &&
				src.RepositoryStr() != ref.Context().RepositoryStr() {
				sources[rec.Digest] = src
			}
		}
	}
	pi := &progressImage{Image: vi, o: &o, read: map[v1.Hash]bool{}}
	for _, l := range layers {
		var pl v1.Layer = &progressLayer{Layer: l, img: pi}
		if d, err := l.Digest(); err == nil {
			if src, ok := sources[d]; ok {
				pl = &remote.MountableLayer{Layer: pl, Reference: src.Digest(d.String())}
			}
		}
		pi.layers = append(pi.layers, pl)
	}
	if err := remote.Write(ref, pi, opts...); err != nil {
		return nil, fmt.Errorf("push %s: %w", ref, err)
	}
	res := &PushResult{Ref: ref.String()}
	for _, l := range layers {
		d, _ := l.Digest()
		if pi.wasRead(d) {
			res.Uploaded++
		} else if src, ok := sources[d]; ok {
			res.Mounted++
			o.progress("%s: mounted from %s", short(d), src.RepositoryStr())
		} else {
			res.Existing++
			o.progress("%s: layer already exists", short(d))
		}
	}
	if res.Digest, err = vi.Digest(); err != nil {
		return nil, err
	}
	if res.Size, err = vi.Size(); err != nil {
		return nil, err
	}
	return res, nil
}

// compressLayers gzips, in parallel, the uncompressed layers of img that have no compressed blob yet.
func compressLayers(ctx context.Context, s *Store, img *Image, o *RemoteOptions) error {
	var todo []v1.Descriptor
	for _, l := range img.Manifest.Layers {
		if gzipped[l.MediaType] == types.OCILayer || gzipped[l.MediaType] == types.DockerLayer {
			todo = append(todo, l)
		}
	}
	return parallel(ctx, o.jobs(), len(todo), func(i int) error {
		l := todo[i]
		d, n, did, err := s.CompressLayer(l.Digest)
		if err != nil {
			return err
		}
		if did {
			o.progress("%s: compressed %s -> %s (%s)", short(l.Digest), units.HumanSize(float64(l.Size)),
				units.HumanSize(float64(n)), short(d))
		}
		return nil
	})
}

// parallel runs f(0..n-1) with at most jobs at once and returns the first error.
func parallel(ctx context.Context, jobs, n int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		sem   = make(chan struct{}, jobs)
	)
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			mu.Lock()
			if first == nil {
				first = err
			}
			mu.Unlock()
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	return first
}

// progressImage wraps the pushed image to tell which layers were actually read (uploaded).
type progressImage struct {
	v1.Image
	o      *RemoteOptions
	layers []v1.Layer
	mu     sync.Mutex
	read   map[v1.Hash]bool
}

func (p *progressImage) Layers() ([]v1.Layer, error) { return p.layers, nil }

func (p *progressImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	for _, l := range p.layers {
		if d, err := l.Digest(); err == nil && d == h {
			return l, nil
		}
	}
	return p.Image.LayerByDigest(h)
}

func (p *progressImage) wasRead(d v1.Hash) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.read[d]
}

type progressLayer struct {
	v1.Layer
	img *progressImage
}

func (l *progressLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	d, _ := l.Digest()
	size, _ := l.Size()
	return &eofReader{ReadCloser: rc, done: func() {
		l.img.mu.Lock()
		first := !l.img.read[d]
		l.img.read[d] = true
		l.img.mu.Unlock()
		if first {
			l.img.o.progress("%s: pushed %s", short(d), units.HumanSize(float64(size)))
		}
	}}, nil
}

// eofReader calls done once the whole stream has been read.
type eofReader struct {
	io.ReadCloser
	done func()
	once sync.Once
}

func (r *eofReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		r.once.Do(r.done)
	}
	return n, err
}

func short(d v1.Hash) string {
	if len(d.Hex) < 12 {
		return d.String()
	}
	return d.Hex[:12]
}
