package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

func TestOpenCreatesLayoutAndTwiceIsFine(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	s1 := openStore(t, root)
	img := commit(t, s1, "a", []v1.Descriptor{addLayer(t, s1, map[string]string{"a": "1"})}, "busybox")
	s2 := openStore(t, root) // second Open must neither fail nor reset the index
	if _, err := s2.Lookup("busybox"); err != nil {
		t.Fatalf("second Open lost the image: %v", err)
	}
	for _, f := range []string{"oci-layout", "index.json", "blobs/sha256", "tmp"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	if s2.TempDir() != filepath.Join(root, "tmp") || s2.Root() != root {
		t.Errorf("Root/TempDir = %s %s", s2.Root(), s2.TempDir())
	}
	var lay map[string]string
	raw, _ := os.ReadFile(filepath.Join(root, "oci-layout"))
	if err := json.Unmarshal(raw, &lay); err != nil || lay["imageLayoutVersion"] != "1.0.0" {
		t.Errorf("oci-layout = %s (%v)", raw, err)
	}
	// go-containerregistry reads the root as an OCI layout.
	p, err := layout.FromPath(root)
	if err != nil {
		t.Fatal(err)
	}
	ii, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != img.Digest ||
		im.Manifests[0].Annotations[annotationRefName] != "docker.io/library/busybox:latest" {
		t.Errorf("index.json = %+v", im.Manifests)
	}
	if _, err := Open(""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
}

func TestBlobs(t *testing.T) {
	s := openStore(t, t.TempDir())
	content := []byte("hello blob")
	want := sha256Hash(content)

	other := t.TempDir()
	linkSrc := filepath.Join(other, "file")
	if err := os.WriteFile(linkSrc, []byte("linked content"), 0o644); err != nil {
		t.Fatal(err)
	}
	linkDigest := sha256Hash([]byte("linked content"))

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"WriteBlob stores content under its digest", func(t *testing.T) {
			d, n, err := s.WriteBlob(bytes.NewReader(content))
			if err != nil || d != want || n != int64(len(content)) {
				t.Fatalf("WriteBlob = %v %d %v", d, n, err)
			}
			if !s.HasBlob(want) {
				t.Fatal("HasBlob false after WriteBlob")
			}
			rc, err := s.OpenBlob(want)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, content) {
				t.Fatalf("OpenBlob read %q", got)
			}
			if s.BlobPath(want) != filepath.Join(s.Root(), "blobs", "sha256", want.Hex) {
				t.Fatalf("BlobPath = %s", s.BlobPath(want))
			}
		}},
		{"WriteBlob twice is fine", func(t *testing.T) {
			if d, _, err := s.WriteBlob(bytes.NewReader(content)); err != nil || d != want {
				t.Fatalf("WriteBlob again = %v %v", d, err)
			}
		}},
		{"missing blob", func(t *testing.T) {
			missing := sha256Hash([]byte("nope"))
			if s.HasBlob(missing) {
				t.Fatal("HasBlob true for a missing blob")
			}
			if _, err := s.OpenBlob(missing); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("OpenBlob missing: %v", err)
			}
			if s.HasBlob(v1.Hash{}) {
				t.Fatal("HasBlob of zero hash")
			}
		}},
		{"LinkBlob hard-links", func(t *testing.T) {
			if err := s.LinkBlob(linkSrc, linkDigest); err != nil {
				t.Fatal(err)
			}
			a, _ := os.Stat(linkSrc)
			b, err := os.Stat(s.BlobPath(linkDigest))
			if err != nil || !os.SameFile(a, b) {
				t.Fatalf("blob is not a hard link of the source (%v)", err)
			}
			if err := s.LinkBlob(linkSrc, linkDigest); err != nil { // no-op when present
				t.Fatal(err)
			}
		}},
		{"LinkBlob copies and verifies when linking fails", func(t *testing.T) {
			defer func(old func(string, string) error) { linkFile = old }(linkFile)
			linkFile = func(string, string) error { return &os.LinkError{Op: "link", Err: syscall.EXDEV} }
			src := filepath.Join(other, "copied")
			os.WriteFile(src, []byte("copied content"), 0o644)
			d := sha256Hash([]byte("copied content"))
			if err := s.LinkBlob(src, d); err != nil {
				t.Fatal(err)
			}
			a, _ := os.Stat(src)
			b, _ := os.Stat(s.BlobPath(d))
			if os.SameFile(a, b) {
				t.Fatal("expected a copy")
			}
			wrong := sha256Hash([]byte("something else"))
			if err := s.LinkBlob(src, wrong); err == nil || !strings.Contains(err.Error(), "has digest") {
				t.Fatalf("LinkBlob with a wrong digest: %v", err)
			}
			if s.HasBlob(wrong) {
				t.Fatal("unverified copy became visible")
			}
		}},
		{"LinkBlob refuses bad digests and missing files", func(t *testing.T) {
			if err := s.LinkBlob(linkSrc, v1.Hash{Algorithm: "md5", Hex: "00"}); err == nil {
				t.Fatal("accepted md5")
			}
			if err := s.LinkBlob(filepath.Join(other, "absent"), sha256Hash([]byte("x"))); err == nil {
				t.Fatal("linked a missing file")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
	// Nothing of ours is left in tmp/ (besides the lease directory).
	entries, _ := os.ReadDir(s.TempDir())
	for _, e := range entries {
		if e.Name() != leaseDirName {
			t.Errorf("leftover temp file %s", e.Name())
		}
	}
}

func TestTempFilesLeftBehind(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, root)
	layer := addLayer(t, s, map[string]string{"f": "x"})
	commit(t, s, "a", []v1.Descriptor{layer}, "app")

	// A killed process leaves temp files: ours (old and fresh) and another package's.
	old := time.Now().Add(-2 * time.Hour)
	files := map[string]time.Time{
		"registry-blob-1-dead":       old,
		"registry-index.json-1-dead": old,
		"registry-blob-2-fresh":      time.Now(),
		"snapshot-upper-123":         old,
	}
	for name, mt := range files {
		p := filepath.Join(s.TempDir(), name)
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, mt, mt)
	}
	s2 := openStore(t, root)
	for name, mt := range files {
		_, err := os.Stat(filepath.Join(s.TempDir(), name))
		ours := strings.HasPrefix(name, "registry-")
		if stale := ours && mt.Equal(old); stale != errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: stale=%v but stat error %v", name, stale, err)
		}
	}
	if _, err := s2.Lookup("app"); err != nil {
		t.Fatal(err)
	}
	commit(t, s2, "b", []v1.Descriptor{layer}, "app2")
	if _, err := s2.Remove("app"); err != nil {
		t.Fatal(err)
	}
	if names := allNames(t, s2); len(names) != 1 || names[0] != "docker.io/library/app2:latest" {
		t.Fatalf("names = %v", names)
	}
	// GC leaves temp files alone too.
	if _, err := os.Stat(filepath.Join(s.TempDir(), "snapshot-upper-123")); err != nil {
		t.Fatal(err)
	}
}

