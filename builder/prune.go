package builder

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/layerbuild/layerbuild/cache"
	"github.com/layerbuild/layerbuild/registry"
	"github.com/layerbuild/layerbuild/sandbox"
	"github.com/layerbuild/layerbuild/snapshot"
)

// What may be removed, and why it is safe:
//
//   - A layer "an image needs" is one that some image of the store (tagged or not) lists, in its config's
//     rootfs.diff_ids or its manifest's layers. Its unpacked dir (layers/<hex>) and its blob are never removed
//     here; removing an image is `rm`'s or `prune`'s business.
//   - A cache entry is "dangling" when it names a layer and no image needs that layer. Entries of steps that
//     changed no file (Empty) hold no storage and are never dangling: only --all removes them. An entry whose
//     diffID does not parse is dangling.
//   - An unpacked layer goes when no cache entry that is left and no image refers to it (Snapshotter.Remove:
//     rename out of sight, then delete, so a kill -9 never leaves a half layer behind a name).
//   - Everything happens under the cache's exclusive lock: prune waits for running builds (which hold the
//     shared lock for their whole run, from their first cache lookup to their image commit) and keeps new
//     builds out until it is done.
//
// Sizes are layer sizes (bytes of the uncompressed tar), as `images` and `history` show them.

// CacheRecord is one cache entry with the layer it names.
type CacheRecord struct {
	cache.Listed
	Layer   *snapshot.Layer // nil for an Empty entry, or when the layer is not unpacked (any more)
	InImage bool            // an image of the store needs the layer
}

// CacheUsage is the cache's content and what it costs.
type CacheUsage struct {
	Records     []CacheRecord // most recently used first
	Size        int64         // the distinct unpacked layers the entries name
	Reclaimable int64         // the part of Size no image needs (what `cache prune` frees)
}

// PruneOptions select the cache entries PruneCache removes.
type PruneOptions struct {
	// All widens the selection from dangling entries to every entry (the images keep their layers).
	All bool
	// Until, when positive, keeps entries a build used within that duration.
	Until time.Duration
	// LimitStorage makes PruneCache remove the selected entries least recently used first, only until the
	// distinct layers the remaining entries name take at most KeepStorage bytes.
	LimitStorage bool
	KeepStorage  int64
}

// PruneResult is what a prune removed.
type PruneResult struct {
	Entries   int   // cache entries
	Images    int   // images (PruneImages)
	Layers    int   // unpacked layers
	Reclaimed int64 // bytes of the layers (and image configs) that are gone from the store
	Lines     []string
}

// CacheUsage lists the cache entries with their layers, newest use first.
func (b *Builder) CacheUsage() (*CacheUsage, error) {
	needed, _, err := b.imageLayerSet()
	if err != nil {
		return nil, err
	}
	entries, err := b.Cache.List()
	if err != nil {
		return nil, fmt.Errorf("cache usage: %w", err)
	}
	u := &CacheUsage{}
	counted := map[string]bool{}
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		r := CacheRecord{Listed: e}
		if d, ok := entryLayer(e); ok {
			r.InImage = needed[d.String()]
			l, err := b.Snap.Get(d)
			if err != nil && !errors.Is(err, snapshot.ErrNotFound) {
				return nil, fmt.Errorf("cache usage: entry %s: %w", e.Key, err)
			}
			r.Layer = l
			if l != nil && !counted[d.String()] {
				counted[d.String()] = true
				u.Size += l.Size
				if !r.InImage {
					u.Reclaimable += l.Size
				}
			}
		}
		u.Records = append(u.Records, r)
	}
	return u, nil
}

// PruneCache removes the cache entries opts select and then the unpacked layers that only they kept: layers
// that an image needs or a remaining entry names stay. It holds the cache's exclusive lock throughout.
func (b *Builder) PruneCache(opts PruneOptions) (*PruneResult, error) {
	release, err := b.Cache.Exclusive()
	if err != nil {
		return nil, fmt.Errorf("cache prune: %w", err)
	}
	defer release()
	needed, _, err := b.imageLayerSet()
	if err != nil {
		return nil, fmt.Errorf("cache prune: %w", err)
	}
	entries, err := b.Cache.List() // least recently used first
	if err != nil {
		return nil, fmt.Errorf("cache prune: %w", err)
	}
	refs := map[string]int{}       // diffID -> entries naming it
	sizes := map[string]int64{}    // diffID -> size, for the layers that are unpacked
	hashes := map[string]v1.Hash{} // diffID -> parsed
	var storage int64              // distinct unpacked layers the entries name
	for _, e := range entries {
		d, ok := entryLayer(e)
		if !ok {
			continue
		}
		ds := d.String()
		refs[ds]++
		if _, seen := hashes[ds]; seen {
			continue
		}
		hashes[ds] = d
		l, err := b.Snap.Get(d)
		if errors.Is(err, snapshot.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cache prune: entry %s: %w", e.Key, err)
		}
		sizes[ds] = l.Size
		storage += l.Size
	}
	cutoff := time.Now().Add(-opts.Until)
	res := &PruneResult{}
	var freed []string
	for _, e := range entries {
		if opts.LimitStorage && storage <= opts.KeepStorage {
			break
		}
		d, hasLayer := entryLayer(e)
		dangling := (hasLayer && !needed[d.String()]) || (!e.Empty && !hasLayer)
		if (!opts.All && !dangling) || (opts.Until > 0 && !e.LastUsed.Before(cutoff)) {
			continue
		}
		if err := b.Cache.Remove(e.Key); err != nil {
			return res, fmt.Errorf("cache prune: remove entry %s: %w", e.Key, err)
		}
		res.Entries++
		if !hasLayer {
			continue
		}
		ds := d.String()
		if refs[ds]--; refs[ds] == 0 {
			storage -= sizes[ds]
			if _, unpacked := sizes[ds]; unpacked && !needed[ds] {
				freed = append(freed, ds)
			}
		}
	}
	// Entries first, layers second: a kill -9 in between leaves layers no entry names (the next `prune`
	// removes them), never an entry whose layer is half gone.
	for _, ds := range freed {
		err := b.Snap.Remove(hashes[ds])
		b.Cache.ForgetLayer(ds)
		if errors.Is(err, snapshot.ErrNotFound) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("cache prune: %w", err)
		}
		res.Layers++
		res.Reclaimed += sizes[ds]
	}
	return res, nil
}

