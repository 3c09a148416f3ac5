// Package parser turns a Dockerfile into a build plan: stages of steps, each step keeping its source line.
// It uses BuildKit's parser and instructions packages for the language and its shell lexer for expansion.
package parser

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	dfparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Options select what Parse builds.
type Options struct {
	File      string            // name used in messages, e.g. "Dockerfile"
	BuildArgs map[string]string // --build-arg values
	Target    string            // --target stage name; "" is the last stage
}

// Plan is a parsed Dockerfile: its stages in file order, and which of them the target needs.
type Plan struct {
	File      string
	Escape    rune
	MetaArgs  []instructions.KeyValuePairOptional // ARGs before the first FROM, in order
	BuildArgs map[string]string
	Stages    []*Stage
	Target    *Stage
	Warnings  []string
}

// Stage is one FROM section.
type Stage struct {
	Index     int
	Name      string // the AS name, lower case; "" when unnamed
	Base      string // the FROM reference after ARG expansion: "scratch", an image or a stage name
	BaseStage *Stage // set when Base names an earlier stage
	Platform  string
	Line      int
	Source    string // the FROM line as written
	Steps     []*Step
	Deps      []*Stage // stages this one reads (its base, COPY --from)
	Needed    bool     // the target depends on it (or is it)
}

// Step is one instruction after FROM.
type Step struct {
	Cmd    instructions.Command
	Line   int
	Source string // the instruction as written
}

// Error is a Dockerfile error with its place.
type Error struct {
	File   string
	Line   int
	Source string
	Msg    string
}

func (e *Error) Error() string {
	where := e.File
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Source != "" {
		return fmt.Sprintf("%s: %s: %s", where, shorten(e.Source, 60), e.Msg)
	}
	return fmt.Sprintf("%s: %s", where, e.Msg)
}

// Errorf makes an Error for step s (used by the builder for errors found while building).
func (s *Step) Errorf(file, format string, args ...any) *Error {
	return &Error{File: file, Line: s.Line, Source: s.Source, Msg: fmt.Sprintf(format, args...)}
}

func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

// Parse reads a Dockerfile and makes its plan. Syntax and semantic errors come back as *Error.
func Parse(r io.Reader, opts Options) (*Plan, error) {
	if opts.File == "" {
		opts.File = "Dockerfile"
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", opts.File, err)
	}
	res, err := dfparser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, locate(opts.File, data, err)
	}
	lines := strings.Split(string(data), "\n")
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, locate(opts.File, data, err)
	}
	if len(stages) == 0 {
		return nil, &Error{File: opts.File, Msg: "no FROM instruction: a Dockerfile needs at least one build stage"}
	}
	p := &Plan{File: opts.File, Escape: res.EscapeToken, BuildArgs: opts.BuildArgs}
	for _, w := range res.Warnings {
		p.Warnings = append(p.Warnings, w.Short)
	}
	for _, ma := range metaArgs {
		p.MetaArgs = append(p.MetaArgs, ma.Args...)
	}
	metaEnv, err := p.metaEnv()
	if err != nil {
		return nil, err
	}
	lex := shell.NewLex(res.EscapeToken)
	byName := map[string]*Stage{}
	for i := range stages {
		bs := &stages[i]
		st := &Stage{Index: i, Name: strings.ToLower(bs.Name), Platform: bs.Platform, Source: bs.SourceCode}
		if len(bs.Location) > 0 {
			st.Line = bs.Location[0].Start.Line
		}
		base, _, err := lex.ProcessWord(bs.BaseName, shell.EnvsFromSlice(metaEnv))
		if err != nil {
			return nil, &Error{File: opts.File, Line: st.Line, Source: st.Source, Msg: err.Error()}
		}
		if base == "" {
			return nil, &Error{File: opts.File, Line: st.Line, Source: st.Source,
				Msg: fmt.Sprintf("base name (%s) should not be blank", bs.BaseName)}
		}
		st.Base = base
		if b, ok := byName[strings.ToLower(base)]; ok {
			st.BaseStage = b
			st.Deps = append(st.Deps, b)
		}
		if st.Name != "" {
			if _, dup := byName[st.Name]; dup {
				return nil, &Error{File: opts.File, Line: st.Line, Source: st.Source,
					Msg: fmt.Sprintf("duplicate stage name %q", st.Name)}
			}
		}
		for _, c := range bs.Commands {
			step := &Step{Cmd: c, Source: sourceOf(c, lines)}
			if loc := c.Location(); len(loc) > 0 {
				step.Line = loc[0].Start.Line
			}
			if cp, ok := c.(*instructions.CopyCommand); ok && cp.From != "" {
				from, _, err := lex.ProcessWord(cp.From, shell.EnvsFromSlice(metaEnv))
				if err != nil {
					return nil, step.Errorf(opts.File, "%v", err)
				}
				dep, err := p.stageRef(from, byName, i)
				if err != nil {
					return nil, step.Errorf(opts.File, "%v", err)
				}
				if dep != nil {
					st.Deps = append(st.Deps, dep)
				}
			}
			if run, ok := c.(*instructions.RunCommand); ok {
				deps, err := p.runMountDeps(run, byName, i)
				if err != nil {
					return nil, step.Errorf(opts.File, "%v", err)
				}
				st.Deps = append(st.Deps, deps...)
			}
			st.Steps = append(st.Steps, step)
		}
		if st.Name != "" {
			byName[st.Name] = st
		}
		p.Stages = append(p.Stages, st)
	}
	if opts.Target == "" {
		p.Target = p.Stages[len(p.Stages)-1]
	} else if t, ok := byName[strings.ToLower(opts.Target)]; ok {
		p.Target = t
	} else {
		names := make([]string, 0, len(byName))
		for n := range byName {
			names = append(names, n)
		}
		sort.Strings(names)
		msg := fmt.Sprintf("target stage %q could not be found", opts.Target)
		if len(names) > 0 {
			msg += " (stages: " + strings.Join(names, ", ") + ")"
		}
		return nil, &Error{File: opts.File, Msg: msg}
	}
	markNeeded(p.Target)
	return p, nil
}

