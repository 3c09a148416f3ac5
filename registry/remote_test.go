package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// memRegistry is go-containerregistry's in-memory registry behind an httptest server on 127.0.0.1 (plain
// HTTP, as go-containerregistry allows for loopback), counting blob uploads and downloads. hook, when set,
// may answer a request itself (return true) to inject faults.
type memRegistry struct {
	*httptest.Server
	host string

	mu      sync.Mutex
	uploads int            // POST/PATCH/PUT under /blobs/uploads/
	gets    map[string]int // GET /v2/.../blobs/<digest>, by digest
	hook    func(w http.ResponseWriter, r *http.Request) bool
}

func newMemRegistry(t *testing.T) *memRegistry {
	t.Helper()
	m := &memRegistry{gets: map[string]int{}}
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		if strings.Contains(r.URL.Path, "/blobs/uploads/") && r.Method != http.MethodGet && r.Method != http.MethodHead {
			m.uploads++
		}
		if i := strings.LastIndex(r.URL.Path, "/blobs/sha256:"); i >= 0 && r.Method == http.MethodGet {
			m.gets[r.URL.Path[i+len("/blobs/"):]]++
		}
		hook := m.hook
		m.mu.Unlock()
		if hook != nil && hook(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(m.Close)
	m.host = strings.TrimPrefix(m.URL, "http://")
	return m
}

func (m *memRegistry) counts() (uploads int, gets map[string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := map[string]int{}
	for k, v := range m.gets {
		g[k] = v
	}
	u := m.uploads
	m.uploads, m.gets = 0, map[string]int{}
	return u, g
}

func anonOpts() RemoteOptions { return RemoteOptions{Keychain: authn.NewMultiKeychain()} }

func TestPushPullRoundTrip(t *testing.T) {
	reg := newMemRegistry(t)
	src := openStore(t, t.TempDir())
	l1 := addLayer(t, src, map[string]string{"etc/a": "one"})
	l2 := addLayer(t, src, map[string]string{"etc/b": strings.Repeat("two", 1000)})
	img := commit(t, src, "rt", []v1.Descriptor{l1, l2}, "me/app:1")
	var lines []string
	o := anonOpts()
	o.Progress = func(s string) { lines = append(lines, s) }
	dest := reg.host + "/me/app:1"

	res, err := Push(context.Background(), src, "me/app:1", dest, o)
	if err != nil {
		t.Fatal(err)
	}
	up, _ := reg.counts()
	if res.Uploaded != 2 || res.Existing != 0 || up == 0 {
		t.Fatalf("first push: %+v, %d upload requests", res, up)
	}
	if n := countPrefix(lines, "compressed"); n != 2 {
		t.Fatalf("first push compressed %d layers, want 2: %q", n, lines)
	}

	// Second push: nothing compressed, nothing uploaded, same manifest.
	lines = nil
	res2, err := Push(context.Background(), src, "me/app:1", dest, o)
	if err != nil {
		t.Fatal(err)
	}
	up, _ = reg.counts()
	if res2.Uploaded != 0 || res2.Existing != 2 || up != 0 || res2.Digest != res.Digest {
		t.Fatalf("second push: %+v, %d upload requests (first %s)", res2, up, res.Digest)
	}
	if n := countPrefix(lines, "compressed"); n != 0 {
		t.Fatalf("second push compressed again: %q", lines)
	}

	// Pull into a fresh store: same image ID, the registry's manifest digest, gzip layers that
	// uncompress to the diff IDs.
	dst := openStore(t, t.TempDir())
	got, err := Pull(context.Background(), dst, dest, anonOpts())
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != img.ID || got.Digest != res.Digest {
		t.Fatalf("pulled ID %s digest %s, want %s %s", got.ID, got.Digest, img.ID, res.Digest)
	}
	for _, l := range got.Manifest.Layers {
		if l.MediaType != types.OCILayer || !dst.HasBlob(l.Digest) {
			t.Fatalf("pulled layer %+v", l)
		}
	}
	if _, err := dst.Lookup(dest); err != nil {
		t.Fatal(err)
	}
	// Pushing the pulled image elsewhere sends the same manifest.
	res3, err := Push(context.Background(), dst, dest, reg.host+"/other/app:x", anonOpts())
	if err != nil || res3.Digest != res.Digest {
		t.Fatalf("push of pulled image: %v %+v", err, res3)
	}
}

// An image built on a pulled base (the builder commits the base's layers uncompressed) pushes the base
// layers with the registry's digests: they exist, only the new layer is uploaded.
func TestPushOfImageOnPulledBaseReusesBaseBlobs(t *testing.T) {
	reg := newMemRegistry(t)
	base, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	baseRef := reg.host + "/lib/base:1"
	if err := remote.Write(mustRef(t, baseRef), base); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, t.TempDir())
	if _, err := Pull(context.Background(), s, baseRef, anonOpts()); err != nil {
		t.Fatal(err)
	}
	// What the builder does: the base layers' uncompressed tars, plus a new layer.
	var descs []v1.Descriptor
	layers, _ := base.Layers()
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		d, n, err := s.WriteBlob(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		descs = append(descs, v1.Descriptor{MediaType: types.OCIUncompressedLayer, Digest: d, Size: n})
	}
	descs = append(descs, addLayer(t, s, map[string]string{"app": "new"}))
	commit(t, s, "child", descs, "me/child:1")
	reg.counts()
	var lines []string
	o := anonOpts()
	o.Progress = func(l string) { lines = append(lines, l) }
	res, err := Push(context.Background(), s, "me/child:1", reg.host+"/lib/base:child", o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Uploaded != 1 || res.Existing != 2 {
		t.Fatalf("push: %+v\n%s", res, strings.Join(lines, "\n"))
	}
	if n := countPrefix(lines, "compressed"); n != 1 {
		t.Fatalf("compressed %d layers, want only the new one: %q", n, lines)
	}
}

func TestPullPicksPlatformFromIndex(t *testing.T) {
	reg := newMemRegistry(t)
	mk := func(arch string) v1.Image {
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		cf.OS, cf.Architecture = "linux", arch
		img, err = mutate.ConfigFile(img, cf)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	arm, amd := mk("arm64"), mk("amd64")
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	ref := reg.host + "/multi/arch:1"
	if err := remote.WriteIndex(mustRef(t, ref), idx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    v1.Platform
		want v1.Image
	}{{v1.Platform{OS: "linux", Architecture: "amd64"}, amd}, {v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, arm},
		{v1.Platform{OS: "linux", Architecture: "arm64"}, arm}} {
		s := openStore(t, t.TempDir())
		o := anonOpts()
		o.Platform = &tc.p
		got, err := Pull(context.Background(), s, ref, o)
		if err != nil {
			t.Fatalf("%s: %v", tc.p.String(), err)
		}
		want, _ := tc.want.Digest()
		if got.Digest != want {
			t.Fatalf("%s: pulled %s, want %s", tc.p.String(), got.Digest, want)
		}
	}
	s := openStore(t, t.TempDir())
	o := anonOpts()
	o.Platform = &v1.Platform{OS: "linux", Architecture: "s390x"}
	_, err := Pull(context.Background(), s, ref, o)
	if err == nil || !strings.Contains(err.Error(), "no manifest for platform linux/s390x") || !strings.Contains(err.Error(), "linux/arm64/v8, linux/amd64") {
		t.Fatalf("want a clear no-platform error, got %v", err)
	}
	if imgs, _ := s.Images(); len(imgs) != 0 {
		t.Fatalf("failed pull left images: %v", imgs)
	}
}

func TestPullRejectsCorruptBlob(t *testing.T) {
	reg := newMemRegistry(t)
	img, err := random.Image(4096, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.host + "/bad/blob:1"
	if err := remote.Write(mustRef(t, ref), img); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	size, _ := layers[0].Size()
	reg.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+ld.String()) {
			w.Write(bytes.Repeat([]byte{'x'}, int(size))) // same size, other bytes
			return true
		}
		return false
	}
	s := openStore(t, t.TempDir())
	_, err = Pull(context.Background(), s, ref, anonOpts())
	if err == nil || !strings.Contains(err.Error(), ld.String()) {
		t.Fatalf("want a digest error naming %s, got %v", ld, err)
	}
	if s.HasBlob(ld) {
		t.Fatal("corrupt blob became visible in the store")
	}
	if _, err := s.Lookup(ref); !errors.Is(err, ErrNotFound) {
		t.Fatalf("failed pull left a tag: %v", err)
	}
	if left := blobHexes(t, s); len(left) != 0 {
		t.Fatalf("blobs left after the failed pull: %v", left)
	}
}

func TestPullRejectsWrongDiffID(t *testing.T) {
	reg := newMemRegistry(t)
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs[0] = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	bad, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.host + "/bad/diffid:1"
	if err := remote.Write(mustRef(t, ref), bad); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, t.TempDir())
	_, err = Pull(context.Background(), s, ref, anonOpts())
	if err == nil || !strings.Contains(err.Error(), "uncompressed content has digest") {
		t.Fatalf("want a diffID error, got %v", err)
	}
	if _, err := s.Lookup(ref); !errors.Is(err, ErrNotFound) {
		t.Fatalf("failed pull left a tag: %v", err)
	}
}

func TestInterruptedPullLeavesNoTagAndResumes(t *testing.T) {
	reg := newMemRegistry(t)
	img, err := random.Image(4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.host + "/resume/me:1"
	if err := remote.Write(mustRef(t, ref), img); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	broken, _ := layers[2].Digest()
	reg.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+broken.String()) {
			http.Error(w, "gone for now", http.StatusForbidden) // not retried: the pull fails
			return true
		}
		return false
	}
	s := openStore(t, t.TempDir())
	o := anonOpts()
	o.Jobs = 1
	if _, err := Pull(context.Background(), s, ref, o); err == nil {
		t.Fatal("pull with a failing blob succeeded")
	}
	if _, err := s.Lookup(ref); !errors.Is(err, ErrNotFound) {
		t.Fatalf("interrupted pull left a tag: %v", err)
	}
	if imgs, _ := s.Images(); len(imgs) != 0 {
		t.Fatalf("interrupted pull left images: %d", len(imgs))
	}
	reg.hook = nil
	reg.counts()
	got, err := Pull(context.Background(), s, ref, o)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if got.Digest != want {
		t.Fatalf("pulled %s, want %s", got.Digest, want)
	}
	_, gets := reg.counts()
	cfgName, _ := img.ConfigName()
	for d, n := range gets {
		if d != broken.String() && d != cfgName.String() {
			t.Errorf("second pull fetched %s again (%d times)", d, n)
		}
	}
	if gets[broken.String()] != 1 {
		t.Errorf("second pull fetched the missing blob %d times", gets[broken.String()])
	}
}

