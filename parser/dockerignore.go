package parser

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// Ignore holds the .dockerignore patterns of a build context.
type Ignore struct {
	pm   *patternmatcher.PatternMatcher
	File string // the file the patterns came from ("" when none)
}

// ReadDockerignore loads <dockerfile>.dockerignore when it exists (as BuildKit does), else
// CONTEXT/.dockerignore. No file means nothing is ignored.
func ReadDockerignore(contextDir, dockerfile string) (*Ignore, error) {
	var candidates []string
	if dockerfile != "" && dockerfile != "-" {
		candidates = append(candidates, dockerfile+".dockerignore")
	}
	candidates = append(candidates, filepath.Join(contextDir, ".dockerignore"))
	for _, name := range candidates {
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		patterns, err := ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return NewIgnore(name, patterns)
	}
	return &Ignore{}, nil
}

// NewIgnore makes an Ignore from patterns in .dockerignore syntax.
func NewIgnore(file string, patterns []string) (*Ignore, error) {
	if len(patterns) == 0 {
		return &Ignore{File: file}, nil
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &Ignore{pm: pm, File: file}, nil
}

// Excluded tells whether the context path rel (slash-separated, relative to the context root) is excluded.
func (ig *Ignore) Excluded(rel string) bool {
	if ig == nil || ig.pm == nil {
		return false
	}
	m, err := ig.pm.MatchesOrParentMatches(filepath.ToSlash(rel))
	return err == nil && m
}

// MayContainIncluded tells whether an excluded directory may still hold included paths (a `!` exception
// exists), so a walk must descend into it.
func (ig *Ignore) MayContainIncluded() bool {
	return ig != nil && ig.pm != nil && ig.pm.Exclusions()
}
