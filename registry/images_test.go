package registry

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestCommitAndLookup(t *testing.T) {
	s := openStore(t, t.TempDir())
	l1 := addLayer(t, s, map[string]string{"etc/os-release": "test"})
	l2 := addLayer(t, s, map[string]string{"app/main": "run"})
	img := commit(t, s, "api", []v1.Descriptor{l1, l2}, "me/api", "me/api:1", "localhost:5000/x:y")

	if img.ID != img.Manifest.Config.Digest || img.Size != l1.Size+l2.Size {
		t.Fatalf("image = %+v", img)
	}
	wantNames := []string{"docker.io/me/api:1", "docker.io/me/api:latest", "localhost:5000/x:y"}
	if !reflect.DeepEqual(img.Names, wantNames) {
		t.Fatalf("names = %v", img.Names)
	}
	if img.Manifest.MediaType != types.OCIManifestSchema1 || img.Manifest.Config.MediaType != types.OCIConfigJSON ||
		img.Manifest.SchemaVersion != 2 || !reflect.DeepEqual(img.Manifest.Layers, []v1.Descriptor{l1, l2}) {
		t.Fatalf("manifest = %+v", img.Manifest)
	}
	if img.Config.Config.Labels["test"] != "api" || img.Config.RootFS.DiffIDs[1] != l2.Digest {
		t.Fatalf("config = %+v", img.Config)
	}
	// The manifest blob is what the digest says, and its JSON has the mediaType field.
	raw, _ := s.readBlob(img.Digest)
	if sha256Hash(raw) != img.Digest || !strings.Contains(string(raw), `"mediaType":"application/vnd.oci.image.manifest.v1+json"`) {
		t.Fatalf("manifest blob %s", raw)
	}

	other := commit(t, s, "other", []v1.Descriptor{l1}, "busybox")
	tests := []struct {
		ref  string
		want v1.Hash // manifest digest; zero: not found
		err  string
	}{
		{"me/api", img.Digest, ""},
		{"me/api:1", img.Digest, ""},
		{"docker.io/me/api:latest", img.Digest, ""},
		{"index.docker.io/me/api", img.Digest, ""},
		{"localhost:5000/x:y", img.Digest, ""},
		{"busybox", other.Digest, ""},
		{"docker.io/library/busybox:latest", other.Digest, ""},
		{img.ID.String(), img.Digest, ""},
		{img.ID.Hex, img.Digest, ""},
		{img.ID.Hex[:12], img.Digest, ""},
		{"sha256:" + img.ID.Hex[:6], img.Digest, ""},
		{img.Digest.String(), img.Digest, ""},
		{"me/api@" + img.Digest.String(), img.Digest, ""},
		{"busybox:1", v1.Hash{}, "no such image: busybox:1"},
		{"nothere", v1.Hash{}, "no such image: nothere:latest"},
		{"ghcr.io/a/b", v1.Hash{}, "no such image: ghcr.io/a/b:latest"},
		{"sha256:" + strings.Repeat("0", 64), v1.Hash{}, "no such image"},
		{"busybox@sha256:" + strings.Repeat("0", 64), v1.Hash{}, "no such image"},
		{"UPPER", v1.Hash{}, "must be lowercase"},
		{"sha256:xyz", v1.Hash{}, "invalid image ID"},
		{"", v1.Hash{}, "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			got, err := s.Lookup(tc.ref)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Lookup(%q) error = %v, want %q", tc.ref, err, tc.err)
				}
				if strings.HasPrefix(tc.err, "no such image") && !errors.Is(err, ErrNotFound) {
					t.Fatalf("error %v does not wrap ErrNotFound", err)
				}
				return
			}
			if err != nil || got.Digest != tc.want {
				t.Fatalf("Lookup(%q) = %v, %v", tc.ref, got, err)
			}
		})
	}

	// Committing the same content again is the same image; a name is added.
	again := commit(t, s, "api", []v1.Descriptor{l1, l2}, "me/api:2")
	if again.Digest != img.Digest || len(again.Names) != 4 {
		t.Fatalf("recommit = %v %v", again.Digest, again.Names)
	}
	// Layers must be present and consistent with the config.
	missing := v1.Descriptor{MediaType: types.OCIUncompressedLayer, Size: 3, Digest: sha256Hash([]byte("abc"))}
	if _, err := s.CommitImage(testConfig("x", missing), []v1.Descriptor{missing}, nil); err == nil || !strings.Contains(err.Error(), "not in the store") {
		t.Fatalf("commit with a missing layer: %v", err)
	}
	if _, err := s.CommitImage(testConfig("x"), []v1.Descriptor{l1}, nil); err == nil {
		t.Fatal("commit with diff IDs not matching layers succeeded")
	}
	if _, err := s.CommitImage(testConfig("x"), nil, []string{"x@" + img.Digest.String()}); err == nil {
		t.Fatal("commit with a digest name succeeded")
	}
}