// PruneImages removes the images that have no name (as `docker image prune`), then every unpacked layer that
// no image needs and no cache entry names. It holds the cache's exclusive lock throughout, so a build's layers
// between their commit and their cache entry or image are never taken for unused.
func (b *Builder) PruneImages() (*PruneResult, error) {
	release, err := b.Cache.Exclusive()
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	defer release()
	_, imgs, err := b.imageLayerSet()
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	before, err := b.layerSizes(imgs)
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	res := &PruneResult{}
	removedConfigs := map[string]int64{}
	for _, img := range imgs {
		if len(img.Names) > 0 {
			continue
		}
		// Look again right before: a name given meanwhile (tag does not take the cache lock) saves it.
		if cur, err := b.Store.Lookup(img.Digest.String()); err != nil || len(cur.Names) > 0 {
			continue
		}
		lines, err := b.Store.Remove(img.Digest.String())
		res.Lines = append(res.Lines, lines...)
		if errors.Is(err, registry.ErrNotFound) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("prune: remove image %s: %w", img.ID, err)
		}
		res.Images++
		removedConfigs[img.ID.String()] = img.Manifest.Config.Size
	}
	needed, imgs, err := b.imageLayerSet()
	if err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	entries, err := b.Cache.List()
	if err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	for _, e := range entries {
		if d, ok := entryLayer(e); ok {
			needed[d.String()] = true
		}
	}
	layers, err := b.Snap.List()
	if err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	for _, l := range layers {
		if needed[l.DiffID.String()] {
			continue
		}
		if err := b.Snap.Remove(l.DiffID); err != nil && !errors.Is(err, snapshot.ErrNotFound) {
			return res, fmt.Errorf("prune: %w", err)
		}
		b.Cache.ForgetLayer(l.DiffID.String())
		res.Layers++
	}
	after, err := b.layerSizes(imgs)
	if err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	for d, n := range before {
		if _, ok := after[d]; !ok {
			res.Reclaimed += n
		}
	}
	for _, img := range imgs {
		delete(removedConfigs, img.ID.String())
	}
	for _, n := range removedConfigs {
		res.Reclaimed += n
	}
	return res, nil
}

// imageLayerSet returns every image of the store and the set of layers (diffIDs and layer digests) they need.
func (b *Builder) imageLayerSet() (map[string]bool, []*registry.Image, error) {
	imgs, err := b.Store.Images()
	if err != nil {
		return nil, nil, fmt.Errorf("list images: %w", err)
	}
	needed := map[string]bool{}
	for _, img := range imgs {
		for _, d := range img.Config.RootFS.DiffIDs {
			needed[d.String()] = true
		}
		for _, l := range img.Manifest.Layers {
			needed[l.Digest.String()] = true
		}
	}
	// Containers (running or kept) mount layers as their lower dirs: those layers stay too, even when their
	// image is gone.
	if cs, err := sandbox.OpenContainers(filepath.Join(b.Store.Root(), "containers")); err == nil {
		if list, err := cs.List(); err == nil {
			for _, c := range list {
				for _, lower := range c.Config.Lowers {
					needed["sha256:"+filepath.Base(filepath.Dir(lower))] = true
				}
			}
		}
	}
	return needed, imgs, nil
}

// layerSizes maps every layer the store holds (as an image's blob or unpacked) to its size.
func (b *Builder) layerSizes(imgs []*registry.Image) (map[string]int64, error) {
	out := map[string]int64{}
	for _, img := range imgs {
		for _, l := range img.Manifest.Layers {
			out[l.Digest.String()] = l.Size
		}
	}
	layers, err := b.Snap.List()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		out[l.DiffID.String()] = l.Size
	}
	return out, nil
}

// entryLayer is the layer an entry names, if any.
func entryLayer(e cache.Listed) (v1.Hash, bool) {
	if e.Empty || e.DiffID == "" {
		return v1.Hash{}, false
	}
	d, err := v1.NewHash(e.DiffID)
	if err != nil {
		return v1.Hash{}, false
	}
	return d, true
}