func TestIndexToleratesUnknownEntries(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, root)
	img := commit(t, s, "a", []v1.Descriptor{addLayer(t, s, map[string]string{"a": "1"})}, "app")
	// A foreign tool adds an index entry and an odd field; a broken entry sits there too.
	foreign, _, err := s.WriteBlob(strings.NewReader(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(root, "index.json"))
	var top map[string]any
	json.Unmarshal(raw, &top)
	top["x-extra"] = "kept"
	top["manifests"] = append(top["manifests"].([]any),
		map[string]any{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": foreign.String(), "size": 80},
		map[string]any{"mediaType": "text/plain", "digest": "not a digest", "size": 1})
	raw, _ = json.Marshal(top)
	os.WriteFile(filepath.Join(root, "index.json"), raw, 0o644)

	if got, err := s.Lookup("app"); err != nil || got.Digest != img.Digest {
		t.Fatalf("Lookup = %v %v", got, err)
	}
	if err := s.Tag("app", "app:2"); err != nil {
		t.Fatal(err)
	}
	raw, _ = os.ReadFile(filepath.Join(root, "index.json"))
	for _, want := range []string{`"x-extra": "kept"`, foreign.Hex, "not a digest", "app:2"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("index.json lost %q:\n%s", want, raw)
		}
	}
	// GC walks the foreign index and skips the broken entry (it names no blob).
	if lines, err := s.Remove("app:2"); len(lines) != 1 || err != nil {
		t.Fatalf("Remove = %v, %v", lines, err)
	}
	if !s.HasBlob(foreign) || !s.HasBlob(img.ID) {
		t.Fatal("referenced blobs removed")
	}
	if _, err := s.Remove("app"); err != nil {
		t.Fatal(err)
	}
	if !s.HasBlob(foreign) || s.HasBlob(img.ID) || s.HasBlob(img.Digest) {
		t.Fatal("GC kept the removed image or dropped the foreign entry's blob")
	}
}
