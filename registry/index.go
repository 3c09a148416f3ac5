package registry

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	annotationRefName   = "org.opencontainers.image.ref.name" // full normalized name in the store
	annotationCreated   = "io.layerbuild.created"             // when the image entered the store (RFC 3339)
	annotationContainer = "io.containerd.image.name"          // full name, in oci-archive files
)

// index is index.json in memory. Fields and entries we do not understand are written back as read.
type index struct {
	top     map[string]json.RawMessage
	entries []*indexEntry
}

// indexEntry is one descriptor of index.json; desc is nil when it did not parse.
type indexEntry struct {
	desc *v1.Descriptor
	raw  json.RawMessage
}

func newIndex() *index { return &index{top: map[string]json.RawMessage{}} }

func (e *indexEntry) MarshalJSON() ([]byte, error) {
	if e.desc != nil {
		return json.Marshal(e.desc)
	}
	return e.raw, nil
}

// digest gives what garbage collection needs of any entry, parsed or not.
func (e *indexEntry) digest() (v1.Hash, types.MediaType, int64, bool) {
	if e.desc != nil {
		return e.desc.Digest, e.desc.MediaType, e.desc.Size, true
	}
	var loose struct {
		MediaType types.MediaType `json:"mediaType"`
		Digest    string          `json:"digest"`
		Size      int64           `json:"size"`
	}
	if json.Unmarshal(e.raw, &loose) != nil {
		return v1.Hash{}, "", 0, false
	}
	h, err := v1.NewHash(loose.Digest)
	return h, loose.MediaType, loose.Size, err == nil
}

// isImage tells whether the entry is an image manifest of the store.
func (e *indexEntry) isImage() bool {
	return e.desc != nil && e.desc.MediaType.IsImage() && validHash(e.desc.Digest)
}

// name is the entry's normalized name ("" when untagged). Names written by other tools are
// normalized when they parse, and kept as they are otherwise.
func (e *indexEntry) name() string {
	if e.desc == nil {
		return ""
	}
	n := e.desc.Annotations[annotationRefName]
	if n == "" {
		return ""
	}
	if full, err := NormalizeName(n); err == nil {
		return full
	}
	return n
}

func (e *indexEntry) committed() time.Time {
	if e.desc == nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, e.desc.Annotations[annotationCreated])
	return t
}

// readIndex reads root/index.json. It is replaced only by rename, so reading needs no lock.
func (s *Store) readIndex() (*index, error) {
	path := filepath.Join(s.root, indexFileName)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("registry: read %s: %w", path, err)
	}
	idx := newIndex()
	if err := json.Unmarshal(raw, &idx.top); err != nil {
		return nil, fmt.Errorf("registry: parse %s: %w", path, err)
	}
	var entries []json.RawMessage
	if m, ok := idx.top["manifests"]; ok && string(m) != "null" {
		if err := json.Unmarshal(m, &entries); err != nil {
			return nil, fmt.Errorf("registry: parse %s: manifests: %w", path, err)
		}
	}
	for _, r := range entries {
		e := &indexEntry{raw: r}
		var d v1.Descriptor
		if json.Unmarshal(r, &d) == nil && d.Digest.Algorithm != "" {
			e.desc = &d
		}
		idx.entries = append(idx.entries, e)
	}
	return idx, nil
}

// writeIndex replaces index.json atomically; the caller holds the store lock.
func (s *Store) writeIndex(idx *index) error {
	top := map[string]any{}
	for k, v := range idx.top {
		top[k] = v
	}
	top["schemaVersion"] = 2
	top["mediaType"] = types.OCIImageIndex
	entries := idx.entries
	if entries == nil {
		entries = []*indexEntry{}
	}
	top["manifests"] = entries
	raw, err := json.MarshalIndent(top, "", "  ")
	if err != nil {
		return fmt.Errorf("registry: encode index.json: %w", err)
	}
	raw = append(raw, '\n')
	name := filepath.Join(s.root, indexFileName)
	// A rebuild that changes nothing (same image, same names) leaves index.json alone: no write, no fsync.
	if old, err := os.ReadFile(name); err == nil && bytes.Equal(old, raw) {
		return nil
	}
	return s.writeFileAtomic(name, raw)
}

// imageRec is one image of the index: all entries sharing a manifest digest.
type imageRec struct {
	desc      v1.Descriptor // of the first entry, without the name
	names     []string
	committed time.Time
}

// images groups the image entries by manifest digest, in index order.
func (idx *index) images() []*imageRec {
	var out []*imageRec
	byDigest := map[v1.Hash]*imageRec{}
	for _, e := range idx.entries {
		if !e.isImage() {
			continue
		}
		r := byDigest[e.desc.Digest]
		if r == nil {
			r = &imageRec{desc: withoutName(*e.desc), committed: e.committed()}
			byDigest[e.desc.Digest] = r
			out = append(out, r)
		}
		if n := e.name(); n != "" && !contains(r.names, n) {
			r.names = append(r.names, n)
		}
	}
	for _, r := range out {
		sort.Strings(r.names)
	}
	return out
}

// byName finds the image a name points at.
func (idx *index) byName(full string) *imageRec {
	for _, r := range idx.images() {
		if contains(r.names, full) {
			return r
		}
	}
	return nil
}

// setName points full at the image desc describes, taking it from any other image (which is kept,
// untagged when it has no name left).
func (idx *index) setName(desc v1.Descriptor, full string) {
	idx.dropName(full)
	e := withoutName(desc)
	e.Annotations[annotationRefName] = full
	idx.entries = append(idx.entries, &indexEntry{desc: &e})
	idx.tidy()
}

// dropName removes full from whatever image has it; an image left without names stays, untagged.
func (idx *index) dropName(full string) {
	for _, e := range idx.entries {
		if e.isImage() && e.name() == full {
			d := withoutName(*e.desc)
			e.desc = &d
		}
	}
	idx.tidy()
}

// addUntagged records an image without a name, unless the index has it already.
func (idx *index) addUntagged(desc v1.Descriptor) {
	e := withoutName(desc)
	idx.entries = append(idx.entries, &indexEntry{desc: &e})
	idx.tidy()
}

// removeImage drops every entry of manifest digest d.
func (idx *index) removeImage(d v1.Hash) {
	kept := idx.entries[:0]
	for _, e := range idx.entries {
		if !(e.isImage() && e.desc.Digest == d) {
			kept = append(kept, e)
		}
	}
	idx.entries = kept
}

// tidy keeps the invariant: an image has either named entries (one per name) or one unnamed entry.
func (idx *index) tidy() {
	named := map[v1.Hash]bool{}
	for _, e := range idx.entries {
		if e.isImage() && e.name() != "" {
			named[e.desc.Digest] = true
		}
	}
	seen := map[string]bool{}
	kept := idx.entries[:0]
	for _, e := range idx.entries {
		if e.isImage() {
			n := e.name()
			if n == "" && named[e.desc.Digest] {
				continue
			}
			key := e.desc.Digest.String() + " " + n
			if seen[key] {
				continue
			}
			seen[key] = true
		}
		kept = append(kept, e)
	}
	idx.entries = kept
}

// withoutName copies d with its own annotation map, minus the name.
func withoutName(d v1.Descriptor) v1.Descriptor {
	a := map[string]string{}
	for k, v := range d.Annotations {
		if k != annotationRefName {
			a[k] = v
		}
	}
	d.Annotations = a
	return d
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sha256Hash(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
