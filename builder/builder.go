// Package builder runs a build plan: for each step it computes the cache key, reuses a cached layer or runs
// the step (RUN in the sandbox, COPY/ADD into an overlay snapshot) and commits the image to the local store.
package builder

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/layerbuild/layerbuild/cache"
	"github.com/layerbuild/layerbuild/parser"
	"github.com/layerbuild/layerbuild/registry"
	"github.com/layerbuild/layerbuild/snapshot"
)

// DefaultPath is the PATH an image gets when its base sets none (as BuildKit does).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Builder builds Dockerfiles into a local store.
type Builder struct {
	Store *registry.Store
	Snap  *snapshot.Snapshotter
	Cache *cache.Index
	// Pull, when set, fetches a base image the store lacks (and every base with Options.Pull) from its
	// registry into Store. The CLI sets it to registry.Pull with its registry options.
	Pull func(ctx context.Context, ref string) (*registry.Image, error)
}

// Options are one build's inputs.
type Options struct {
	ContextDir string
	Plan       *parser.Plan
	Ignore     *parser.Ignore
	Tags       []string // normalized names for the result
	NoCache    bool
	Pull       bool   // pull every base image from its registry, even when the store has it (needs Builder.Pull)
	Network    string // RUN network: "host" (default) or "none"
	Progress   Progress
	StatCache  *cache.StatCache // optional: the context's stat cache (content hashes of unchanged files)

	NoCacheFilter  []string // stages whose steps must not come from the cache
	DockerfileID   string   // identifies the Dockerfile (absolute path) for the report's comparison with its last build
	HintMinSeconds float64  // a RUN must take this long for the broad-COPY hint (0: 1s)
}

// Progress receives build events; the CLI renders them.
type Progress interface {
	StepStart(n, total int, text string)
	StepOutput(n int, data []byte)
	StepDone(n int, d time.Duration, cached bool, err error)
}

type nopProgress struct{}

func (nopProgress) StepStart(int, int, string)               {}
func (nopProgress) StepOutput(int, []byte)                   {}
func (nopProgress) StepDone(int, time.Duration, bool, error) {}

// Result is a finished build.
type Result struct {
	Image    *registry.Image
	Steps    int
	Warnings []string
	Report   *cache.Report
}

// Build runs the plan's target and the stages it needs, then commits the image and its tags atomically:
// a build that fails commits nothing.
func (b *Builder) Build(ctx context.Context, opts Options) (*Result, error) {
	if opts.Progress == nil {
		opts.Progress = nopProgress{}
	}
	if opts.Network == "" {
		opts.Network = "host"
	}
	if opts.HintMinSeconds == 0 {
		opts.HintMinSeconds = 1
	}
	start := time.Now()
	release, err := b.Cache.Use()
	if err != nil {
		return nil, err
	}
	defer release()
	run := &buildRun{b: b, opts: opts, plan: opts.Plan, done: map[*parser.Stage]*stageState{}, usedArgs: map[string]bool{}}
	for _, a := range opts.Plan.MetaArgs {
		run.usedArgs[a.Key] = true
	}
	for _, st := range opts.Plan.Stages {
		if st.Needed {
			run.total += 1 + len(st.Steps)
		}
	}
	var last *stageState
	for _, st := range opts.Plan.Stages {
		if !st.Needed {
			continue
		}
		s, err := run.buildStage(ctx, st)
		if err != nil {
			return nil, err
		}
		run.done[st] = s
		last = s
		if st == opts.Plan.Target {
			break
		}
	}
	if last == nil {
		return nil, errors.New("nothing to build")
	}
	img, err := b.commit(last, opts.Tags)
	if err != nil {
		return nil, err
	}
	res := &Result{Image: img, Steps: run.total, Report: run.report(img.ID.String(), last.layers, time.Since(start))}
	var unused []string
	for k := range opts.Plan.BuildArgs {
		if !run.usedArgs[k] {
			unused = append(unused, k)
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		res.Warnings = append(res.Warnings, fmt.Sprintf("build-args not consumed by any ARG: %s", strings.Join(unused, ", ")))
	}
	return res, nil
}

// commit links the stage's layer tars into the store as blobs and writes config, manifest and tags.
func (b *Builder) commit(s *stageState, tags []string) (*registry.Image, error) {
	var descs []v1.Descriptor
	for _, l := range s.layers {
		if err := b.Store.LinkBlob(l.TarPath, l.DiffID); err != nil {
			return nil, fmt.Errorf("store layer %s: %w", l.DiffID, err)
		}
		descs = append(descs, v1.Descriptor{
			MediaType: ocispec.MediaTypeImageLayer,
			Digest:    l.DiffID,
			Size:      l.Size,
		})
	}
	cfg := s.cfg.DeepCopy()
	created := s.created
	if created.IsZero() {
		created = time.Now()
	}
	cfg.Created = v1.Time{Time: created.UTC()}
	cfg.RootFS = v1.RootFS{Type: "layers", DiffIDs: s.diffIDs()}
	if cfg.OS == "" {
		cfg.OS = "linux"
	}
	if cfg.Architecture == "" {
		cfg.Architecture = runtime.GOARCH
	}
	img, err := b.Store.CommitImage(cfg, descs, tags)
	if err != nil {
		return nil, fmt.Errorf("commit image: %w", err)
	}
	return img, nil
}