// Garbage collection keeps a layer's compressed blob while the layer is kept and drops both with it.
func TestCompressedBlobLivesWithItsLayer(t *testing.T) {
	s := openStore(t, t.TempDir())
	l := addLayer(t, s, map[string]string{"f": "content"})
	commit(t, s, "gc", []v1.Descriptor{l}, "gc:1")
	other := addLayer(t, s, map[string]string{"g": "other"})
	commit(t, s, "other", []v1.Descriptor{other}, "other:1")
	gz, _, did, err := s.CompressLayer(l.Digest)
	if err != nil || !did {
		t.Fatalf("CompressLayer: %v %v", did, err)
	}
	if _, _, again, err := s.CompressLayer(l.Digest); err != nil || again {
		t.Fatalf("second CompressLayer compressed again: %v %v", again, err)
	}
	s.leases.close() // as when the pushing process exits
	if _, err := s.Remove("other:1"); err != nil {
		t.Fatal(err)
	}
	if !s.HasBlob(gz) {
		t.Fatal("collecting another image removed the compressed blob of a kept layer")
	}
	if _, err := s.Remove("gc:1"); err != nil {
		t.Fatal(err)
	}
	if s.HasBlob(gz) {
		t.Fatal("compressed blob outlived its layer")
	}
	if _, ok := s.compressedFor("gzip", l.Digest); ok {
		t.Fatal("mapping outlived its layer")
	}
}

