package registry

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Leases keep blobs that are written but not yet referenced by index.json (a build between its
// LinkBlob and its CommitImage) from being collected by a Remove running in another process.
// Each Store that writes blobs keeps one file in tmp/leases listing them, and holds a shared flock
// on it for as long as it lives. Garbage collection honours files whose lock is held, and deletes
// the others: their owner is gone (the kernel drops the lock when a process dies, even by kill -9).
// Lease files are only created and rewritten under the store lock, so GC never sees a partial one.
type leaseSet struct {
	dir   string
	mu    sync.Mutex
	f     *os.File
	count map[v1.Hash]int
}

func newLeaseSet(dir string) *leaseSet {
	return &leaseSet{dir: dir, count: map[v1.Hash]int{}}
}

// add leases d; the caller holds the store lock.
func (l *leaseSet) add(d v1.Hash) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		if err := os.MkdirAll(l.dir, 0o755); err != nil {
			return fmt.Errorf("registry: lease blob %s: %w", d, err)
		}
		f, err := os.OpenFile(filepath.Join(l.dir, "lease-"+randomHex(8)), os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("registry: lease blob %s: %w", d, err)
		}
		if err := flock(f, lockShared); err != nil {
			f.Close()
			os.Remove(f.Name())
			return fmt.Errorf("registry: lease blob %s: %w", d, err)
		}
		l.f = f
	}
	l.count[d]++
	if l.count[d] > 1 {
		return nil
	}
	if _, err := l.f.WriteString(d.String() + "\n"); err != nil {
		return fmt.Errorf("registry: lease blob %s: %w", d, err)
	}
	return nil
}

// release drops one lease of each digest; the caller holds the store lock.
func (l *leaseSet) release(ds []v1.Hash) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	changed := false
	for _, d := range ds {
		if n, ok := l.count[d]; ok {
			if n <= 1 {
				delete(l.count, d)
				changed = true
			} else {
				l.count[d] = n - 1
			}
		}
	}
	if !changed || l.f == nil {
		return nil
	}
	// Rewrite in place: a rename would leave our flock on the old inode.
	var b strings.Builder
	for d := range l.count {
		b.WriteString(d.String() + "\n")
	}
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("registry: release leases: %w", err)
	}
	if _, err := l.f.WriteString(b.String()); err != nil {
		return fmt.Errorf("registry: release leases: %w", err)
	}
	return nil
}

func (l *leaseSet) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		// Unlock before removal would let GC delete it anyway; removing first is tidier.
		os.Remove(l.f.Name())
		l.f.Close()
		l.f = nil
	}
}

// liveLeases reads the lease files of living Stores and deletes those of dead ones.
// The caller holds the store lock.
func (s *Store) liveLeases() (map[string]bool, error) {
	keep := map[string]bool{}
	dir := filepath.Join(s.TempDir(), leaseDirName)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return keep, nil
	}
	if err != nil {
		return nil, fmt.Errorf("registry: read leases: %w", err)
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		f, err := os.Open(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("registry: read lease %s: %w", path, err)
		}
		free, err := tryLockExclusive(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("registry: read lease %s: %w", path, err)
		}
		if free { // owner gone
			os.Remove(path)
			f.Close()
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if h, err := v1.NewHash(strings.TrimSpace(sc.Text())); err == nil {
				keep[h.String()] = true
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("registry: read lease %s: %w", path, err)
		}
	}
	return keep, nil
}

// collectLocked deletes every blob that no index entry reaches (manifests, configs, layers, nested
// indexes) and no live lease holds. The caller holds the store lock and passes the index it just wrote.
// When a manifest or index it reaches cannot be read, nothing is deleted.
func (s *Store) collectLocked(idx *index) ([]v1.Hash, error) {
	keep, err := s.liveLeases()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, e := range idx.entries {
		d, mt, size, ok := e.digest()
		if !ok {
			continue // no valid digest: it cannot name any blob
		}
		if err := s.mark(keep, seen, d, mt, size, 0); err != nil {
			return nil, fmt.Errorf("registry: garbage collection skipped: %w", err)
		}
	}
	if err := s.keepCompressedLocked(keep); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.root, "blobs", "sha256")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("registry: garbage collection: %w", err)
	}
	var removed []v1.Hash
	for _, e := range entries {
		h := v1.Hash{Algorithm: "sha256", Hex: e.Name()}
		if !validHash(h) || keep[h.String()] {
			continue
		}
		// Layer blobs may be hard links of files the snapshot package keeps: this only unlinks ours.
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("registry: garbage collection: %w", err)
		}
		removed = append(removed, h)
	}
	return removed, nil
}

// mark records d and everything it references. Entries and index children of unknown media type
// are read too when small, in case they are manifests a foreign tool labelled differently.
func (s *Store) mark(keep, seen map[string]bool, d v1.Hash, mt types.MediaType, size int64, depth int) error {
	keep[d.String()] = true
	if seen[d.String()] || mt.IsLayer() || mt.IsConfig() {
		return nil
	}
	seen[d.String()] = true
	known := mt.IsImage() || mt.IsIndex()
	if depth > 8 {
		return fmt.Errorf("index nesting too deep at %s", d)
	}
	if !known && (size <= 0 || size > 4<<20) {
		return nil
	}
	raw, err := s.readBlob(d)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // a dangling entry references nothing we could delete
	}
	if err != nil {
		return err
	}
	var g struct {
		Config    *v1.Descriptor  `json:"config"`
		Layers    []v1.Descriptor `json:"layers"`
		Manifests []v1.Descriptor `json:"manifests"`
		Subject   *v1.Descriptor  `json:"subject"`
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		if known {
			return fmt.Errorf("%s %s: %w", mt, d, err)
		}
		return nil // opaque blob
	}
	if g.Config != nil {
		keep[g.Config.Digest.String()] = true
	}
	for _, l := range g.Layers {
		keep[l.Digest.String()] = true
	}
	if g.Subject != nil {
		keep[g.Subject.Digest.String()] = true
	}
	for _, c := range g.Manifests {
		if err := s.mark(keep, seen, c.Digest, c.MediaType, c.Size, depth+1); err != nil {
			return err
		}
	}
	return nil
}
