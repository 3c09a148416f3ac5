package registry

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// saveFixture is a store with an image of uncompressed layers (two names), one with a gzip layer
// (as a pull would store it) and an untagged one.
type saveFixture struct {
	s                 *Store
	app, gz, untagged *Image
}

func newSaveFixture(t *testing.T) *saveFixture {
	s := openStore(t, t.TempDir())
	base := addLayer(t, s, map[string]string{"etc/os-release": "ID=test\n", "bin/hello": "#!/bin/sh\necho hello\n"})
	app := addLayer(t, s, map[string]string{"app/main.txt": strings.Repeat("application ", 100)})
	f := &saveFixture{s: s}
	f.app = commit(t, s, "app", []v1.Descriptor{base, app}, "me/app:1", "me/app")

	raw := layerTar(t, map[string]string{"gz/data": strings.Repeat("compressed ", 500)})
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(raw)
	zw.Close()
	d, n, err := s.WriteBlob(&buf)
	if err != nil {
		t.Fatal(err)
	}
	gzLayer := v1.Descriptor{MediaType: types.OCILayer, Size: n, Digest: d}
	cfg := testConfig("gz", base, gzLayer)
	cfg.RootFS.DiffIDs[1] = sha256Hash(raw)
	if f.gz, err = s.CommitImage(cfg, []v1.Descriptor{base, gzLayer}, []string{"ghcr.io/x/gz:v1"}); err != nil {
		t.Fatal(err)
	}
	f.untagged = commit(t, s, "untagged", []v1.Descriptor{app})
	return f
}

func TestV1ImageValidates(t *testing.T) {
	f := newSaveFixture(t)
	for _, img := range []*Image{f.app, f.gz, f.untagged} {
		vi, err := f.s.V1Image(img)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(vi); err != nil {
			t.Fatalf("validate.Image(%v): %v", img.Names, err)
		}
		id, _ := vi.ConfigName()
		cf, _ := vi.ConfigFile()
		if id != img.ID || !reflect.DeepEqual(cf.RootFS, img.Config.RootFS) {
			t.Fatalf("V1Image config %s differs from %s", id, img.ID)
		}
		m, _ := vi.Manifest()
		for i, l := range m.Layers {
			if !l.MediaType.IsLayer() || l.MediaType == types.OCIUncompressedLayer {
				t.Errorf("layer %d presented as %s", i, l.MediaType)
			}
		}
	}
}

func TestSaveDockerArchive(t *testing.T) {
	f := newSaveFixture(t)
	path := filepath.Join(t.TempDir(), "images.tar")
	out, _ := os.Create(path)
	if err := f.s.Save(out, []string{"me/app:1", "me/app", "ghcr.io/x/gz:v1", f.untagged.ID.Hex[:12]}, "docker-archive"); err != nil {
		t.Fatal(err)
	}
	out.Close()

	for _, tc := range []struct {
		tag string
		img *Image
	}{{"me/app:1", f.app}, {"docker.io/me/app:latest", f.app}, {"ghcr.io/x/gz:v1", f.gz}} {
		tag, err := name.NewTag(tc.tag)
		if err != nil {
			t.Fatal(err)
		}
		vi, err := tarball.ImageFromPath(path, &tag)
		if err != nil {
			t.Fatalf("tarball.ImageFromPath(%s): %v", tc.tag, err)
		}
		raw, _ := vi.RawConfigFile()
		stored, _ := f.s.readBlob(tc.img.ID)
		if !bytes.Equal(raw, stored) {
			t.Fatalf("%s: config differs", tc.tag)
		}
		layers, err := vi.Layers()
		if err != nil || len(layers) != len(tc.img.Config.RootFS.DiffIDs) {
			t.Fatalf("%s: %d layers, %v", tc.tag, len(layers), err)
		}
		for i, l := range layers {
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			h, _, err := v1.SHA256(rc)
			rc.Close()
			if err != nil || h != tc.img.Config.RootFS.DiffIDs[i] {
				t.Fatalf("%s layer %d: content %s, config says %s (%v)", tc.tag, i, h, tc.img.Config.RootFS.DiffIDs[i], err)
			}
		}
		if err := validate.Image(vi); err != nil {
			t.Fatalf("validate %s: %v", tc.tag, err)
		}
	}

	// manifest.json: full names, one entry per image.
	var manifest []dockerManifestEntry
	readTarFile(t, path, "manifest.json", &manifest)
	if len(manifest) != 3 {
		t.Fatalf("manifest.json has %d entries", len(manifest))
	}
	if want := []string{"docker.io/me/app:1", "docker.io/me/app:latest"}; !reflect.DeepEqual(manifest[0].RepoTags, want) {
		t.Errorf("RepoTags = %v, want %v", manifest[0].RepoTags, want)
	}
	if len(manifest[2].RepoTags) != 0 || manifest[2].Config != f.untagged.ID.Hex+".json" {
		t.Errorf("untagged entry = %+v", manifest[2])
	}
	// Same input, same bytes.
	var a, b bytes.Buffer
	f.s.Save(&a, []string{"me/app:1", "ghcr.io/x/gz:v1"}, "docker-archive")
	f.s.Save(&b, []string{"me/app:1", "ghcr.io/x/gz:v1"}, "docker-archive")
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("docker-archive output is not reproducible")
	}
}

