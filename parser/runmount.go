package parser

import (
	"fmt"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// runMountDeps checks a RUN's --mount flags before anything runs (a missing target, a type not supported
// yet) and returns the stages its bind mounts read (from=stage).
func (p *Plan) runMountDeps(run *instructions.RunCommand, byName map[string]*Stage, current int) ([]*Stage, error) {
	// Parse the mounts with variables left as written: dispatch parses them again, expanded.
	probe := *run
	if err := probe.Expand(func(w string) (string, error) { return w, nil }); err != nil {
		return nil, err
	}
	var deps []*Stage
	for _, m := range instructions.GetMounts(&probe) {
		switch m.Type {
		case instructions.MountTypeSecret, instructions.MountTypeSSH:
			return nil, fmt.Errorf("RUN --mount=type=%s is not supported yet", m.Type)
		}
		if m.Target == "" {
			return nil, fmt.Errorf("RUN --mount=type=%s: a target is required (target=/path)", m.Type)
		}
		if m.From == "" || m.Type != instructions.MountTypeBind {
			continue
		}
		dep, err := p.stageRef(m.From, byName, current)
		if err != nil {
			return nil, err
		}
		if dep != nil {
			deps = append(deps, dep)
		}
	}
	return deps, nil
}
