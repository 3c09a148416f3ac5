package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/layerbuild/layerbuild/cache"
	"github.com/layerbuild/layerbuild/parser"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// buildTagged builds df (no context files) as tag and returns the image and how many steps were cached.
func buildTagged(t *testing.T, b *Builder, df, tag string) (*Result, int) {
	t.Helper()
	plan, err := parser.Parse(strings.NewReader(df), parser.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	res, err := b.Build(context.Background(), Options{ContextDir: t.TempDir(), Plan: plan,
		Tags: []string{"docker.io/library/" + tag + ":latest"}, Progress: rec})
	if err != nil {
		t.Fatalf("build %s: %v", tag, err)
	}
	return res, strings.Count(strings.Join(rec.events, "|"), "cached")
}

// entryFor finds the cache entry whose description contains s.
func entryFor(t *testing.T, b *Builder, s string) cache.Listed {
	t.Helper()
	es, err := b.Cache.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if strings.Contains(e.Description, s) {
			return e
		}
	}
	t.Fatalf("no cache entry for %q", s)
	return cache.Listed{}
}

func hasEntry(b *Builder, s string) bool {
	es, _ := b.Cache.List()
	for _, e := range es {
		if strings.Contains(e.Description, s) {
			return true
		}
	}
	return false
}

func layerOf(t *testing.T, e cache.Listed) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(e.DiffID)
	if err != nil {
		t.Fatalf("entry %s: %v", e.Key, err)
	}
	return h
}

func unpacked(b *Builder, d v1.Hash) bool {
	_, err := b.Snap.Get(d)
	return err == nil
}

// age makes a build's last use of e look d old.
func age(t *testing.T, b *Builder, e cache.Listed, d time.Duration) {
	t.Helper()
	old := time.Now().Add(-d)
	if err := os.Chtimes(filepath.Join(b.Store.Root(), "cache", "keys", e.Key+".json"), old, old); err != nil {
		t.Fatal(err)
	}
}

const (
	dfA = "FROM busybox\nENV X=1\nRUN echo shared > /s\nRUN echo a > /a\n"
	dfB = "FROM busybox\nENV X=1\nRUN echo shared > /s\nRUN echo bbbb > /b\n"
)

// TestPruneCacheDangling: the default prune removes exactly the entries whose layers no image needs, and their
// layers; the images still rebuild fully from the cache; the pruned step rebuilds.
func TestPruneCacheDangling(t *testing.T) {
	b := newTestBuilder(t)
	buildTagged(t, b, dfA, "a")
	buildTagged(t, b, dfB, "b")
	if _, err := b.Store.Remove("b"); err != nil {
		t.Fatal(err)
	}
	onlyB := layerOf(t, entryFor(t, b, "echo bbbb"))
	shared := layerOf(t, entryFor(t, b, "echo shared"))

	u, err := b.CacheUsage()
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Records) != 4 { // ENV, shared RUN, a, b
		t.Fatalf("records = %d, want 4: %+v", len(u.Records), u.Records)
	}
	var bSize int64
	for _, r := range u.Records {
		switch {
		case strings.Contains(r.Description, "echo bbbb"):
			if r.InImage || r.Layer == nil {
				t.Errorf("b's layer: in image %v, layer %v", r.InImage, r.Layer)
			}
			bSize = r.Layer.Size
		case strings.Contains(r.Description, "ENV"):
			if r.Layer != nil || !r.Empty {
				t.Errorf("ENV entry should be empty: %+v", r)
			}
		default:
			if !r.InImage {
				t.Errorf("%s: an image needs its layer", r.Description)
			}
		}
	}
	if u.Reclaimable != bSize || u.Size <= bSize {
		t.Errorf("usage %d, reclaimable %d; want reclaimable = %d (b's layer) < size", u.Size, u.Reclaimable, bSize)
	}

	res, err := b.PruneCache(PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != 1 || res.Layers != 1 || res.Reclaimed != bSize {
		t.Errorf("prune: %+v, want 1 entry, 1 layer, %d bytes", res, bSize)
	}
	if hasEntry(b, "echo bbbb") || unpacked(b, onlyB) {
		t.Error("b's entry and layer should be gone")
	}
	if !unpacked(b, shared) || !hasEntry(b, "ENV X=1") {
		t.Error("the shared layer and the empty entry stay")
	}
	if _, n := buildTagged(t, b, dfA, "a"); n != 3 {
		t.Errorf("rebuild of a: %d cached steps, want 3", n)
	}
	if _, n := buildTagged(t, b, dfB, "b"); n != 2 {
		t.Errorf("rebuild of b: %d cached steps, want 2 (ENV, shared RUN)", n)
	}
	if res, err := b.PruneCache(PruneOptions{}); err != nil || res.Entries != 0 {
		t.Errorf("nothing dangling now: %+v %v", res, err)
	}
}

