package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// listLayers names the store's unpacked layers.
func listLayers(t *testing.T, root string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(root, "layers"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if de.Name() != "tmp" {
			out = append(out, de.Name())
		}
	}
	sort.Strings(out)
	return out
}

func TestFullyCachedRebuildRunsNothing(t *testing.T) {
	strace := needTool(t, "strace")
	e := newEnv(t)
	df := "FROM busybox AS build\nRUN echo built > /artifact\nFROM busybox\nCOPY --from=build /artifact /a\nCOPY . /ctx/\nRUN cat /a > /b\n"
	dir := writeContext(t, map[string]string{"Dockerfile": df, "x.txt": "x"})
	first := e.must("build", "-q", "-t", "cr", dir)
	layers := listLayers(t, e.root)

	trace := filepath.Join(t.TempDir(), "trace")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, strace, "-f", "-qq", "-e", "trace=execve,fsopen,fsmount,mount,mknodat,pivot_root",
		"-o", trace, lbBin, "build", "-q", "-t", "cr", dir)
	cmd.Env = append(os.Environ(), "LAYERBUILD_ROOT="+e.root)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("traced build: %v", err)
	}
	if string(out) != first {
		t.Errorf("a fully cached rebuild gives the same image ID: %q then %q", first, out)
	}
	data, _ := os.ReadFile(trace)
	var execs, mounts []string
	for _, l := range strings.Split(string(data), "\n") {
		switch {
		case strings.Contains(l, "execve("):
			execs = append(execs, l)
		case strings.Contains(l, "fsopen(") || strings.Contains(l, "fsmount(") || strings.Contains(l, "pivot_root("):
			mounts = append(mounts, l)
		case strings.Contains(l, "mount(") && !strings.Contains(l, "MS_REC|MS_PRIVATE"):
			mounts = append(mounts, l)
		}
	}
	// The binary itself and its re-exec into a private mount namespace: no sandbox init, no command.
	if len(execs) != 2 {
		t.Errorf("a cached rebuild started processes:\n%s", strings.Join(execs, "\n"))
	}
	if len(mounts) != 0 {
		t.Errorf("a cached rebuild mounted something:\n%s", strings.Join(mounts, "\n"))
	}
	if got := listLayers(t, e.root); strings.Join(got, " ") != strings.Join(layers, " ") {
		t.Errorf("a cached rebuild wrote layers: %v -> %v", layers, got)
	}

	// Once the record says every step was cached, another such rebuild rewrites neither index.json nor the
	// build record.
	records, _ := filepath.Glob(filepath.Join(e.root, "cache", "builds", "*.json"))
	watched := append([]string{filepath.Join(e.root, "index.json")}, records...)
	if len(watched) < 2 {
		t.Fatalf("no build record in %s", e.root)
	}
	before := map[string]time.Time{}
	for _, p := range watched {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		before[p] = fi.ModTime()
	}
	time.Sleep(20 * time.Millisecond)
	e.must("build", "-q", "-t", "cr", dir)
	for _, p := range watched {
		if fi, err := os.Stat(p); err != nil || !fi.ModTime().Equal(before[p]) {
			t.Errorf("a fully cached rebuild rewrote %s", p)
		}
	}
}
