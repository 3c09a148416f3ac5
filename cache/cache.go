// Package cache owns step cache keys and the index that maps a key to the layer a step produced.
package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Entry is what a cached step produced.
type Entry struct {
	DiffID      string        `json:"diff_id,omitempty"` // the layer's diffID; "" with Empty
	Empty       bool          `json:"empty,omitempty"`   // the step changed no file
	Size        int64         `json:"size"`
	Created     time.Time     `json:"created"`
	Duration    time.Duration `json:"duration"`
	Description string        `json:"description,omitempty"` // the instruction that made it, for `cache ls`
}

// Listed is an index entry with its key and when a build last used it.
type Listed struct {
	Key string
	Entry
	LastUsed time.Time
}

// Index maps step keys to entries, one small file per key, each written atomically.
type Index struct {
	dir string
}

// Open opens (creating when missing) the index in dir.
func Open(dir string) (*Index, error) {
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return &Index{dir: dir}, nil
}

func (ix *Index) path(key string) string {
	return filepath.Join(ix.dir, "keys", key+".json")
}

// Get returns the entry for key, if any.
func (ix *Index) Get(key string) (Entry, bool) {
	data, err := os.ReadFile(ix.path(key))
	if err != nil {
		return Entry{}, false
	}
	var e Entry
	if json.Unmarshal(data, &e) != nil {
		return Entry{}, false
	}
	return e, true
}

// Put records the entry for key (temp file, fsync, rename).
func (ix *Index) Put(key string, e Entry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return writeAtomic(ix.path(key), data)
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("cache: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("cache: sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}

// Touch records that a build used key now (the entry file's mtime is its last use).
func (ix *Index) Touch(key string) error {
	now := time.Now()
	return os.Chtimes(ix.path(key), now, now)
}

// List returns every entry, least recently used first.
func (ix *Index) List() ([]Listed, error) {
	dir := filepath.Join(ix.dir, "keys")
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	var out []Listed
	for _, de := range des {
		name := de.Name()
		if filepath.Ext(name) != ".json" || strings.HasPrefix(name, ".") {
			continue
		}
		key := strings.TrimSuffix(name, ".json")
		e, ok := ix.Get(key)
		if !ok {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		out = append(out, Listed{Key: key, Entry: e, LastUsed: fi.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastUsed.Before(out[j].LastUsed) })
	return out, nil
}

// Key hashes a parent key and the canonical inputs of a step into the step's key.
func Key(parent string, inputs any) (string, error) {
	data, err := json.Marshal(inputs)
	if err != nil {
		return "", fmt.Errorf("cache: key: %w", err)
	}
	h := sha256.New()
	h.Write([]byte(parent))
	h.Write([]byte{0})
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Remove deletes the entry for key; a missing entry is not an error.
func (ix *Index) Remove(key string) error {
	err := os.Remove(ix.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
