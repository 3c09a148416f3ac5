package main

import (
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// reportRow finds the report's row for a step number and returns its status and reason.
func reportRow(t *testing.T, stderr string, step int) (string, string) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^  ` + strconv.Itoa(step) + ` +.*? (CACHED|BUILT) +\S+ +\S+[ \t]*(.*)$`)
	m := re.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no report row for step %d in:\n%s", step, stderr)
	}
	return m[1], strings.TrimSpace(m[2])
}

type reportCase struct {
	e   *env
	dir string
}

func (c *reportCase) build(t *testing.T, args ...string) result {
	t.Helper()
	r := c.e.run(nil, append(append([]string{"build", "--progress", "plain"}, args...), c.dir)...)
	if r.code != 0 {
		t.Fatalf("build failed: %s", r)
	}
	return r
}

func TestReportExplainsFileChanges(t *testing.T) {
	e := newEnv(t)
	dir := writeContext(t, map[string]string{
		"Dockerfile":    "FROM busybox\nCOPY . /app/\nRUN ls /app > /listing\n",
		".dockerignore": "*.log\n",
		"a.txt":         "aaa", "b.txt": "bbb", "debug.log": "x",
	})
	c := &reportCase{e, dir}
	r := c.build(t, "-t", "rep")
	if st, why := reportRow(t, r.stderr, 2); st != "BUILT" || why != "no earlier build" {
		t.Errorf("first build: %s %q", st, why)
	}
	steps := []struct {
		name   string
		change func()
		status string
		reason string
	}{
		{"touch", func() {
			future := time.Now().Add(time.Hour)
			os.Chtimes(filepath.Join(dir, "a.txt"), future, future)
		}, "CACHED", ""},
		{"ignored file", func() { writeFile(t, dir, "debug.log", "changed") }, "CACHED", ""},
		{"chmod", func() { os.Chmod(filepath.Join(dir, "a.txt"), 0o755) }, "BUILT", "1 file changed: a.txt"},
		{"content", func() { writeFile(t, dir, "b.txt", "B!") }, "BUILT", "1 file changed: b.txt"},
		{"added and removed", func() {
			writeFile(t, dir, "c.txt", "c")
			os.Remove(filepath.Join(dir, "a.txt"))
		}, "BUILT", "+1 added: c.txt, -1 removed: a.txt"},
	}
	for _, s := range steps {
		s.change()
		r := c.build(t, "-t", "rep")
		st, why := reportRow(t, r.stderr, 2)
		if st != s.status || why != s.reason {
			t.Errorf("%s: COPY is %s %q, want %s %q\n%s", s.name, st, why, s.status, s.reason, r.stderr)
		}
		if s.status == "BUILT" {
			if st, why := reportRow(t, r.stderr, 3); st != "BUILT" || why != "parent step 2 rebuilt" {
				t.Errorf("%s: RUN after it is %s %q", s.name, st, why)
			}
		}
	}
}

func TestReportExplainsArgsBaseInstructionAndNoCache(t *testing.T) {
	e := newEnv(t)
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nARG VERSION=1.0\nRUN echo $VERSION > /v\nRUN echo two\n"})
	c := &reportCase{e, dir}
	c.build(t, "-t", "ra")
	r := c.build(t, "-t", "ra", "--build-arg", "VERSION=1.1")
	if st, why := reportRow(t, r.stderr, 3); st != "BUILT" || why != "build-arg VERSION changed 1.0 -> 1.1" {
		t.Errorf("build-arg: %s %q", st, why)
	}
	r = c.build(t, "-t", "ra", "--build-arg", "VERSION=1.1")
	if !strings.Contains(r.stderr, "4 of 4 steps cached") {
		t.Errorf("same args again: all cached:\n%s", r.stderr)
	}

	// A new busybox under the same name: the FROM row and the steps on it say so.
	raw, _ := os.ReadFile(busyboxTar)
	e.run(strings.NewReader(string(raw)), "import", "-", "busybox:latest")
	r = c.build(t, "-t", "ra", "--build-arg", "VERSION=1.1")
	if st, why := reportRow(t, r.stderr, 1); st != "BUILT" || !regexp.MustCompile(`^base image busybox changed \(sha256:[0-9a-f]{12} -> sha256:[0-9a-f]{12}\)$`).MatchString(why) {
		t.Errorf("base image change: %s %q", st, why)
	}
	if st, why := reportRow(t, r.stderr, 2); st != "BUILT" || why != "parent step 1 rebuilt" {
		t.Errorf("after a base change: %s %q", st, why)
	}

	writeFile(t, dir, "Dockerfile", "FROM busybox\nARG VERSION=1.0\nRUN echo $VERSION > /version\nRUN echo two\n")
	r = c.build(t, "-t", "ra", "--build-arg", "VERSION=1.1")
	if st, why := reportRow(t, r.stderr, 3); st != "BUILT" || why != "instruction changed (was: RUN echo $VERSION > /v)" {
		t.Errorf("instruction: %s %q", st, why)
	}
	writeFile(t, dir, "Dockerfile", "FROM busybox\nARG VERSION=1.0\nRUN echo $VERSION > /version\nRUN echo two\nRUN echo three\n")
	r = c.build(t, "-t", "ra", "--build-arg", "VERSION=1.1")
	if st, why := reportRow(t, r.stderr, 5); st != "BUILT" || why != "new step" {
		t.Errorf("an appended step: %s %q", st, why)
	}
	r = c.build(t, "-t", "ra", "--build-arg", "VERSION=1.1", "--no-cache")
	if st, why := reportRow(t, r.stderr, 4); st != "BUILT" || why != "--no-cache" {
		t.Errorf("--no-cache: %s %q", st, why)
	}
}

func TestCacheSharedAcrossDockerfilesAndStages(t *testing.T) {
	e := newEnv(t)
	common := "FROM busybox\nRUN echo shared > /s\n"
	e.mustBuild(common+"RUN echo one > /1\n", nil, "-t", "x1")
	r := e.mustBuild("FROM busybox AS other\nRUN echo shared > /s\nRUN echo two > /2\n", nil, "-t", "x2")
	if st, _ := reportRow(t, r.stderr, 2); st != "CACHED" {
		t.Errorf("the same step in another Dockerfile and stage hits the cache:\n%s", r.stderr)
	}
	if st, why := reportRow(t, r.stderr, 3); st != "BUILT" || why != "no earlier build" {
		t.Errorf("a new step of a new Dockerfile: %s %q", st, why)
	}
}

func TestNoCacheFilter(t *testing.T) {
	e := newEnv(t)
	df := "FROM busybox AS deps\nRUN echo deps > /d\nFROM busybox\nCOPY --from=deps /d /d\nRUN echo app > /a\n"
	dir := writeContext(t, map[string]string{"Dockerfile": df})
	c := &reportCase{e, dir}
	c.build(t, "-t", "ncf")
	r := c.build(t, "-t", "ncf", "--no-cache-filter", "deps")
	if st, why := reportRow(t, r.stderr, 2); st != "BUILT" || why != "--no-cache-filter deps" {
		t.Errorf("the filtered stage rebuilds: %s %q", st, why)
	}
	if st, _ := reportRow(t, r.stderr, 5); st != "CACHED" {
		t.Errorf("other stages still use the cache when their inputs are the same:\n%s", r.stderr)
	}
}

func TestReportJSON(t *testing.T) {
	e := newEnv(t)
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nCOPY a /a\nENV X=1\n", "a": "a"})
	out := filepath.Join(t.TempDir(), "report.json")
	e.must("build", "--report", out, "-t", "js", dir)
	writeFile(t, dir, "a", "changed")
	e.must("build", "--report", out, "-t", "js", dir)
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Schema string `json:"schema"`
		Image  string `json:"image"`
		Steps  []struct {
			Step        int     `json:"step"`
			Instruction string  `json:"instruction"`
			Key         string  `json:"key"`
			Status      string  `json:"status"`
			Reason      string  `json:"reason"`
			Duration    float64 `json:"duration_seconds"`
			LayerDigest string  `json:"layer_digest"`
			LayerSize   int64   `json:"layer_size"`
		} `json:"steps"`
		Summary struct {
			Steps, Cached, Built int
		} `json:"summary"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if rep.Schema != "layerbuild.report/v1" || !strings.HasPrefix(rep.Image, "sha256:") || len(rep.Steps) != 3 {
		t.Fatalf("report: %s", data)
	}
	s := rep.Steps[1]
	if s.Status != "BUILT" || s.Reason != "1 file changed: a" || len(s.Key) != 64 || !strings.HasPrefix(s.LayerDigest, "sha256:") || s.LayerSize == 0 {
		t.Errorf("COPY step in JSON: %+v", s)
	}
	if rep.Steps[2].Reason != "parent step 2 rebuilt" || rep.Summary.Built != 2 || rep.Summary.Cached != 1 {
		t.Errorf("summary/parent: %+v %+v", rep.Steps[2], rep.Summary)
	}
}

