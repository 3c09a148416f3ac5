package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	pruneDfA = "FROM busybox\nRUN echo shared > /shared\nRUN echo a > /own\n"
	pruneDfB = "FROM busybox\nRUN echo shared > /shared\nRUN head -c 50000 /dev/zero > /own\n"
)

// cacheRow is one row of `cache ls -v`.
type cacheRow struct{ key, layer, size, lastUsed, desc string }

// cacheLs runs `cache ls -v` and returns its rows and its total line.
func (e *env) cacheLs() ([]cacheRow, string) {
	e.t.Helper()
	lines := strings.Split(strings.TrimRight(e.must("cache", "ls", "-v"), "\n"), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "KEY") {
		e.t.Fatalf("cache ls: %q", lines)
	}
	var rows []cacheRow
	for _, l := range lines[1 : len(lines)-1] {
		f := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(l), -1)
		if len(f) != 5 || len(f[0]) != 64 {
			e.t.Fatalf("cache ls row %q", l)
		}
		rows = append(rows, cacheRow{f[0], f[1], f[2], f[3], f[4]})
	}
	return rows, lines[len(lines)-1]
}

// row finds the row whose description contains s (nil when none does).
func row(rows []cacheRow, s string) *cacheRow {
	for i := range rows {
		if strings.Contains(rows[i].desc, s) {
			return &rows[i]
		}
	}
	return nil
}

// layerDirs lists the unpacked layers of the store (their diffID hex).
func (e *env) layerDirs() map[string]bool {
	e.t.Helper()
	des, err := os.ReadDir(filepath.Join(e.root, "layers"))
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]bool{}
	for _, de := range des {
		if len(de.Name()) == 64 {
			out[de.Name()] = true
		}
	}
	return out
}

// diffIDs is the hex of an image's layers.
func (e *env) diffIDs(ref string) []string {
	e.t.Helper()
	var out []string
	for _, d := range e.config(ref).RootFS.DiffIDs {
		out = append(out, d.Hex)
	}
	return out
}

func TestCacheLsAndPruneDangling(t *testing.T) {
	e := newEnv(t)
	e.mustBuild(pruneDfA, nil, "-t", "a")
	e.mustBuild(pruneDfB, nil, "-t", "b")
	rows, total := e.cacheLs()
	if len(rows) != 3 || !regexp.MustCompile(`^3 entries, [0-9.]+kB total \(0B reclaimable\)$`).MatchString(total) {
		t.Fatalf("cache ls: %v / %q", rows, total)
	}
	for _, r := range rows {
		if !strings.HasPrefix(r.layer, "sha256:") || r.size == "0B" || !strings.HasPrefix(r.desc, "RUN ") {
			t.Errorf("row %+v: want a layer with a size", r)
		}
	}
	short := e.must("cache", "ls")
	if k := rows[0].key; !strings.Contains(short, k[:12]+" ") || strings.Contains(short, k) {
		t.Errorf("cache ls shows 12-character keys:\n%s", short)
	}

	own := row(rows, "head -c 50000")
	if own == nil || !strings.HasPrefix(own.size, "51.") {
		t.Fatalf("b's own step: %+v", own)
	}
	e.must("rm", "b")
	if _, total := e.cacheLs(); !strings.HasSuffix(total, "("+own.size+" reclaimable)") {
		t.Errorf("after rm b, b's own layer is reclaimable: %q", total)
	}
	if r := e.run(strings.NewReader("n\n"), "cache", "prune"); r.code == 0 || !strings.Contains(r.stderr, "cancelled") {
		t.Errorf("answering n cancels:\n%s", r)
	}
	if out := e.must("cache", "prune", "-f"); out != "Deleted 1 entry, reclaimed "+own.size+"\n" {
		t.Errorf("cache prune: %q", out)
	}
	left, _ := e.cacheLs()
	if len(left) != 2 || row(left, "head -c") != nil || e.layerDirs()[strings.TrimPrefix(own.layer, "sha256:")] {
		t.Errorf("only b's own entry and layer go: %v", left)
	}

	// a still rebuilds fully from the cache; b reuses the shared step and reruns its own.
	if r := e.mustBuild(pruneDfA, nil, "-t", "a"); cachedSteps(r.stderr) != 2 {
		t.Errorf("a should rebuild fully cached:\n%s", r)
	}
	r := e.mustBuild(pruneDfB, nil, "-t", "b")
	if cachedSteps(r.stderr) != 1 || !strings.Contains(r.stderr, "[3/3] DONE") {
		t.Errorf("b reuses the shared step and reruns the pruned one:\n%s", r)
	}
	if out := e.must("cache", "prune", "-f"); out != "Deleted 0 entries, reclaimed 0B\n" {
		t.Errorf("nothing dangling: %q", out)
	}
}

