package registry

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// layerTar builds an uncompressed layer tar holding files (name -> content), in sorted order.
func layerTar(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	dirs := map[string]bool{}
	for _, n := range names {
		if d := filepath.Dir(n); d != "." && !dirs[d] {
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: time.Unix(1, 0)}); err != nil {
				t.Fatal(err)
			}
		}
		c := files[n]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(c)), ModTime: time.Unix(1, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// addLayer writes a layer tar into s and returns the descriptor the builder would pass.
func addLayer(t testing.TB, s *Store, files map[string]string) v1.Descriptor {
	t.Helper()
	d, n, err := s.WriteBlob(bytes.NewReader(layerTar(t, files)))
	if err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{MediaType: types.OCIUncompressedLayer, Size: n, Digest: d}
}

// testConfig is a config over layers whose digests are their diffIDs (uncompressed), made distinct by label.
func testConfig(label string, layers ...v1.Descriptor) *v1.ConfigFile {
	cfg := &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      v1.Time{Time: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)},
		Config: v1.Config{
			Env:    []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd:    []string{"/bin/sh"},
			Labels: map[string]string{"test": label},
		},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{}},
	}
	for i, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.Digest)
		cfg.History = append(cfg.History, v1.History{CreatedBy: fmt.Sprintf("layer %d of %s", i, label), Created: cfg.Created})
	}
	return cfg
}

// commit commits an image over layers with names, failing the test on error.
func commit(t testing.TB, s *Store, label string, layers []v1.Descriptor, names ...string) *Image {
	t.Helper()
	full := make([]string, len(names))
	for i, n := range names {
		f, err := NormalizeName(n)
		if err != nil {
			t.Fatal(err)
		}
		full[i] = f
	}
	img, err := s.CommitImage(testConfig(label, layers...), layers, full)
	if err != nil {
		t.Fatalf("CommitImage %s: %v", label, err)
	}
	return img
}

func openStore(t testing.TB, root string) *Store {
	t.Helper()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// allNames lists every name of every image.
func allNames(t testing.TB, s *Store) []string {
	t.Helper()
	imgs, err := s.Images()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, img := range imgs {
		out = append(out, img.Names...)
	}
	sort.Strings(out)
	return out
}

// blobHexes lists the blobs present.
func blobHexes(t testing.TB, s *Store) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.Root(), "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range entries {
		out[e.Name()] = true
	}
	return out
}

// untar extracts a tar (regular files and dirs only) under dir.
func untar(t testing.TB, r io.Reader, dir string) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(hdr.Name, "..") {
			t.Fatalf("bad name %q", hdr.Name)
		}
		p := filepath.Join(dir, hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		default:
			t.Fatalf("unexpected entry %q type %c", hdr.Name, hdr.Typeflag)
		}
	}
}