func TestAmbiguousIDPrefix(t *testing.T) {
	s := openStore(t, t.TempDir())
	// Find two configs whose IDs share 4 hex digits (a birthday search over a few hundred labels).
	seen := map[string]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		label := "label-" + strconv.Itoa(i)
		raw, _ := json.Marshal(testConfig(label))
		p := sha256Hash(raw).Hex[:4]
		if prev, ok := seen[p]; ok {
			a, b = prev, label
		}
		seen[p] = label
	}
	ia := commit(t, s, a, nil)
	ib := commit(t, s, b, nil)
	if ia.ID.Hex[:4] != ib.ID.Hex[:4] {
		t.Fatalf("IDs %s %s do not share a prefix", ia.ID, ib.ID)
	}
	_, err := s.Lookup(ia.ID.Hex[:4])
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "ambiguous") {
		t.Fatalf("ambiguous prefix: %v", err)
	}
	if got, err := s.Lookup(ia.ID.Hex[:20]); err != nil || got.ID != ia.ID {
		t.Fatalf("longer prefix: %v %v", got, err)
	}
	if _, err := s.Remove(ia.ID.Hex[:4]); err == nil {
		t.Fatal("Remove with an ambiguous prefix succeeded")
	}
}

func TestTagMovesName(t *testing.T) {
	s := openStore(t, t.TempDir())
	l := addLayer(t, s, map[string]string{"f": "1"})
	old := commit(t, s, "old", []v1.Descriptor{l}, "app")
	newer := commit(t, s, "new", []v1.Descriptor{l}, "app") // a rebuild takes the name
	if got, _ := s.Lookup("app"); got.Digest != newer.Digest {
		t.Fatal("name did not move on commit")
	}
	dangling, err := s.Lookup(old.ID.String())
	if err != nil || len(dangling.Names) != 0 {
		t.Fatalf("old image should stay, untagged: %v %v", dangling, err)
	}
	if err := s.Tag(old.ID.Hex[:8], "app"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Lookup("app"); got.Digest != old.Digest {
		t.Fatal("Tag did not move the name back")
	}
	if err := s.Tag("app", "app:v2"); err != nil {
		t.Fatal(err)
	}
	imgs, err := s.Images()
	if err != nil || len(imgs) != 2 {
		t.Fatalf("Images = %v %v", imgs, err)
	}
	for _, img := range imgs {
		want := []string(nil)
		if img.Digest == old.Digest {
			want = []string{"docker.io/library/app:latest", "docker.io/library/app:v2"}
		}
		if !reflect.DeepEqual(img.Names, want) {
			t.Errorf("%s names = %v, want %v", img.Config.Config.Labels["test"], img.Names, want)
		}
	}
	// Newest first: same config time, so the later commit comes first.
	if imgs[0].Digest != newer.Digest {
		t.Errorf("Images order: first is %v", imgs[0].Config.Config.Labels)
	}
	for _, bad := range []struct{ ref, name string }{{"app", "UPPER"}, {"app", "x@" + old.Digest.String()}, {"nothere", "y"}} {
		if err := s.Tag(bad.ref, bad.name); err == nil {
			t.Errorf("Tag(%q, %q) succeeded", bad.ref, bad.name)
		}
	}
	// index.json: one entry per name, one unnamed entry for the untagged image.
	raw, _ := os.ReadFile(filepath.Join(s.Root(), "index.json"))
	var idx v1.IndexManifest
	json.Unmarshal(raw, &idx)
	if len(idx.Manifests) != 3 {
		t.Fatalf("index.json has %d entries:\n%s", len(idx.Manifests), raw)
	}
}

func TestRemoveAndGC(t *testing.T) {
	s := openStore(t, t.TempDir())
	shared := addLayer(t, s, map[string]string{"base": "b"})
	onlyA := addLayer(t, s, map[string]string{"a": "a"})
	onlyB := addLayer(t, s, map[string]string{"b": "b"})
	a := commit(t, s, "a", []v1.Descriptor{shared, onlyA}, "a", "a:2")
	b := commit(t, s, "b", []v1.Descriptor{shared, onlyB}, "b")
	c := commit(t, s, "c", []v1.Descriptor{onlyB}, "c1", "c2")

	steps := []struct {
		ref       string
		lines     []string
		gone      []v1.Hash
		kept      []v1.Hash
		wantNames []string
	}{
		{"a", []string{"Untagged: docker.io/library/a:latest"}, nil,
			[]v1.Hash{a.ID, a.Digest, onlyA.Digest},
			[]string{"docker.io/library/a:2", "docker.io/library/b:latest", "docker.io/library/c1:latest", "docker.io/library/c2:latest"}},
		{"a:2", []string{"Untagged: docker.io/library/a:2", "Deleted: " + a.ID.String()},
			[]v1.Hash{a.ID, a.Digest, onlyA.Digest}, []v1.Hash{shared.Digest, b.ID, b.Digest, onlyB.Digest},
			[]string{"docker.io/library/b:latest", "docker.io/library/c1:latest", "docker.io/library/c2:latest"}},
		{c.ID.Hex[:10], []string{"Untagged: docker.io/library/c1:latest", "Untagged: docker.io/library/c2:latest", "Deleted: " + c.ID.String()},
			[]v1.Hash{c.ID, c.Digest}, []v1.Hash{onlyB.Digest, shared.Digest},
			[]string{"docker.io/library/b:latest"}},
		{b.Digest.String(), []string{"Untagged: docker.io/library/b:latest", "Deleted: " + b.ID.String()},
			[]v1.Hash{b.ID, b.Digest, shared.Digest, onlyB.Digest}, nil, nil},
	}
	for _, st := range steps {
		lines, err := s.Remove(st.ref)
		if err != nil {
			t.Fatalf("Remove(%s): %v", st.ref, err)
		}
		if !reflect.DeepEqual(lines, st.lines) {
			t.Fatalf("Remove(%s) = %q, want %q", st.ref, lines, st.lines)
		}
		for _, d := range st.gone {
			if s.HasBlob(d) {
				t.Errorf("after Remove(%s): blob %s still there", st.ref, d)
			}
		}
		for _, d := range st.kept {
			if !s.HasBlob(d) {
				t.Errorf("after Remove(%s): blob %s collected", st.ref, d)
			}
		}
		if names := allNames(t, s); !reflect.DeepEqual(names, st.wantNames) {
			t.Fatalf("after Remove(%s): names %v, want %v", st.ref, names, st.wantNames)
		}
	}
	if n := len(blobHexes(t, s)); n != 0 {
		t.Fatalf("%d blobs left in an empty store", n)
	}
	if _, err := s.Remove("a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Remove of a missing image: %v", err)
	}
}

