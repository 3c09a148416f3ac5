package builder

import (
	"context"
	"path"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/layerbuild/layerbuild/parser"
	"github.com/layerbuild/layerbuild/snapshot"
)

// workdir sets WORKDIR (relative to the previous one) and creates it, owned by the current USER, when missing.
func (r *buildRun) workdir(ctx context.Context, s *stageState, step *parser.Step, c *instructions.WorkdirCommand) (bool, error) {
	p := c.Path
	if !path.IsAbs(p) {
		wd := s.cfg.Config.WorkingDir
		if wd == "" {
			wd = "/"
		}
		p = path.Join(wd, p)
	}
	s.cfg.Config.WorkingDir = path.Clean(p)
	return r.layerStep(ctx, s, step, "", false, func(rootfs string) error {
		o := userOwner(rootfs, s.cfg.Config.User)
		w := &copier{rootfs: rootfs}
		_, err := w.mkdirAll(s.cfg.Config.WorkingDir, o)
		return err
	})
}

// stageLayers finds a built stage by name or index.
func (r *buildRun) stageLayers(from string) ([]*snapshot.Layer, string, bool) {
	for st, state := range r.done {
		if (st.Name != "" && st.Name == strings.ToLower(from)) || strconv.Itoa(st.Index) == from {
			return state.layers, state.key, true
		}
	}
	return nil, "", false
}

func hashesOf(ls []*snapshot.Layer) []v1.Hash {
	out := make([]v1.Hash, len(ls))
	for i, l := range ls {
		out[i] = l.DiffID
	}
	return out
}
