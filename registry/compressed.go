package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
)

// The compressed-layer cache: layers are stored uncompressed (digest == diffID), but registries want them
// compressed. A layer is compressed once, the first time it leaves the machine, and the compressed blob is
// kept in blobs/ beside the uncompressed one; ROOT/compressed/gzip/<diffID hex> records the mapping
// ({"digest","size"}). A pulled gzip layer is recorded the same way (after its diffID was verified), so an
// image built FROM a pulled base pushes the base's layers with their original digests: the registry already
// has them, and nothing is compressed again.
//
// Garbage collection (collectLocked) keeps a compressed blob while its uncompressed layer is kept, and drops
// mappings whose layer and blob are both gone.

const compressedDirName = "compressed"

type compressedRec struct {
	Digest v1.Hash `json:"digest"`
	Size   int64   `json:"size"`
	// Source is the repository the blob was pulled from (for a cross-repository mount on push).
	Source string `json:"source,omitempty"`
}

func (s *Store) compressedPath(alg string, diffID v1.Hash) string {
	return filepath.Join(s.root, compressedDirName, alg, diffID.Hex)
}

// compressedFor returns the recorded compressed form (alg "gzip") of the layer with this diffID, when
// the mapping and the blob are both present.
func (s *Store) compressedFor(alg string, diffID v1.Hash) (compressedRec, bool) {
	if !validHash(diffID) {
		return compressedRec{}, false
	}
	raw, err := os.ReadFile(s.compressedPath(alg, diffID))
	if err != nil {
		return compressedRec{}, false
	}
	var rec compressedRec
	if json.Unmarshal(raw, &rec) != nil || !validHash(rec.Digest) || rec.Size <= 0 || !s.HasBlob(rec.Digest) {
		return compressedRec{}, false
	}
	return rec, true
}

// recordCompressed writes the mapping diffID -> compressed blob, atomically.
func (s *Store) recordCompressed(alg string, diffID v1.Hash, rec compressedRec) error {
	p := s.compressedPath(alg, diffID)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("registry: record compressed layer %s: %w", diffID, err)
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return s.writeFileAtomic(p, raw)
}

// CompressLayer makes sure the uncompressed stored layer with digest (= diffID) diffID has a gzip blob in
// the store, compressing it (once, in one streaming pass that also re-checks the diffID) when it has none.
// It returns the compressed blob's digest and size and whether it had to compress.
func (s *Store) CompressLayer(diffID v1.Hash) (v1.Hash, int64, bool, error) {
	if rec, ok := s.compressedFor("gzip", diffID); ok {
		// Lease it: a concurrent garbage collection must not take it while we push it.
		if present, err := s.leaseIfPresent(rec.Digest); err != nil || present {
			return rec.Digest, rec.Size, false, err
		}
	}
	rc, err := s.OpenBlob(diffID)
	if err != nil {
		return v1.Hash{}, 0, false, err
	}
	defer rc.Close()
	tmp := s.tempName("gzip")
	defer os.Remove(tmp) // gone already when renamed in
	d, n, err := compressTo(tmp, rc, diffID)
	if err != nil {
		return v1.Hash{}, 0, false, fmt.Errorf("registry: compress layer %s: %w", diffID, err)
	}
	unlock, err := s.Lock()
	if err != nil {
		return v1.Hash{}, 0, false, err
	}
	if err = s.leases.add(d); err == nil {
		err = s.installLocked(tmp, d)
	}
	unlock()
	if err != nil {
		return v1.Hash{}, 0, false, err
	}
	if err := s.recordCompressed("gzip", diffID, compressedRec{Digest: d, Size: n}); err != nil {
		return v1.Hash{}, 0, false, err
	}
	return d, n, true, nil
}

// compressTo gzips r into the new file path (fsynced), checking that r's sha256 is diffID.
func compressTo(path string, r io.Reader, diffID v1.Hash) (v1.Hash, int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer f.Close()
	out := &hashCounter{h: sha256.New()}
	zw, err := gzip.NewWriterLevel(io.MultiWriter(f, out), gzip.DefaultCompression)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	in := sha256.New()
	if _, err := io.Copy(zw, io.TeeReader(r, in)); err != nil {
		return v1.Hash{}, 0, err
	}
	if err := zw.Close(); err != nil {
		return v1.Hash{}, 0, err
	}
	if got := hex.EncodeToString(in.Sum(nil)); got != diffID.Hex {
		return v1.Hash{}, 0, fmt.Errorf("stored layer has digest sha256:%s", got)
	}
	if err := f.Sync(); err != nil {
		return v1.Hash{}, 0, err
	}
	if err := f.Close(); err != nil {
		return v1.Hash{}, 0, err
	}
	return out.sum(), out.n, nil
}

type hashCounter struct {
	h hash.Hash
	n int64
}

func (c *hashCounter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

func (c *hashCounter) sum() v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(c.h.Sum(nil))}
}

// keepCompressedLocked is part of garbage collection (the caller holds the store lock): the compressed
// blob of every kept layer is kept too, and mappings whose layer and blob are both unreferenced go.
func (s *Store) keepCompressedLocked(keep map[string]bool) error {
	base := filepath.Join(s.root, compressedDirName)
	algs, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("registry: garbage collection: %w", err)
	}
	for _, a := range algs {
		if !a.IsDir() {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(base, a.Name()))
		if err != nil {
			return fmt.Errorf("registry: garbage collection: %w", err)
		}
		for _, e := range entries {
			diffID := v1.Hash{Algorithm: "sha256", Hex: e.Name()}
			if !validHash(diffID) {
				continue
			}
			path := filepath.Join(base, a.Name(), e.Name())
			raw, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			var rec compressedRec
			if json.Unmarshal(raw, &rec) != nil || !validHash(rec.Digest) {
				os.Remove(path)
				continue
			}
			switch {
			case keep[diffID.String()]:
				keep[rec.Digest.String()] = true
			case !keep[rec.Digest.String()]:
				os.Remove(path)
			}
		}
	}
	return nil
}