// TestPruneCacheAll: --all removes every entry, but the layers of images stay unpacked and their blobs intact.
func TestPruneCacheAll(t *testing.T) {
	b := newTestBuilder(t)
	ra, _ := buildTagged(t, b, dfA, "a")
	buildTagged(t, b, dfB, "b")
	b.Store.Remove("b")
	onlyB := layerOf(t, entryFor(t, b, "echo bbbb"))

	res, err := b.PruneCache(PruneOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != 4 || res.Layers != 1 {
		t.Errorf("prune --all: %+v, want 4 entries, 1 layer", res)
	}
	if es, _ := b.Cache.List(); len(es) != 0 {
		t.Errorf("entries left: %v", es)
	}
	if unpacked(b, onlyB) {
		t.Error("b's layer is needed by nothing")
	}
	img, err := b.Store.Lookup("a")
	if err != nil || img.ID != ra.Image.ID {
		t.Fatalf("image a: %v", err)
	}
	for _, d := range img.Config.RootFS.DiffIDs {
		if !unpacked(b, d) || !b.Store.HasBlob(d) {
			t.Errorf("layer %s of image a: unpacked %v, blob %v", d, unpacked(b, d), b.Store.HasBlob(d))
		}
	}
	if _, n := buildTagged(t, b, dfA, "a"); n != 0 {
		t.Errorf("rebuild after --all: %d cached steps, want 0", n)
	}
}

// TestPruneCacheAgeAndStorage: --filter until keeps recently used entries; --keep-storage removes the least
// recently used first and stops once the rest fits.
func TestPruneCacheAgeAndStorage(t *testing.T) {
	b := newTestBuilder(t)
	for _, n := range []string{"1000", "2000", "3000"} {
		buildTagged(t, b, "FROM busybox\nRUN head -c "+n+"000 /dev/zero > /f"+n+"\n", "t")
	}
	if res, err := b.PruneImages(); err != nil || res.Images != 2 || res.Layers != 0 {
		t.Fatalf("prune images: %+v %v (2 untagged images; their layers stay for the cache)", res, err)
	}
	b.Store.Remove("t")
	e1, e2, e3 := entryFor(t, b, "1000000"), entryFor(t, b, "2000000"), entryFor(t, b, "3000000")
	age(t, b, e1, 3*time.Hour)
	age(t, b, e2, 2*time.Hour)

	res, err := b.PruneCache(PruneOptions{Until: 150 * time.Minute})
	if err != nil || res.Entries != 1 || hasEntry(b, "1000000") || !hasEntry(b, "2000000") || unpacked(b, layerOf(t, e1)) {
		t.Errorf("until 150m: %+v %v: want only the 3h old entry and its layer gone", res, err)
	}
	l3, err := b.Snap.Get(layerOf(t, e3))
	if err != nil {
		t.Fatal(err)
	}
	res, err = b.PruneCache(PruneOptions{LimitStorage: true, KeepStorage: l3.Size + 1000})
	if err != nil || res.Entries != 1 || hasEntry(b, "2000000") || !hasEntry(b, "3000000") || unpacked(b, layerOf(t, e2)) {
		t.Errorf("keep-storage: %+v %v: want the older entry gone, the newer kept", res, err)
	}
	res, err = b.PruneCache(PruneOptions{LimitStorage: true, KeepStorage: 0})
	if err != nil || res.Entries != 1 || hasEntry(b, "3000000") || unpacked(b, l3.DiffID) || res.Reclaimed != l3.Size {
		t.Errorf("keep-storage 0: %+v %v", res, err)
	}
	if img, err := b.Store.Lookup("busybox"); err != nil || !unpacked(b, img.Config.RootFS.DiffIDs[0]) {
		t.Errorf("busybox's layer is needed by an image: %v", err)
	}
}

// TestPruneImages: untagged images go, named ones stay; unpacked layers that neither an image nor a cache
// entry uses go too.
func TestPruneImages(t *testing.T) {
	b := newTestBuilder(t)
	old, _ := buildTagged(t, b, "FROM busybox\nRUN echo 1 > /v\n", "x")
	cur, _ := buildTagged(t, b, "FROM busybox\nRUN echo 2 > /v\n", "x")
	orphan, err := b.Snap.Unpack(bytes.NewReader(mkTestTar(t)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.PruneImages()
	if err != nil {
		t.Fatal(err)
	}
	want := "Deleted: " + old.Image.ID.String()
	if res.Images != 1 || len(res.Lines) != 1 || res.Lines[0] != want {
		t.Errorf("prune: %+v, want %q", res, want)
	}
	if res.Layers != 1 || unpacked(b, orphan.DiffID) || res.Reclaimed < orphan.Size {
		t.Errorf("the orphan layer should go: %+v", res)
	}
	if img, err := b.Store.Lookup("x"); err != nil || img.ID != cur.Image.ID {
		t.Errorf("x: %v", err)
	}
	if _, err := b.Store.Lookup(old.Image.ID.String()); err == nil {
		t.Error("the untagged image is still there")
	}
	if !unpacked(b, old.Image.Config.RootFS.DiffIDs[1]) {
		t.Error("the old image's own layer still has a cache entry: it stays")
	}
	if res, err := b.PruneImages(); err != nil || res.Images != 0 || res.Layers != 0 || res.Reclaimed != 0 {
		t.Errorf("second prune: %+v %v", res, err)
	}
}

// TestPruneWaitsForBuilds: prune takes the exclusive lock, so it waits for a build holding the shared one.
func TestPruneWaitsForBuilds(t *testing.T) {
	b := newTestBuilder(t)
	release, err := b.Cache.Use()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan time.Time, 1)
	go func() {
		b.PruneCache(PruneOptions{})
		done <- time.Now()
	}()
	time.Sleep(300 * time.Millisecond)
	released := time.Now()
	release()
	select {
	case at := <-done:
		if at.Before(released) {
			t.Error("prune finished while a build held the cache")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("prune did not finish after the build released the cache")
	}
}

// mkTestTar is a one-file layer tar.
func mkTestTar(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := "orphan layer"
	if err := tw.WriteHeader(&tar.Header{Name: "orphan", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(body))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
