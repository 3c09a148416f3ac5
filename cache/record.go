package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// StepRecord is what one step saw and did in a build: the inputs that make its key, kept so that the next build
// of the same Dockerfile can say exactly why a step was not reused.
type StepRecord struct {
	Step        int               `json:"step"`        // number in the build's progress ([n/total])
	Instruction string            `json:"instruction"` // as written, continuation lines joined
	Canonical   string            `json:"canonical"`   // the instruction after ARG/ENV expansion (canonical JSON)
	Key         string            `json:"key"`
	Base        string            `json:"base,omitempty"`    // FROM: the reference as written (expanded)
	BaseID      string            `json:"base_id,omitempty"` // FROM: image ID, "scratch" or the stage's key
	Args        map[string]string `json:"args,omitempty"`    // ARG values in scope
	Env         []string          `json:"env,omitempty"`
	User        string            `json:"user,omitempty"`
	Workdir     string            `json:"workdir,omitempty"`
	Shell       []string          `json:"shell,omitempty"`
	Network     string            `json:"network,omitempty"`
	Files       map[string]string `json:"files,omitempty"`    // COPY/ADD: source path -> digest of its metadata and content
	FromKey     string            `json:"from_key,omitempty"` // COPY --from: the source stage's key or image ID
	FromName    string            `json:"from_name,omitempty"`
	Status      string            `json:"status"`
}

// BuildRecord holds the steps of the last build of one Dockerfile, by stage ("name" or "#index").
type BuildRecord struct {
	Dockerfile string                  `json:"dockerfile"`
	Stages     map[string][]StepRecord `json:"stages"`
	Image      string                  `json:"image,omitempty"`       // the image the last build made
	WasteHints []string                `json:"waste_hints,omitempty"` // its hints about wasted bytes
}

// RecordID names the record of a Dockerfile (its absolute path, or the context for a Dockerfile on stdin).
func RecordID(dockerfile string) string {
	sum := sha256.Sum256([]byte(dockerfile))
	return hex.EncodeToString(sum[:16])
}

func (ix *Index) recordPath(id string) string {
	return filepath.Join(ix.dir, "builds", id+".json")
}

// LoadRecord returns the last build record for id, or nil when there is none (or it cannot be read).
func (ix *Index) LoadRecord(id string) *BuildRecord {
	data, err := os.ReadFile(ix.recordPath(id))
	if err != nil {
		return nil
	}
	var r BuildRecord
	if json.Unmarshal(data, &r) != nil {
		return nil
	}
	return &r
}

// SaveRecord replaces the record for id atomically; an unchanged record is not written again.
func (ix *Index) SaveRecord(id string, r *BuildRecord) error {
	if err := os.MkdirAll(filepath.Join(ix.dir, "builds"), 0o700); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("cache: record: %w", err)
	}
	if old, err := os.ReadFile(ix.recordPath(id)); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return writeAtomic(ix.recordPath(id), data)
}