func TestCachePruneAllKeepsImages(t *testing.T) {
	e := newEnv(t)
	e.mustBuild(pruneDfA, nil, "-t", "a")
	e.mustBuild(pruneDfB, nil, "-t", "b")
	if out := e.must("cache", "prune", "--all", "-f"); out != "Deleted 3 entries, reclaimed 0B\n" {
		t.Errorf("cache prune --all: %q", out)
	}
	if _, total := e.cacheLs(); total != "0 entries, 0B total (0B reclaimable)" {
		t.Errorf("cache ls after --all: %q", total)
	}
	dirs := e.layerDirs()
	for _, ref := range []string{"a", "b", "busybox"} {
		for _, d := range e.diffIDs(ref) {
			if !dirs[d] {
				t.Errorf("%s: layer %s is no longer unpacked", ref, d)
			}
		}
		if out := e.must("history", ref); !strings.Contains(out, "IMAGE") {
			t.Errorf("history %s: %q", ref, out)
		}
		out := filepath.Join(t.TempDir(), ref+".tar")
		e.must("save", "-o", out, ref)
		if fi, err := os.Stat(out); err != nil || fi.Size() < 10000 {
			t.Errorf("save %s: %v", ref, err)
		}
	}
	if got := e.files("b")["/own"].data; len(got) != 50000 {
		t.Errorf("b's content after prune --all: %d bytes", len(got))
	}
	r := e.mustBuild(pruneDfA, nil, "-t", "a")
	if cachedSteps(r.stderr) != 0 {
		t.Errorf("nothing is cached after --all:\n%s", r)
	}
	if got := e.files("a")["/own"].data; got != "a\n" {
		t.Errorf("a rebuilt: /own = %q", got)
	}
}

func TestCachePruneFilterAndKeepStorage(t *testing.T) {
	e := newEnv(t)
	e.mustBuild(pruneDfA, nil, "-t", "a")
	e.mustBuild(pruneDfB, nil, "-t", "b")
	e.must("rm", "a", "b")
	rows, _ := e.cacheLs()
	old := row(rows, "head -c 50000")
	then := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(filepath.Join(e.root, "cache", "keys", old.key+".json"), then, then); err != nil {
		t.Fatal(err)
	}
	if rows, _ := e.cacheLs(); row(rows, "head -c 50000").lastUsed != "2 hours ago" {
		t.Errorf("LAST USED: %+v", rows)
	}
	if out := e.must("cache", "prune", "-f", "--filter", "until=1h"); !strings.HasPrefix(out, "Deleted 1 entry, reclaimed 51.") {
		t.Errorf("until=1h: %q", out)
	}
	rows, _ = e.cacheLs()
	if len(rows) != 2 || row(rows, "head -c") != nil {
		t.Errorf("only the entry unused for 2h goes: %v", rows)
	}
	if out := e.must("cache", "prune", "-f", "--keep-storage", "0"); !strings.HasPrefix(out, "Deleted 2 entries, reclaimed ") {
		t.Errorf("--keep-storage 0: %q", out)
	}
	if _, total := e.cacheLs(); total != "0 entries, 0B total (0B reclaimable)" {
		t.Errorf("after --keep-storage 0: %q", total)
	}
	dirs := e.layerDirs()
	if bb := e.diffIDs("busybox"); len(dirs) != 1 || !dirs[bb[0]] {
		t.Errorf("only busybox's layer should be left unpacked: %v", dirs)
	}
	for _, bad := range [][]string{{"--filter", "label=x"}, {"--filter", "until=soon"}, {"--keep-storage", "lots"}} {
		if r := e.run(nil, append([]string{"cache", "prune", "-f"}, bad...)...); r.code == 0 {
			t.Errorf("cache prune %v should fail:\n%s", bad, r)
		}
	}
}