// A blob written (or linked) but not yet committed survives a Remove from another Store or process,
// until its writer is gone.
func TestLeasesProtectUncommittedBlobs(t *testing.T) {
	root := t.TempDir()
	builder := openStore(t, root)
	pending := addLayer(t, builder, map[string]string{"pending": "p"})

	other := openStore(t, root)
	x := commit(t, other, "x", []v1.Descriptor{addLayer(t, other, map[string]string{"x": "x"})}, "x")
	if _, err := other.Remove("x"); err != nil {
		t.Fatal(err)
	}
	if s := other; s.HasBlob(x.ID) || !s.HasBlob(pending.Digest) {
		t.Fatal("GC ignored the lease (or kept the removed image)")
	}
	// The builder commits; committed blobs are protected by the index, not the lease.
	img := commit(t, builder, "p", []v1.Descriptor{pending}, "p")
	if _, err := other.Remove("p"); err != nil {
		t.Fatal(err)
	}
	if other.HasBlob(pending.Digest) || other.HasBlob(img.ID) {
		t.Fatal("blobs of a removed image survived although the lease was released by CommitImage")
	}
	// A lease whose owner died (no flock held) is ignored and cleaned up.
	again := addLayer(t, builder, map[string]string{"again": "a"})
	builder.leases.close() // as if the builder process had died
	dead := filepath.Join(root, "tmp", "leases", "lease-dead")
	os.WriteFile(dead, []byte(again.Digest.String()+"\n"), 0o644)
	y := commit(t, other, "y", nil, "y")
	if _, err := other.Remove(y.ID.String()); err != nil {
		t.Fatal(err)
	}
	if other.HasBlob(again.Digest) {
		t.Fatal("blob of a dead lease survived GC")
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Fatal("stale lease file not removed")
	}
}
