package builder

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/layerbuild/layerbuild/cache"
	"github.com/layerbuild/layerbuild/parser"
	"github.com/layerbuild/layerbuild/snapshot"
)

// stepInfo is what the report and the build record need of one step.
type stepInfo struct {
	rec     cache.StepRecord
	stage   string // "name" or "#index"
	index   int    // position in the stage, FROM = 0
	kind    string // RUN, COPY, ...
	cached  bool
	layer   *snapshot.Layer
	saved   time.Duration // for a reused step: what it took when built
	dur     time.Duration
	broad   bool
	noCache bool // --no-cache or --no-cache-filter applies to its stage
}

func stageID(st *parser.Stage) string {
	if st.Name != "" {
		return st.Name
	}
	return "#" + strconv.Itoa(st.Index)
}

// beginStep starts the record of a step.
func (r *buildRun) beginStep(s *stageState, step *parser.Step, kind string) {
	idx := 0
	if n := len(r.steps); n > 0 && r.steps[n-1].stage == stageID(s.stage) {
		idx = r.steps[n-1].index + 1
	}
	r.cur = &stepInfo{stage: stageID(s.stage), index: idx, kind: kind, noCache: r.noCache(s.stage),
		rec: cache.StepRecord{Step: r.n, Instruction: step.Source}}
}

// endStep closes the running step's record.
func (r *buildRun) endStep(s *stageState, d time.Duration, _ error) {
	r.cur.dur = d
	if r.cur.rec.Key == "" {
		r.cur.rec.Key = s.key
	}
	r.steps = append(r.steps, r.cur)
}

// stepKey computes the running step's cache key and records the inputs it covers.
func (r *buildRun) stepKey(s *stageState, step *parser.Step, sources string) (string, error) {
	in := stepInputs(s, step, sources)
	key, err := cache.Key(s.key, in)
	if err != nil {
		return "", err
	}
	rec := &r.cur.rec
	rec.Key = key
	if b, err := json.Marshal(in.Cmd); err == nil {
		rec.Canonical = string(b)
	}
	if len(in.Args) > 0 {
		rec.Args = map[string]string{}
		for _, a := range in.Args {
			k, v, _ := strings.Cut(a, "=")
			rec.Args[k] = v
		}
	}
	rec.Env = append([]string(nil), in.Env...)
	rec.Shell = append([]string(nil), in.Shell...)
	rec.User, rec.Workdir = in.User, in.Workdir
	return key, nil
}

// reused notes that the running step came from the cache entry e.
func (r *buildRun) reused(s *stageState, e cache.Entry, l *snapshot.Layer) {
	r.cur.saved = e.Duration
	r.cur.layer = l
	s.created = e.Created
}

// noCache tells whether the steps of stage st must not come from the cache (--no-cache, --no-cache-filter).
func (r *buildRun) noCache(st *parser.Stage) bool {
	if r.opts.NoCache {
		return true
	}
	for _, f := range r.opts.NoCacheFilter {
		if (st.Name != "" && strings.EqualFold(f, st.Name)) || f == strconv.Itoa(st.Index) {
			return true
		}
	}
	return false
}

// noteSources records the COPY/ADD sources of the running step for the cache report.
func (r *buildRun) noteSources(files map[string]string, matches []match) {
	if r.cur == nil {
		return
	}
	r.cur.rec.Files = files
	for _, m := range matches {
		if m.dir {
			r.cur.broad = true
		}
	}
}

// report explains every step against the last build of the same Dockerfile and saves this build's record.
func (r *buildRun) report(imageID string, layers []*snapshot.Layer, total time.Duration) *cache.Report {
	var prev *cache.BuildRecord
	recID := ""
	if r.opts.DockerfileID != "" {
		recID = cache.RecordID(r.opts.DockerfileID)
		prev = r.b.Cache.LoadRecord(recID)
	}
	rep := &cache.Report{Dockerfile: r.opts.DockerfileID, Image: imageID, Tags: r.opts.Tags, NoCache: r.opts.NoCache}
	if r.plan.Target != nil {
		rep.Target = r.plan.Target.Name
	}
	cause := map[int]int{}
	var last *stepInfo
	for _, si := range r.steps {
		st := cache.ReportStep{Step: si.rec.Step, Stage: si.stage, Instruction: si.rec.Instruction, Key: si.rec.Key,
			Duration: roundSec(si.dur), Kind: si.kind, Broad: si.broad}
		for p := range si.rec.Files {
			st.Sources = append(st.Sources, p)
		}
		sort.Strings(st.Sources)
		if si.layer != nil && !si.layer.Empty {
			st.LayerDigest = si.layer.DiffID.String()
			st.LayerSize = si.layer.Size
		}
		var before *cache.StepRecord
		if prev != nil {
			if steps := prev.Stages[si.stage]; si.index < len(steps) {
				before = &steps[si.index]
			}
		}
		parent := 0
		if last != nil && last.stage == si.stage && last.rec.Status == cache.Built {
			parent = last.rec.Step
		}
		switch {
		case si.kind == "FROM":
			st.Status = cache.Cached
			if before != nil && before.BaseID != si.rec.BaseID {
				st.Status = cache.Built
				st.Reason = cache.Explain(before, &si.rec, 0)
			}
		case si.cached:
			st.Status = cache.Cached
			st.Saved = roundSec(si.saved)
		default:
			st.Status = cache.Built
			switch {
			case r.opts.NoCache:
				st.Reason = "--no-cache"
			case si.noCache:
				st.Reason = "--no-cache-filter " + si.stage
			case prev == nil:
				st.Reason = "no earlier build"
			case before == nil:
				st.Reason = "new step"
			default:
				st.Reason = cache.Explain(before, &si.rec, parent)
				st.Changed = cache.ChangedFiles(before.Files, si.rec.Files)
			}
		}
		si.rec.Status = st.Status
		if st.Status == cache.Built {
			cause[st.Step] = st.Step
			if parent > 0 && strings.HasPrefix(st.Reason, "parent step") {
				cause[st.Step] = cause[parent]
			}
			st.Cause = cause[st.Step]
		}
		rep.Steps = append(rep.Steps, st)
		last = si
	}
	rep.Finish(total)
	rep.Hints = cache.BroadCopyHints(rep.Steps, r.opts.HintMinSeconds)
	// Reading every layer's headers costs time: an unchanged image keeps the hints of its last build.
	var waste []string
	if prev != nil && prev.Image == imageID {
		waste = prev.WasteHints
	} else {
		waste = r.wasteHints(layers)
	}
	rep.Hints = append(rep.Hints, waste...)
	if recID != "" {
		rec := &cache.BuildRecord{Dockerfile: r.opts.DockerfileID,
			Stages: map[string][]cache.StepRecord{}, Image: imageID, WasteHints: waste}
		if prev != nil {
			for k, v := range prev.Stages {
				rec.Stages[k] = v
			}
		}
		built := map[string][]cache.StepRecord{}
		for _, si := range r.steps {
			built[si.stage] = append(built[si.stage], si.rec)
		}
		for k, v := range built {
			rec.Stages[k] = v
		}
		if err := r.b.Cache.SaveRecord(recID, rec); err != nil { // advice only: never fails the build
			rep.Hints = append(rep.Hints, "the build record could not be saved: "+err.Error())
		}
	}
	return rep
}

func roundSec(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }
