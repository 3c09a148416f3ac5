package main

import (
	"strings"
	"testing"
)

func TestImagesHistoryTagRm(t *testing.T) {
	e := newEnv(t)
	e.mustBuild("FROM busybox\nENV A=1\nRUN echo hi > /hi\nCMD [\"sh\"]\n", nil, "-t", "me/app:v1")

	images := e.must("images")
	if !strings.Contains(images, "REPOSITORY") || !strings.Contains(images, "me/app") || !strings.Contains(images, "v1") ||
		!strings.Contains(images, "busybox") {
		t.Errorf("images:\n%s", images)
	}

	if out := e.must("images", "me/app:v1"); !strings.Contains(out, "me/app") || strings.Contains(out, "busybox") {
		t.Errorf("images REPOSITORY:TAG filters: %s", out)
	}
	if out := e.must("images", "-q", "busybox"); len(strings.Fields(out)) != 1 || len(strings.TrimSpace(out)) != 12 {
		t.Errorf("images -q prints short IDs: %q", out)
	}
	hist := e.must("history", "me/app:v1")
	lines := strings.Split(strings.TrimSpace(hist), "\n")
	if len(lines) != 5 { // header + import + ENV + RUN + CMD
		t.Fatalf("history should have 4 rows:\n%s", hist)
	}
	if !strings.Contains(lines[1], "CMD") || !strings.Contains(lines[1], "(empty layer)") {
		t.Errorf("newest row first, marked empty: %q", lines[1])
	}
	if !strings.Contains(lines[2], "RUN /bin/sh -c echo hi > /hi") || strings.Contains(lines[2], "(empty layer)") {
		t.Errorf("RUN row: %q", lines[2])
	}
	if !strings.Contains(lines[4], "layerbuild import") {
		t.Errorf("oldest row is the import: %q", lines[4])
	}

	e.must("tag", "me/app:v1", "other:latest")
	if out := e.must("images", "other"); !strings.Contains(out, "other") {
		t.Errorf("tag: %s", out)
	}
	out := e.must("rm", "other")
	if !strings.Contains(out, "Untagged: docker.io/library/other:latest") {
		t.Errorf("rm by name: %s", out)
	}
	if r := e.run(nil, "history", "other"); r.code == 0 || !strings.Contains(r.stderr, "other") {
		t.Errorf("history of a removed name should fail naming it: %s", r)
	}
	e.must("history", "me/app:v1") // the other name still works
	out = e.must("rm", "me/app:v1")
	if !strings.Contains(out, "Deleted: sha256:") {
		t.Errorf("removing the last name deletes the image: %s", out)
	}
	if r := e.run(nil, "rm", "nosuch"); r.code == 0 || !strings.Contains(r.stderr, "nosuch") {
		t.Errorf("rm of a missing image: %s", r)
	}
}

func TestVersionAndHelp(t *testing.T) {
	e := &env{t: t, root: t.TempDir()}
	if out := e.must("version"); !strings.HasPrefix(out, "layerbuild version ") {
		t.Errorf("version: %q", out)
	}
	help := e.must("--help")
	for _, w := range []string{"build", "import", "images", "history", "tag", "rm", "save", "--root", "--build-arg", "--target"} {
		if !strings.Contains(help, w) {
			t.Errorf("--help lacks %q", w)
		}
	}
	bh := e.must("build", "--help")
	for _, w := range []string{"--file", "--tag", "--build-arg", "--target", "--progress", "--iidfile", "--no-cache", "--network"} {
		if !strings.Contains(bh, w) {
			t.Errorf("build --help lacks %q", w)
		}
	}
	if r := e.run(nil, "build", "--bogus", "."); r.code == 0 || !strings.Contains(r.stderr, "bogus") {
		t.Errorf("unknown flag: %s", r)
	}
}

func TestCacheReusesUnchangedSteps(t *testing.T) {
	e := newEnv(t)
	files := map[string]string{"a.txt": "one"}
	df := "FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\n"
	dir := writeContext(t, files)
	writeFile(t, dir, "Dockerfile", df)
	e.must("build", "-t", "c1", dir)
	r := e.run(nil, "build", "--progress", "plain", "-t", "c1", dir)
	if r.code != 0 || cachedSteps(r.stderr) != 2 {
		t.Fatalf("an unchanged rebuild should reuse both steps:\n%s", r)
	}
	writeFile(t, dir, "a.txt", "two")
	r = e.run(nil, "build", "--progress", "plain", "-t", "c1", dir)
	if r.code != 0 || cachedSteps(r.stderr) != 0 {
		t.Fatalf("a changed file rebuilds the COPY and the RUN after it:\n%s", r)
	}
	if got := e.files("c1")["/b.txt"].data; got != "two" {
		t.Errorf("b.txt = %q after the change", got)
	}
	r = e.run(nil, "build", "--progress", "plain", "--no-cache", "-t", "c1", dir)
	if r.code != 0 || cachedSteps(r.stderr) != 0 {
		t.Fatalf("--no-cache reuses nothing:\n%s", r)
	}
}