// stageRef resolves a COPY --from value: a stage name, a stage index, or (nil, nil) for an image.
func (p *Plan) stageRef(from string, byName map[string]*Stage, current int) (*Stage, error) {
	if s, ok := byName[strings.ToLower(from)]; ok {
		return s, nil
	}
	if n, err := strconv.Atoi(from); err == nil {
		if n < 0 || n >= current {
			return nil, fmt.Errorf("--from=%s: no earlier build stage with index %d", from, n)
		}
		return p.Stages[n], nil
	}
	return nil, nil
}

func markNeeded(s *Stage) {
	if s.Needed {
		return
	}
	s.Needed = true
	for _, d := range s.Deps {
		markNeeded(d)
	}
}

// metaEnv is the environment the FROM lines see: global ARG defaults overridden by --build-arg.
func (p *Plan) metaEnv() ([]string, error) {
	var env []string
	lex := shell.NewLex(p.Escape)
	for _, a := range p.MetaArgs {
		v, ok := p.BuildArgs[a.Key]
		if !ok {
			if a.Value == nil {
				continue
			}
			ev, _, err := lex.ProcessWord(*a.Value, shell.EnvsFromSlice(env))
			if err != nil {
				return nil, &Error{File: p.File, Msg: fmt.Sprintf("ARG %s: %v", a.Key, err)}
			}
			v = ev
		}
		env = SetEnv(env, a.Key, v)
	}
	return env, nil
}

// MetaArgValue is the value of global ARG name as the FROM lines see it, and whether it is set.
func (p *Plan) MetaArgValue(name string) (string, bool) {
	env, err := p.metaEnv()
	if err != nil {
		return "", false
	}
	return LookupEnv(env, name)
}

func sourceOf(c instructions.Command, lines []string) string {
	loc := c.Location()
	if len(loc) == 0 {
		if s, ok := c.(fmt.Stringer); ok {
			return s.String()
		}
		return c.Name()
	}
	start, end := loc[0].Start.Line, loc[len(loc)-1].End.Line
	if start < 1 || end > len(lines) || start > end {
		if s, ok := c.(fmt.Stringer); ok {
			return s.String()
		}
		return c.Name()
	}
	var parts []string
	for _, l := range lines[start-1 : end] {
		l = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(l), "\\"))
		if l != "" && !strings.HasPrefix(l, "#") {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " ")
}

// locate turns a BuildKit parse error into an *Error with file and line.
func locate(file string, data []byte, err error) error {
	line := 0
	var le *dfparser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		line = le.Locations[0][0].Start.Line
	}
	msg := err.Error()
	if i := strings.Index(msg, "on line "); strings.HasPrefix(msg, "dockerfile parse error") && i >= 0 {
		if j := strings.Index(msg[i:], ": "); j >= 0 {
			msg = msg[i+j+2:]
		}
	}
	src := ""
	if line > 0 {
		ls := strings.Split(string(data), "\n")
		if line <= len(ls) {
			src = strings.TrimSpace(ls[line-1])
		}
	}
	return &Error{File: file, Line: line, Source: src, Msg: msg}
}