func TestSaveOCIArchive(t *testing.T) {
	f := newSaveFixture(t)
	var buf bytes.Buffer
	if err := f.s.Save(&buf, []string{"me/app:1", "ghcr.io/x/gz:v1", f.untagged.ID.String(), "me/app:1"}, "oci-archive"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	untar(t, &buf, dir)
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	ii, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, _ := ii.IndexManifest()
	want := []struct {
		img       *Image
		ref, full string
	}{{f.app, "1", "docker.io/me/app:1"}, {f.gz, "v1", "ghcr.io/x/gz:v1"}, {f.untagged, "", ""}}
	if len(im.Manifests) != len(want) {
		t.Fatalf("index.json has %d entries", len(im.Manifests))
	}
	for i, w := range want {
		d := im.Manifests[i]
		if d.Digest != w.img.Digest || d.MediaType != types.OCIManifestSchema1 ||
			d.Annotations[annotationRefName] != w.ref || d.Annotations[annotationContainer] != w.full {
			t.Errorf("entry %d = %+v", i, d)
		}
		vi, err := p.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		// validate.Image gunzips every layer, so the uncompressed ones get the fast check
		// plus the digest check of every blob below.
		if err := validate.Image(vi, validate.Fast); err != nil {
			t.Errorf("validate %s: %v", w.full, err)
		}
		id, _ := vi.ConfigName()
		if id != w.img.ID {
			t.Errorf("config %s, want %s", id, w.img.ID)
		}
	}
	// Every blob is there exactly once and matches its name; nothing else is.
	blobs, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	wantBlobs := map[string]bool{}
	for _, img := range []*Image{f.app, f.gz, f.untagged} {
		wantBlobs[img.Digest.Hex], wantBlobs[img.ID.Hex] = true, true
		for _, l := range img.Manifest.Layers {
			wantBlobs[l.Digest.Hex] = true
		}
	}
	if len(blobs) != len(wantBlobs) {
		t.Errorf("%d blobs, want %d", len(blobs), len(wantBlobs))
	}
	for _, e := range blobs {
		raw, _ := os.ReadFile(filepath.Join(dir, "blobs", "sha256", e.Name()))
		if sha256Hash(raw).Hex != e.Name() || !wantBlobs[e.Name()] {
			t.Errorf("blob %s bad or unexpected", e.Name())
		}
	}
}

func TestSaveErrors(t *testing.T) {
	f := newSaveFixture(t)
	var buf bytes.Buffer
	if err := f.s.Save(&buf, []string{"me/app:1"}, "zip"); err == nil {
		t.Error("unknown format accepted")
	}
	if err := f.s.Save(&buf, nil, "oci-archive"); err == nil {
		t.Error("no refs accepted")
	}
	if err := f.s.Save(&buf, []string{"nothere"}, "oci-archive"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing image: %v", err)
	}
	// Save leases its blobs only while it runs.
	if len(f.s.leases.count) != 0 {
		t.Errorf("leases left after Save: %v", f.s.leases.count)
	}
}

// readTarFile decodes the JSON file name of the tar at path into v.
func readTarFile(t *testing.T, path, name string, v any) {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	tr := tar.NewReader(fh)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s not in %s", name, path)
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == name {
			if err := json.NewDecoder(tr).Decode(v); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
}
