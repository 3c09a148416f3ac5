package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
)

// tarGz archives dir's contents into a gzip tarball with the system tar.
func tarGz(dir, out string) error {
	return exec.Command("tar", "-czf", out, "-C", dir, ".").Run()
}

func writeFile(t interface {
	Helper()
	Fatal(...any)
}, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

var cachedLine = regexp.MustCompile(`(?m)^\[\d+/\d+\] CACHED$`)

// cachedSteps counts the steps plain progress reported as CACHED.
func cachedSteps(stderr string) int { return len(cachedLine.FindAllString(stderr, -1)) }
