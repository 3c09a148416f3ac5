package builder

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/layerbuild/layerbuild/cache"
	"github.com/layerbuild/layerbuild/parser"
	"github.com/layerbuild/layerbuild/registry"
	"github.com/layerbuild/layerbuild/sandbox"
	"github.com/layerbuild/layerbuild/snapshot"
)

func TestMain(m *testing.M) {
	sandbox.Init()
	os.Exit(m.Run())
}

type recorder struct{ events []string }

func (r *recorder) StepStart(n, total int, text string) { r.events = append(r.events, "start "+text) }
func (r *recorder) StepOutput(n int, data []byte)       { r.events = append(r.events, "out "+string(data)) }
func (r *recorder) StepDone(n int, d time.Duration, cached bool, err error) {
	s := "done"
	if cached {
		s = "cached"
	}
	if err != nil {
		s = "error"
	}
	r.events = append(r.events, s)
}

// newTestBuilder makes a builder on a temp store with busybox imported from scripts/busybox-rootfs.sh.
func newTestBuilder(t *testing.T) *Builder {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	root := t.TempDir()
	st, err := registry.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.New(filepath.Join(root, "layers"))
	if err != nil {
		t.Fatal(err)
	}
	ix, err := cache.Open(filepath.Join(root, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	b := &Builder{Store: st, Snap: snap, Cache: ix}
	tarPath := filepath.Join(t.TempDir(), "bb.tar")
	if out, err := exec.Command("../scripts/busybox-rootfs.sh", tarPath).CombinedOutput(); err != nil {
		t.Fatalf("busybox rootfs: %v %s", err, out)
	}
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := b.Import(f, tarPath, []string{"docker.io/library/busybox:latest"}); err != nil {
		t.Fatal(err)
	}
	return b
}

func buildString(t *testing.T, b *Builder, df string, ctxFiles map[string]string, noCache bool) (*Result, *recorder, error) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range ctxFiles {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
	}
	plan, err := parser.Parse(strings.NewReader(df), parser.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	res, err := b.Build(context.Background(), Options{ContextDir: dir, Plan: plan, NoCache: noCache,
		Tags: []string{"docker.io/library/t:latest"}, Progress: rec})
	return res, rec, err
}

func TestBuildRecordsHistoryLayersAndCache(t *testing.T) {
	b := newTestBuilder(t)
	df := "FROM busybox\nENV A=1\nCOPY f /f\nRUN echo run-output && cat /f > /g\nRUN true\nCMD [\"sh\"]\n"
	res, rec, err := buildString(t, b, df, map[string]string{"f": "data"}, false)
	if err != nil {
		t.Fatal(err)
	}
	img := res.Image
	// import + COPY + RUN (the empty RUN true adds no layer)
	if n := len(img.Manifest.Layers); n != 3 {
		t.Errorf("layers = %d, want 3", n)
	}
	var empties []bool
	for _, h := range img.Config.History {
		empties = append(empties, h.EmptyLayer)
	}
	want := []bool{false, true, false, false, true, true}
	if len(empties) != len(want) {
		t.Fatalf("history %v", img.Config.History)
	}
	for i := range want {
		if empties[i] != want[i] {
			t.Errorf("history[%d].empty_layer = %v, want %v (%s)", i, empties[i], want[i], img.Config.History[i].CreatedBy)
		}
	}
	if !strings.Contains(strings.Join(rec.events, "|"), "out run-output") {
		t.Errorf("RUN output should reach the progress: %v", rec.events)
	}
	// Same inputs: every layer step comes from the cache and the image config is the same but for times.
	res2, rec2, err := buildString(t, b, df, map[string]string{"f": "data"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(strings.Join(rec2.events, "|"), "cached"); got != 5 {
		t.Errorf("cached steps = %d, want 5 (ENV, COPY, RUN, RUN, CMD): %v", got, rec2.events)
	}
	if res2.Image.ID != img.ID {
		t.Errorf("a rebuild entirely from the cache must give the same image ID: %s vs %s", res2.Image.ID, img.ID)
	}
	for i, l := range res2.Image.Manifest.Layers {
		if l.Digest != img.Manifest.Layers[i].Digest {
			t.Errorf("layer %d differs on a cached rebuild", i)
		}
	}
	// --no-cache runs everything again and gives the same layer content.
	_, rec3, err := buildString(t, b, df, map[string]string{"f": "data"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(rec3.events, "|"), "cached") {
		t.Errorf("--no-cache used the cache: %v", rec3.events)
	}
}

func TestBuildFailureCommitsNothing(t *testing.T) {
	b := newTestBuilder(t)
	before, _ := b.Store.Images()
	_, rec, err := buildString(t, b, "FROM busybox\nRUN echo partial > /p\nRUN echo to-stderr >&2; exit 4\n", nil, false)
	if err == nil {
		t.Fatal("want an error")
	}
	var pe *parser.Error
	if !asParserError(err, &pe) || pe.Line != 3 || !strings.Contains(err.Error(), "exit code: 4") || !strings.Contains(err.Error(), "to-stderr") {
		t.Errorf("error should name line 3, the exit code and the output tail: %v", err)
	}
	after, _ := b.Store.Images()
	if len(after) != len(before) {
		t.Errorf("a failed build added an image")
	}
	if rec.events[len(rec.events)-1] != "error" {
		t.Errorf("the failing step reports an error: %v", rec.events)
	}
	// The RUN that succeeded is cached; the failed one left no entry.
	_, rec2, _ := buildString(t, b, "FROM busybox\nRUN echo partial > /p\nRUN echo to-stderr >&2; exit 4\n", nil, false)
	if got := strings.Count(strings.Join(rec2.events, "|"), "cached"); got != 1 {
		t.Errorf("cached steps after a failure = %d, want 1: %v", got, rec2.events)
	}
}

func asParserError(err error, target **parser.Error) bool {
	for err != nil {
		if pe, ok := err.(*parser.Error); ok {
			*target = pe
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}
