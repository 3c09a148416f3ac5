package builder

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/layerbuild/layerbuild/parser"
	"github.com/layerbuild/layerbuild/registry"
	"github.com/layerbuild/layerbuild/snapshot"
)

// stageState is a stage while it builds: its image config so far, its layers and its cache key.
type stageState struct {
	stage   *parser.Stage
	cfg     *v1.ConfigFile
	layers  []*snapshot.Layer
	key     string
	args    []string  // ARG values in scope, KEY=VALUE in declaration order
	cmdSet  bool      // CMD was set in this stage (ENTRYPOINT then keeps it)
	created time.Time // when the newest step of the stage was first built
}

func (s *stageState) diffIDs() []v1.Hash {
	ids := make([]v1.Hash, len(s.layers))
	for i, l := range s.layers {
		ids[i] = l.DiffID
	}
	return ids
}

// env is what expansion sees: ARGs, then ENV (ENV wins over an ARG of the same name).
func (s *stageState) env() []string {
	out := append([]string{}, s.args...)
	return append(out, s.cfg.Config.Env...)
}

// runEnv is the environment of a RUN: the image's ENV plus the ARGs that ENV does not set.
func (s *stageState) runEnv() []string {
	out := append([]string{}, s.cfg.Config.Env...)
	for _, a := range s.args {
		k, _, _ := strings.Cut(a, "=")
		if _, ok := parser.LookupEnv(out, k); !ok {
			out = append(out, a)
		}
	}
	return out
}

func (s *stageState) shell() []string {
	if len(s.cfg.Config.Shell) > 0 {
		return s.cfg.Config.Shell
	}
	return []string{"/bin/sh", "-c"}
}

// addHistory appends a history entry. created comes from the cache entry, so a rebuild from the cache gives
// the same config, hence the same image ID.
func (s *stageState) addHistory(createdBy string, empty bool, created time.Time) {
	s.cfg.History = append(s.cfg.History, v1.History{
		Created:    v1.Time{Time: created.UTC()},
		CreatedBy:  createdBy,
		EmptyLayer: empty,
	})
}

type buildRun struct {
	b        *Builder
	opts     Options
	plan     *parser.Plan
	exp      *parser.Expander
	done     map[*parser.Stage]*stageState
	total    int
	n        int
	usedArgs map[string]bool // build-args some ARG declared
	cur      *stepInfo       // the step running now
	steps    []*stepInfo     // every step run, for the report and the build record
}

func (r *buildRun) errorf(step *parser.Step, format string, args ...any) error {
	return step.Errorf(r.plan.File, format, args...)
}

// buildStage resolves the stage's base and runs its steps.
func (r *buildRun) buildStage(ctx context.Context, st *parser.Stage) (*stageState, error) {
	if r.exp == nil {
		r.exp = parser.NewExpander(r.plan.Escape)
	}
	r.n++
	start := time.Now()
	r.opts.Progress.StepStart(r.n, r.total, "FROM "+st.Base+stageSuffix(st))
	s, err := r.base(ctx, st)
	r.opts.Progress.StepDone(r.n, time.Since(start), false, err)
	if err != nil {
		return nil, err
	}
	r.beginStep(s, &parser.Step{Source: "FROM " + st.Base + stageSuffix(st), Line: st.Line}, "FROM")
	r.cur.rec.Base = st.Base
	r.cur.rec.BaseID = s.key
	r.cur.rec.Key = s.key
	r.endStep(s, time.Since(start), nil)
	for _, step := range st.Steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r.n++
		start := time.Now()
		r.opts.Progress.StepStart(r.n, r.total, step.Source)
		r.beginStep(s, step, strings.ToUpper(step.Cmd.Name()))
		cached, err := r.dispatch(ctx, s, step)
		r.opts.Progress.StepDone(r.n, time.Since(start), cached, err)
		if err == nil {
			r.cur.cached = cached
			r.endStep(s, time.Since(start), nil)
		}
		if err != nil {
			var pe *parser.Error
			if errors.As(err, &pe) {
				return nil, err
			}
			return nil, r.errorf(step, "%v", err)
		}
	}
	return s, nil
}

func stageSuffix(st *parser.Stage) string {
	if st.Name != "" {
		return " AS " + st.Name
	}
	return ""
}