func TestCheckLogin(t *testing.T) {
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte("alice:s3cret-pw")) {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	err := CheckLogin(context.Background(), host, "alice", "wrong-pw-123", RemoteOptions{})
	if err == nil || !strings.Contains(err.Error(), "wrong username or password") || strings.Contains(err.Error(), "wrong-pw-123") {
		t.Fatalf("wrong password: %v", err)
	}
	if err := CheckLogin(context.Background(), host, "alice", "s3cret-pw", RemoteOptions{}); err != nil {
		t.Fatalf("right password: %v", err)
	}
}

func TestInsecureAndCertsDir(t *testing.T) {
	o := RemoteOptions{Insecure: []string{"reg.example:5000", "plain.example"}, CertsDir: t.TempDir()}
	for host, want := range map[string]bool{"reg.example:5000": true, "reg.example": false, "plain.example:443": true, "other.example": false} {
		if got := o.isInsecure(host); got != want {
			t.Errorf("isInsecure(%s) = %v", host, got)
		}
	}
	r, err := o.ParseRemote("reg.example:5000/a/b")
	if err != nil || r.Context().Registry.Scheme() != "http" {
		t.Fatalf("insecure registry scheme: %v %v", r, err)
	}
	r, err = o.ParseRemote("secure.example/a/b")
	if err != nil || r.Context().Registry.Scheme() != "https" {
		t.Fatalf("secure registry scheme: %v %v", r, err)
	}
	tr, err := o.transport(r.Context().Registry)
	if err != nil {
		t.Fatal(err)
	}
	if tr.(*http.Transport).TLSClientConfig.InsecureSkipVerify {
		t.Fatal("TLS verification off for a registry not listed as insecure")
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func countPrefix(lines []string, word string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, ": "+word+" ") {
			n++
		}
	}
	return n
}
