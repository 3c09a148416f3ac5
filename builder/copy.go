package builder

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/layerbuild/layerbuild/parser"
)

type copyArgs struct {
	srcs         []string
	dest         string
	chown, chmod string
	from         string
	add          bool
	contents     []instructions.SourceContent
	parents      bool
	excludes     []string
	checksum     string
}

// copy runs COPY and ADD: sources from the context, a stage or an image, into the stage's rootfs.
func (r *buildRun) copy(ctx context.Context, s *stageState, step *parser.Step, a copyArgs) (bool, error) {
	name := "COPY"
	if a.add {
		name = "ADD"
	}
	switch {
	case a.parents:
		return false, fmt.Errorf("%s --parents is not supported yet", name)
	case len(a.excludes) > 0:
		return false, fmt.Errorf("%s --exclude is not supported yet", name)
	case a.checksum != "":
		return false, fmt.Errorf("ADD --checksum is not supported yet")
	}
	for _, src := range a.srcs {
		if isURL(src) {
			return false, fmt.Errorf("ADD of a URL (%s) is not supported yet", src)
		}
	}
	var mode *uint32
	if a.chmod != "" {
		m, err := strconv.ParseUint(a.chmod, 8, 32)
		if err != nil || m > 0o7777 {
			return false, fmt.Errorf("invalid --chmod=%s: expected an octal mode such as 0755", a.chmod)
		}
		mm := uint32(m)
		mode = &mm
	}
	dest := a.dest
	if !path.IsAbs(dest) {
		wd := s.cfg.Config.WorkingDir
		if wd == "" {
			wd = "/"
		}
		trailing := strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.")
		dest = path.Join(wd, dest)
		if trailing {
			dest += "/"
		}
	}
	destIsDir := strings.HasSuffix(dest, "/")
	if len(a.srcs)+len(a.contents) > 1 && !destIsDir {
		return false, fmt.Errorf("when using %s with more than one source file, the destination must be a directory and end with a /", name)
	}

	if a.from != "" {
		return r.copyFrom(ctx, s, step, a, dest, destIsDir, mode)
	}
	sr := &sourceRoot{dir: r.opts.ContextDir, ignore: orEmpty(r.opts.Ignore), stat: r.opts.StatCache}
	matches, err := sr.expand(a.srcs)
	if err != nil {
		return false, err
	}
	if len(matches) > 1 && !destIsDir {
		return false, fmt.Errorf("%s: the sources match %d files, so the destination must be a directory and end with a /", name, len(matches))
	}
	digest, files, err := sr.digest(matches)
	if err != nil {
		return false, err
	}
	for _, c := range a.contents {
		digest += fmt.Sprintf("|heredoc %q %q", c.Path, c.Data)
	}
	r.noteSources(files, matches)
	return r.layerStep(ctx, s, step, digest, false, func(rootfs string) error {
		return copyInto(rootfs, sr, matches, a, dest, destIsDir, mode)
	})
}

// copyFrom runs COPY --from: its key is the source stage's key (or the image's ID) with the source paths, so a
// cached step needs no mount of the source; the source is mounted only when the step runs.
func (r *buildRun) copyFrom(ctx context.Context, s *stageState, step *parser.Step, a copyArgs, dest string,
	destIsDir bool, mode *uint32) (bool, error) {
	exp, err := r.exp.Word(a.from, nil)
	if err != nil {
		return false, err
	}
	layers, key, isStage := r.stageLayers(exp)
	if !isStage {
		img, err := r.b.Store.Lookup(exp)
		if err != nil {
			return false, fmt.Errorf("--from=%s: no such stage or image: %w", a.from, err)
		}
		if layers, err = r.b.imageLayers(img); err != nil {
			return false, fmt.Errorf("--from=%s: %w", a.from, err)
		}
		key = img.ID.String()
	}
	r.cur.rec.FromName, r.cur.rec.FromKey = exp, key
	digest := fmt.Sprintf("from %s %q", key, a.srcs)
	return r.layerStep(ctx, s, step, digest, false, func(rootfs string) error {
		active, err := r.b.Snap.Prepare(hashesOf(layers))
		if err != nil {
			return err
		}
		defer active.Discard()
		sr := &sourceRoot{dir: active.Rootfs, keepOwner: true}
		matches, err := sr.expand(a.srcs)
		if err != nil {
			return err
		}
		if len(matches) > 1 && !destIsDir {
			return fmt.Errorf("COPY: the sources match %d files, so the destination must be a directory and end with a /", len(matches))
		}
		return copyInto(rootfs, sr, matches, a, dest, destIsDir, mode)
	})
}

// copyInto writes the matches (and heredoc sources) into rootfs.
func copyInto(rootfs string, sr *sourceRoot, matches []match, a copyArgs, dest string, destIsDir bool, mode *uint32) error {
	own, err := resolveOwner(rootfs, a.chown)
	if err != nil {
		return err
	}
	w := &copier{rootfs: rootfs, chown: own, chmod: mode, keepOwner: sr.keepOwner}
	for _, m := range matches {
		if err := w.copyMatch(m, dest, destIsDir, a.add); err != nil {
			return err
		}
	}
	for _, c := range a.contents {
		if err := w.writeContent(path.Join(strings.TrimSuffix(dest, "/"), path.Base(c.Path)), destIsDir, dest, c); err != nil {
			return err
		}
	}
	return w.finish()
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "git@")
}

func orEmpty(ig *parser.Ignore) *parser.Ignore {
	if ig == nil {
		return &parser.Ignore{}
	}
	return ig
}