func TestHintsOnTheSeedPattern(t *testing.T) {
	e := newEnv(t)
	dir := writeContext(t, map[string]string{
		"Dockerfile":       "FROM busybox\nWORKDIR /app\nCOPY . .\nRUN sleep 1.1 && cat requirements.txt > /deps\nRUN head -c 20000 /dev/zero > /tmp/big && echo keep > /k\nRUN rm /tmp/big\n",
		"requirements.txt": "flask==3.0\n",
		"app.py":           "print('v1')\n",
	})
	c := &reportCase{e, dir}
	c.build(t, "-t", "seed")
	writeFile(t, dir, "app.py", "print('v2')\n")
	r := c.build(t, "-t", "seed")
	for _, want := range []string{
		"hint: step 4 RUN sleep 1.1 && cat requirements.txt > /deps",
		"was rebuilt only because step 3 COPY . . changed app.py, which it does not use",
		"COPY requirements.txt ./",
		"20kB added by step 5 RUN head -c 20000 /dev/zero",
		"/tmp/big",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("report lacks %q:\n%s", want, r.stderr)
		}
	}
	// The better Dockerfile the hint proposes gets no such hint.
	writeFile(t, dir, "Dockerfile", "FROM busybox\nWORKDIR /app\nCOPY requirements.txt ./\nRUN sleep 1.1 && cat requirements.txt > /deps\nCOPY . .\n")
	c.build(t, "-t", "seed")
	writeFile(t, dir, "app.py", "print('v3')\n")
	r = c.build(t, "-t", "seed")
	if st, _ := reportRow(t, r.stderr, 4); st != "CACHED" || strings.Contains(r.stderr, "hint: step") {
		t.Errorf("after following the hint the RUN stays cached:\n%s", r.stderr)
	}
}