// base makes the starting state of a stage: scratch, an earlier stage, or an image of the local store
// (pulled through Builder.Pull when the store lacks it, or always with Options.Pull).
func (r *buildRun) base(ctx context.Context, st *parser.Stage) (*stageState, error) {
	fromErr := func(format string, args ...any) error {
		return &parser.Error{File: r.plan.File, Line: st.Line, Source: st.Source, Msg: fmt.Sprintf(format, args...)}
	}
	if st.Platform != "" {
		return nil, fromErr("FROM --platform is not supported yet")
	}
	if st.BaseStage != nil {
		prev := r.done[st.BaseStage]
		if prev == nil {
			return nil, fromErr("stage %q was not built", st.BaseStage.Name)
		}
		return &stageState{stage: st, cfg: prev.cfg.DeepCopy(), layers: append([]*snapshot.Layer{}, prev.layers...),
			key: "stage:" + prev.key, created: prev.created}, nil
	}
	if strings.EqualFold(st.Base, "scratch") {
		cfg := &v1.ConfigFile{OS: "linux", Architecture: goarch(), Config: v1.Config{Env: []string{"PATH=" + DefaultPath}}}
		return &stageState{stage: st, cfg: cfg, key: "scratch", created: time.Unix(0, 0)}, nil
	}
	var img *registry.Image
	var err error
	if r.b.Pull != nil && r.opts.Pull {
		img, err = r.b.Pull(ctx, st.Base) // --pull: the registry's current image
	} else {
		img, err = r.b.Store.Lookup(st.Base)
		if errors.Is(err, registry.ErrNotFound) && r.b.Pull != nil {
			if img, err = r.b.Pull(ctx, st.Base); err != nil {
				full, _ := registry.NormalizeName(st.Base)
				return nil, fromErr("base image %q (%s) not found in the local store, and pulling it failed: %v", st.Base, full, err)
			}
		}
	}
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			full, _ := registry.NormalizeName(st.Base)
			return nil, fromErr("base image %q (%s) not found in the local store (import or build it first)", st.Base, full)
		}
		return nil, fromErr("base image %q: %v", st.Base, err)
	}
	layers, err := r.b.imageLayers(img)
	if err != nil {
		return nil, fromErr("base image %q: %v", st.Base, err)
	}
	cfg := img.Config.DeepCopy()
	if _, ok := parser.LookupEnv(cfg.Config.Env, "PATH"); !ok {
		cfg.Config.Env = append(cfg.Config.Env, "PATH="+DefaultPath)
	}
	return &stageState{stage: st, cfg: cfg, layers: layers, key: "image:" + img.ID.String(), created: cfg.Created.Time}, nil
}

// imageLayers returns the unpacked layers of a stored image, unpacking those that are not yet.
func (b *Builder) imageLayers(img *registry.Image) ([]*snapshot.Layer, error) {
	var out []*snapshot.Layer
	for i, diffID := range img.Config.RootFS.DiffIDs {
		l, err := b.Snap.Get(diffID)
		if errors.Is(err, snapshot.ErrNotFound) {
			if i >= len(img.Manifest.Layers) {
				return nil, fmt.Errorf("layer %s is missing from the manifest", diffID)
			}
			l, err = b.unpackBlob(img.Manifest.Layers[i])
		}
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", diffID, err)
		}
		out = append(out, l)
	}
	return out, nil
}

func (b *Builder) unpackBlob(d v1.Descriptor) (*snapshot.Layer, error) {
	rc, err := b.Store.OpenBlob(d.Digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	r, err := snapshot.Decompress(rc)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return b.Snap.Unpack(r)
}

// dispatch runs one step and reports whether it came from the cache.
func (r *buildRun) dispatch(ctx context.Context, s *stageState, step *parser.Step) (bool, error) {
	cmd := step.Cmd
	// Expand variables with what this step sees (ARG values and ENV), as BuildKit does.
	if ex, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
		env := s.env()
		if err := ex.Expand(func(w string) (string, error) { return r.exp.Word(w, env) }); err != nil {
			return false, r.errorf(step, "%v", err)
		}
	}
	// COPY/ADD heredocs with an unquoted delimiter: variables expanded, quotes and escapes kept (BuildKit).
	if ex, ok := cmd.(instructions.SupportsSingleWordExpansionRaw); ok {
		env := s.env()
		if err := ex.ExpandRaw(func(w string) (string, error) { return parser.RawWord(w, env) }); err != nil {
			return false, r.errorf(step, "%v", err)
		}
	}
	switch c := cmd.(type) {
	case *instructions.RunCommand:
		return r.run(ctx, s, step, c)
	case *instructions.CopyCommand:
		return r.copy(ctx, s, step, copyArgs{srcs: c.SourcePaths, dest: c.DestPath, chown: c.Chown, chmod: c.Chmod,
			from: c.From, contents: c.SourceContents, parents: c.Parents, excludes: c.ExcludePatterns})
	case *instructions.AddCommand:
		return r.copy(ctx, s, step, copyArgs{srcs: c.SourcePaths, dest: c.DestPath, chown: c.Chown, chmod: c.Chmod,
			add: true, contents: c.SourceContents, excludes: c.ExcludePatterns, checksum: c.Checksum})
	case *instructions.WorkdirCommand:
		return r.workdir(ctx, s, step, c)
	default:
		return r.meta(s, step)
	}
}
