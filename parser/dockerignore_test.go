package parser

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDockerignore(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("# comment\n*.log\n**/secret*\nbuild\n!build/keep.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ig, err := ReadDockerignore(dir, filepath.Join(dir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]bool{
		"app.log":          true,
		"src/app.log":      false, // *.log is anchored at the root, as in docker
		"a/b/secret.txt":   true,
		"secret":           true,
		"build":            true,
		"build/out.o":      true,
		"build/keep.txt":   false,
		"main.go":          false,
		"buildings/x.html": false,
	}
	for p, want := range tests {
		if got := ig.Excluded(p); got != want {
			t.Errorf("Excluded(%q) = %v, want %v", p, got, want)
		}
	}
	if !ig.MayContainIncluded() {
		t.Error("patterns with ! should report possible inclusions")
	}

	// A Dockerfile-specific ignore file wins over the context's.
	df := filepath.Join(dir, "sub.Dockerfile")
	if err := os.WriteFile(df+".dockerignore", []byte("main.go\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ig2, err := ReadDockerignore(dir, df)
	if err != nil {
		t.Fatal(err)
	}
	if !ig2.Excluded("main.go") || ig2.Excluded("app.log") {
		t.Error("sub.Dockerfile.dockerignore should be used instead of .dockerignore")
	}

	none, err := ReadDockerignore(t.TempDir(), "")
	if err != nil || none.Excluded("anything") {
		t.Errorf("no .dockerignore should exclude nothing (%v)", err)
	}
}
