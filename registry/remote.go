package registry

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/go-units"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/layerbuild/layerbuild/snapshot"
)

// Remote registries: push, pull and the login check, over go-containerregistry's remote package
// (parallel uploads, HEAD before upload, bearer-token and basic auth, retries of transient errors).

// DefaultCertsDir is docker's per-registry certificate directory: certs.d/HOST[:PORT]/ca.crt adds a CA,
// client.cert and client.key a client certificate.
const DefaultCertsDir = "/etc/docker/certs.d"

// RemoteOptions configure talking to registries. The zero value is usable.
type RemoteOptions struct {
	// Insecure lists registries (host or host:port) reached over plain HTTP or unverified TLS.
	// localhost, 127.0.0.0/8 and ::1 are always allowed plain HTTP (as docker does).
	Insecure []string
	// CertsDir holds per-registry CAs (default DefaultCertsDir).
	CertsDir string
	// Keychain finds credentials (default authn.DefaultKeychain: docker's config.json, DOCKER_CONFIG,
	// credential helpers). Auth, when set, is used instead.
	Keychain authn.Keychain
	Auth     authn.Authenticator
	// Platform is what Pull picks from a multi-platform index (default linux/GOARCH of this machine).
	Platform *v1.Platform
	// Jobs is how many blobs move at once (default 4).
	Jobs int
	// Progress receives one line per layer event (nil: quiet).
	Progress func(line string)
	// Transport is the base HTTP transport (default: a clone of http.DefaultTransport); TLS settings
	// from Insecure and CertsDir are applied to it when it is an *http.Transport.
	Transport http.RoundTripper
}

func (o *RemoteOptions) jobs() int {
	if o.Jobs <= 0 {
		return 4
	}
	return o.Jobs
}

func (o *RemoteOptions) progress(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(fmt.Sprintf(format, args...))
	}
}

// isInsecure tells whether registry host (host[:port]) may be reached without verified TLS.
func (o *RemoteOptions) isInsecure(host string) bool {
	for _, h := range o.Insecure {
		h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://"), "/")
		if h == host {
			return true
		}
		if hn, _, err := net.SplitHostPort(host); err == nil && hn == h {
			return true
		}
	}
	return false
}

// ParseRemote parses an image reference for a registry (docker.io normalization), marking registries
// listed in Insecure so that plain HTTP is allowed for them.
func (o *RemoteOptions) ParseRemote(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("invalid reference %q: %w", ref, err)
	}
	if o.isInsecure(r.Context().RegistryStr()) {
		return name.ParseReference(ref, name.Insecure)
	}
	return r, nil
}

// transport builds the HTTP transport for one registry: system CAs plus certs.d/HOST/ca.crt,
// verification off only for registries listed as insecure.
func (o *RemoteOptions) transport(reg name.Registry) (http.RoundTripper, error) {
	base := o.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	t, ok := base.(*http.Transport)
	if !ok {
		return base, nil
	}
	t = t.Clone()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.TLSClientConfig != nil {
		cfg = t.TLSClientConfig.Clone()
	}
	host := reg.RegistryStr()
	if o.isInsecure(host) {
		cfg.InsecureSkipVerify = true
	}
	dir := o.CertsDir
	if dir == "" {
		dir = DefaultCertsDir
	}
	hostDir := filepath.Join(dir, host)
	if ca, err := os.ReadFile(filepath.Join(hostDir, "ca.crt")); err == nil {
		pool, perr := x509.SystemCertPool()
		if perr != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("registry %s: no certificate in %s", host, filepath.Join(hostDir, "ca.crt"))
		}
		cfg.RootCAs = pool
	}
	if _, err := os.Stat(filepath.Join(hostDir, "client.cert")); err == nil {
		cert, err := tls.LoadX509KeyPair(filepath.Join(hostDir, "client.cert"), filepath.Join(hostDir, "client.key"))
		if err != nil {
			return nil, fmt.Errorf("registry %s: client certificate: %w", host, err)
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	t.TLSClientConfig = cfg
	return t, nil
}

func (o *RemoteOptions) remoteOptions(ctx context.Context, reg name.Registry) ([]remote.Option, error) {
	t, err := o.transport(reg)
	if err != nil {
		return nil, err
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(t), remote.WithJobs(o.jobs()),
		remote.WithUserAgent("layerbuild")}
	switch {
	case o.Auth != nil:
		opts = append(opts, remote.WithAuth(o.Auth))
	case o.Keychain != nil:
		opts = append(opts, remote.WithAuthFromKeychain(o.Keychain))
	default:
		opts = append(opts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	}
	return opts, nil
}

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
	unlock, err := s.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := s.leases.add(d); err != nil {
		return err
	}
	return s.installLocked(tmp, d)
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

// CheckLogin verifies user and password against registry host (GET /v2/ with the credentials, after the
// bearer-token exchange when the registry asks for one). The password never appears in the error.
func CheckLogin(ctx context.Context, host, user, password string, o RemoteOptions) error {
	var nopts []name.Option
	if o.isInsecure(host) {
		nopts = append(nopts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, nopts...)
	if err != nil {
		return fmt.Errorf("invalid registry %q: %w", host, err)
	}
	base, err := o.transport(reg)
	if err != nil {
		return err
	}
	auth := &authn.Basic{Username: user, Password: password}
	t, err := transport.NewWithContext(ctx, reg, auth, base, []string{})
	if err != nil {
		return loginError(host, err, password)
	}
	schemes := []string{reg.Scheme()}
	if reg.Scheme() == "http" {
		schemes = []string{"https", "http"}
	}
	var last error
	for _, scheme := range schemes {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+reg.RegistryStr()+"/v2/", nil)
		if err != nil {
			return err
		}
		resp, err := (&http.Client{Transport: t}).Do(req)
		if err != nil {
			last = err
			continue
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			return nil
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("login to %s failed: wrong username or password (%s)", host, resp.Status)
		default:
			return fmt.Errorf("login to %s failed: GET /v2/ answered %s", host, resp.Status)
		}
	}
	return loginError(host, last, password)
}

func loginError(host string, err error, password string) error {
	var te *transport.Error
	if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
		return fmt.Errorf("login to %s failed: wrong username or password (%d %s)", host, te.StatusCode, http.StatusText(te.StatusCode))
	}
	msg := err.Error()
	if password != "" {
		msg = strings.ReplaceAll(msg, password, "******")
	}
	return fmt.Errorf("login to %s failed: %s", host, msg)
}