func TestKilledAtRandomPointsNextBuildWorks(t *testing.T) {
	if testing.Short() {
		t.Skip("kills builds at random points")
	}
	e := newEnv(t)
	files := map[string]string{"Dockerfile": "FROM busybox\nCOPY . /ctx/\nRUN sleep 0.2 && cat /ctx/f > /one\nRUN sleep 0.2 && echo two > /two\nRUN head -c 100000 /dev/urandom > /three\nENV DONE=1\n"}
	for i := 0; i < 30; i++ {
		files["f"+strconv.Itoa(i)] = strings.Repeat("x", i*100)
	}
	dir := writeContext(t, files)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; i < 8; i++ {
		writeFile(t, dir, "f", "round "+strconv.Itoa(i))
		cmd := exec.Command(lbBin, "build", "-q", "-t", "crash", dir)
		cmd.Env = append(os.Environ(), "LAYERBUILD_ROOT="+e.root)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Intn(700)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		r := e.run(nil, "build", "--progress", "plain", "-t", "crash", dir)
		if r.code != 0 {
			t.Fatalf("round %d: the build after a kill failed: %s", i, r)
		}
		if got := e.files("crash")["/one"].data; got != "round "+strconv.Itoa(i) {
			t.Fatalf("round %d: /one = %q", i, got)
		}
		r = e.run(nil, "build", "--progress", "plain", "-t", "crash", dir)
		if !strings.Contains(r.stderr, "6 of 6 steps cached") {
			t.Fatalf("round %d: a second build must be fully cached:\n%s", i, r.stderr)
		}
	}
}
