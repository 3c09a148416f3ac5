package builder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/layerbuild/layerbuild/cache"
	"github.com/layerbuild/layerbuild/parser"
	"github.com/layerbuild/layerbuild/sandbox"
)

// layerStep gives a step that changes files its cache key, reuses a cached layer when there is one, and
// otherwise runs fn on a writable snapshot of the stage and commits what fn changed.
func (r *buildRun) layerStep(ctx context.Context, s *stageState, step *parser.Step, sources string, forRun bool,
	fn func(rootfs string) error) (bool, error) {
	key, err := r.stepKey(s, step, sources)
	if err != nil {
		return false, err
	}

	text := historyText(s, step)
	if !r.noCache(s.stage) {
		if e, ok := r.b.Cache.Get(key); ok {
			_ = r.b.Cache.Touch(key)
			if e.Empty {
				s.key = key
				r.reused(s, e, nil)
				s.addHistory(text, true, e.Created)
				return true, nil
			}
			if h, herr := v1.NewHash(e.DiffID); herr == nil {
				if l, err := r.b.Snap.Get(h); err == nil {
					s.layers = append(s.layers, l)
					s.key = key
					r.reused(s, e, l)
					s.addHistory(text, false, e.Created)
					return true, nil
				}
			}
		}
	}
	start := time.Now()
	prepare := r.b.Snap.Prepare
	if forRun {
		prepare = r.b.Snap.PrepareForRun
	}
	active, err := prepare(s.diffIDs())
	if err != nil {
		return false, err
	}
	if err := fn(active.Rootfs); err != nil {
		if derr := active.Discard(); derr != nil {
			return false, fmt.Errorf("%w (and discarding the snapshot: %v)", err, derr)
		}
		return false, err
	}
	l, err := active.Commit()
	if err != nil {
		return false, err
	}
	e := cache.Entry{Empty: l.Empty, Size: l.Size, Created: time.Now().UTC(), Duration: time.Since(start),
		Description: text}
	if !l.Empty {
		e.DiffID = l.DiffID.String()
		s.layers = append(s.layers, l)
		r.cur.layer = l
	}
	if err := r.b.Cache.Put(key, e); err != nil {
		return false, err
	}
	s.key = key
	s.created = e.Created
	s.addHistory(text, l.Empty, e.Created)
	return false, nil
}

// run executes a RUN step in the sandbox.
func (r *buildRun) run(ctx context.Context, s *stageState, step *parser.Step, c *instructions.RunCommand) (bool, error) {
	network := r.opts.Network
	for _, f := range c.FlagsUsed {
		switch f {
		case "network":
			switch n := instructions.GetNetwork(c); n {
			case instructions.NetworkNone, instructions.NetworkHost:
				network = n
			}
		case "mount":
		default:
			return false, fmt.Errorf("RUN --%s is not supported yet", f)
		}
	}
	mounts, err := r.runMounts(s, c)
	if err != nil {
		return false, r.errorf(step, "%v", err)
	}
	argv, stdin, err := runArgv(s, c)
	if err != nil {
		return false, r.errorf(step, "%v", err)
	}
	r.cur.rec.Network = network
	return r.layerStep(ctx, s, step, network+mounts.key, true, func(rootfs string) error {
		sm, cleanup, err := mounts.prepare()
		if err != nil {
			return err
		}
		defer cleanup()
		tail := &tailBuffer{max: 16 << 10}
		out := &stepWriter{n: r.n, p: r.opts.Progress, tail: tail}
		cwd := s.cfg.Config.WorkingDir
		if cwd == "" {
			cwd = "/"
		}
		var in io.Reader
		if stdin != "" {
			in = strings.NewReader(stdin)
		}
		code, err := sandbox.Run(ctx, sandbox.Spec{
			Rootfs: rootfs, Args: argv, Stdin: in, Mounts: sm, Env: s.runEnv(), Cwd: cwd, User: s.cfg.Config.User,
			Hostname: "layerbuild", Network: network, Stdout: out, Stderr: out,
		})
		if err != nil {
			return err
		}
		if code != 0 {
			return &RunError{Argv: argv, ExitCode: code, Tail: tail.lines(20)}
		}
		return nil
	})
}

// RunError is a RUN step whose process exited non-zero.
type RunError struct {
	Argv     []string
	ExitCode int
	Tail     []string
}

func (e *RunError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "process %q did not complete successfully: exit code: %d", strings.Join(e.Argv, " "), e.ExitCode)
	if len(e.Tail) > 0 {
		b.WriteString("\nlast lines of output:")
		for _, l := range e.Tail {
			b.WriteString("\n  | " + l)
		}
	}
	return b.String()
}

// stepWriter forwards a step's output to the progress view and keeps its tail.
type stepWriter struct {
	mu   sync.Mutex
	n    int
	p    Progress
	tail *tailBuffer
}

func (w *stepWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tail.Write(b)
	w.p.StepOutput(w.n, b)
	return len(b), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(b []byte) {
	t.buf = append(t.buf, b...)
	if len(t.buf) > t.max {
		t.buf = append([]byte{}, t.buf[len(t.buf)-t.max:]...)
	}
}

func (t *tailBuffer) lines(n int) []string {
	text := strings.TrimRight(string(bytes.ToValidUTF8(t.buf, []byte("?"))), "\n")
	if text == "" {
		return nil
	}
	ls := strings.Split(text, "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return ls
}