func TestPruneDanglingImages(t *testing.T) {
	e := newEnv(t)
	iid := filepath.Join(t.TempDir(), "iid")
	e.mustBuild("FROM busybox\nRUN echo 1 > /v\n", nil, "-t", "x", "--iidfile", iid)
	first, _ := os.ReadFile(iid)
	oldLayers := e.diffIDs(string(first))
	e.mustBuild("FROM busybox\nRUN echo 2 > /v\n", nil, "-t", "x", "--iidfile", iid)
	second, _ := os.ReadFile(iid)
	e.mustBuild(pruneDfA, nil, "-t", "keep")
	if out := e.must("images"); strings.Count(out, "<none>") != 2 {
		t.Fatalf("the first x should have lost its name:\n%s", out)
	}
	out := e.must("prune", "-f")
	if !strings.Contains(out, "Deleted Images:\nDeleted: "+string(first)+"\n") || strings.Contains(out, string(second)) ||
		!regexp.MustCompile(`\nTotal reclaimed space: [0-9.]+k?B\n$`).MatchString(out) {
		t.Errorf("prune:\n%s", out)
	}
	imgs := e.must("images")
	if strings.Contains(imgs, "<none>") || !strings.Contains(imgs, "keep") || !strings.Contains(imgs, "busybox") {
		t.Errorf("images after prune:\n%s", imgs)
	}
	if got := e.files("x")["/v"].data; got != "2\n" {
		t.Errorf("x: /v = %q", got)
	}
	if !e.layerDirs()[oldLayers[1]] {
		t.Error("the pruned image's layer still has a cache entry: it stays unpacked")
	}
	if out := e.must("prune", "-f"); out != "Total reclaimed space: 0B\n" {
		t.Errorf("second prune: %q", out)
	}
	if out := e.must("cache", "prune", "-f"); !strings.HasPrefix(out, "Deleted 1 entry, ") || e.layerDirs()[oldLayers[1]] {
		t.Errorf("cache prune then removes the old image's step: %q", out)
	}
}

// TestPruneWaitsForRunningBuild: prune and cache prune wait for a running build and leave it intact.
func TestPruneWaitsForRunningBuild(t *testing.T) {
	e := newEnv(t)
	for i, prune := range [][]string{{"prune", "-f"}, {"cache", "prune", "--all", "-f"}} {
		dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN sleep 2; echo " +
			string(rune('a'+i)) + " > /slow\n"})
		cmd := exec.Command(lbBin, "build", "--progress", "plain", "-t", "slow", dir)
		cmd.Env = append(os.Environ(), "LAYERBUILD_ROOT="+e.root)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		running := make(chan bool, 1)
		built := make(chan struct{})
		var log strings.Builder
		var buildErr error
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				log.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), "] RUN sleep 2") {
					select {
					case running <- true:
					default:
					}
				}
			}
			close(running)
			buildErr = cmd.Wait()
			close(built)
		}()
		if !<-running {
			<-built
			t.Fatalf("the build never reached its RUN step: %v\n%s", buildErr, log.String())
		}
		start := time.Now()
		r := e.run(nil, prune...)
		took := time.Since(start)
		// The build commits its image before it releases the cache: when prune returns, the image is there.
		if got := e.files("slow")["/slow"].data; got != string(rune('a'+i))+"\n" {
			t.Errorf("%v returned before the build committed: /slow = %q", prune, got)
		}
		<-built
		if buildErr != nil || r.code != 0 {
			t.Fatalf("%v: build %v\n%s\nprune: %s", prune, buildErr, log.String(), r)
		}
		if took < time.Second {
			t.Errorf("%v took %v: it did not wait for the build's RUN sleep 2", prune, took)
		}
	}
}

func TestPruneKeepsLayersOfContainers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a detached container")
	}
	e := newEnv(t)
	e.mustBuild("FROM busybox\nRUN echo mine > /mine\n", nil, "-t", "usedbyctr")
	id := strings.TrimSpace(e.must("run", "-d", "usedbyctr", "sh", "-c", "sleep 30"))
	defer e.run(nil, "rm", "-f", id)
	before := listLayers(t, e.root)
	e.must("rmi", "usedbyctr")
	e.must("prune", "-f")
	e.must("cache", "prune", "--all", "-f")
	if got := listLayers(t, e.root); len(got) != len(before) {
		t.Errorf("prune removed layers a running container mounts: %v -> %v", before, got)
	}
	if out := e.must("ps"); !strings.Contains(out, "Up") {
		t.Errorf("the container should still run:\n%s", out)
	}
	r := e.run(nil, "rm", "-f", id)
	if r.code != 0 {
		t.Errorf("rm -f: %s", r)
	}
	e.must("prune", "-f")
	if got := listLayers(t, e.root); len(got) >= len(before) {
		t.Errorf("once the container is gone its layers can go: %v", got)
	}
}
