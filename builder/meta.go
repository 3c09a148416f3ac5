package builder

import (
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/layerbuild/layerbuild/cache"
	"github.com/layerbuild/layerbuild/parser"
)

func goarch() string { return runtime.GOARCH }

// cmdLine turns a shell-or-exec instruction argument into argv.
func cmdLine(s *stageState, c instructions.ShellDependantCmdLine) []string {
	if c.PrependShell {
		return append(append([]string{}, s.shell()...), strings.Join(c.CmdLine, " "))
	}
	return append([]string{}, c.CmdLine...)
}

// meta applies an instruction that only changes the image config (and ARG, which changes only the scope).
func (r *buildRun) meta(s *stageState, step *parser.Step) (bool, error) {
	cfg := &s.cfg.Config
	history := true
	switch c := step.Cmd.(type) {
	case *instructions.ArgCommand:
		history = false
		for _, a := range c.Args {
			r.usedArgs[a.Key] = true
			v, ok := r.plan.BuildArgs[a.Key]
			if !ok && a.Value != nil {
				v, ok = *a.Value, true
			}
			if !ok {
				v, ok = r.plan.MetaArgValue(a.Key)
			}
			if ok {
				s.args = parser.SetEnv(s.args, a.Key, v)
			}
		}
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			cfg.Env = parser.SetEnv(cfg.Env, kv.Key, kv.Value)
		}
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			cfg.Labels[kv.Key] = kv.Value
		}
	case *instructions.MaintainerCommand:
		s.cfg.Author = c.Maintainer
	case *instructions.UserCommand:
		cfg.User = c.User
	case *instructions.ExposeCommand:
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range c.Ports {
			ep, err := r.exp.Word(p, s.env())
			if err != nil {
				return false, err
			}
			ports, err := expandPorts(ep)
			if err != nil {
				return false, err
			}
			for _, port := range ports {
				cfg.ExposedPorts[port] = struct{}{}
			}
		}
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if strings.TrimSpace(v) == "" {
				return false, fmt.Errorf("VOLUME specified can not be an empty string")
			}
			cfg.Volumes[v] = struct{}{}
		}
	case *instructions.CmdCommand:
		cfg.Cmd = cmdLine(s, c.ShellDependantCmdLine)
		s.cmdSet = true
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = cmdLine(s, c.ShellDependantCmdLine)
		if !s.cmdSet {
			cfg.Cmd = nil
		}
	case *instructions.ShellCommand:
		cfg.Shell = append([]string{}, c.Shell...)
	case *instructions.StopSignalCommand:
		if err := checkSignal(c.Signal); err != nil {
			return false, err
		}
		cfg.StopSignal = c.Signal
	case *instructions.HealthCheckCommand:
		h := c.Health
		cfg.Healthcheck = &v1.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, Retries: h.Retries}
	case *instructions.OnbuildCommand:
		cfg.OnBuild = append(cfg.OnBuild, c.Expression)
	default:
		return false, fmt.Errorf("%s is not supported", strings.ToUpper(step.Cmd.Name()))
	}
	key, err := r.stepKey(s, step, "")
	if err != nil {
		return false, err
	}
	s.key = key
	// Config-only steps go through the index too: the report can then say CACHED or why not, and a rebuild
	// keeps their history times (so the image ID stays the same).
	e, hit := r.b.Cache.Get(key)
	if hit && !r.noCache(s.stage) {
		_ = r.b.Cache.Touch(key)
		r.reused(s, e, nil)
	} else {
		e = cache.Entry{Empty: true, Created: time.Now().UTC(), Description: historyText(s, step)}
		if err := r.b.Cache.Put(key, e); err != nil {
			return false, err
		}
		s.created = e.Created
		hit = false
	}
	if history {
		s.addHistory(historyText(s, step), true, s.created)
	}
	return hit, nil
}

// keyInputs is everything a step's result can depend on: it feeds the cache key, and the same values go into
// the step's record, so the report can only blame a change that can have caused a rebuild.
type keyInputs struct {
	Name    string
	Cmd     instructions.Command
	Env     []string
	Args    []string
	User    string
	Workdir string
	Shell   []string
	Sources string
}

// stepInputs picks a step's key inputs. A RUN depends on the whole environment it runs in; COPY and ADD on their
// (expanded) instruction, the WORKDIR a relative destination is under, and their sources; WORKDIR on the USER
// that owns what it creates; the rest on the instruction alone.
func stepInputs(s *stageState, step *parser.Step, sources string) keyInputs {
	name := strings.ToLower(step.Cmd.Name())
	c := &s.cfg.Config
	switch name {
	case "run":
		return keyInputs{name, step.Cmd, c.Env, s.args, c.User, c.WorkingDir, c.Shell, sources}
	case "copy", "add":
		return keyInputs{Name: name, Cmd: step.Cmd, Workdir: c.WorkingDir, Sources: sources}
	case "workdir":
		return keyInputs{Name: name, Cmd: step.Cmd, Workdir: c.WorkingDir, User: c.User}
	}
	return keyInputs{Name: name, Cmd: step.Cmd}
}

// historyText is the created_by of a step's history entry.
func historyText(s *stageState, step *parser.Step) string {
	if run, ok := step.Cmd.(*instructions.RunCommand); ok {
		argv := cmdLine(s, run.ShellDependantCmdLine)
		text := "RUN "
		if len(s.args) > 0 {
			args := append([]string{}, s.args...)
			sort.Strings(args)
			text += "|" + strconv.Itoa(len(args)) + " " + strings.Join(args, " ") + " "
		}
		return text + strings.Join(argv, " ")
	}
	return step.Source
}

// expandPorts turns an EXPOSE word (80, 80/udp, 8000-8002/tcp) into port/proto keys.
func expandPorts(p string) ([]string, error) {
	port, proto, _ := strings.Cut(p, "/")
	proto = strings.ToLower(proto)
	if proto == "" {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return nil, fmt.Errorf("invalid proto %q in EXPOSE %s", proto, p)
	}
	lo, hi, isRange := strings.Cut(port, "-")
	start, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("invalid port %q in EXPOSE", p)
	}
	end := start
	if isRange {
		if end, err = strconv.ParseUint(hi, 10, 16); err != nil || end < start {
			return nil, fmt.Errorf("invalid port range %q in EXPOSE", p)
		}
	}
	var out []string
	for i := start; i <= end; i++ {
		out = append(out, fmt.Sprintf("%d/%s", i, proto))
	}
	return out, nil
}

var signalNames = map[string]bool{"HUP": true, "INT": true, "QUIT": true, "ILL": true, "TRAP": true,
	"ABRT": true, "BUS": true, "FPE": true, "KILL": true, "USR1": true, "SEGV": true, "USR2": true,
	"PIPE": true, "ALRM": true, "TERM": true, "STKFLT": true, "CHLD": true, "CONT": true, "STOP": true,
	"TSTP": true, "TTIN": true, "TTOU": true, "URG": true, "XCPU": true, "XFSZ": true, "VTALRM": true,
	"PROF": true, "WINCH": true, "IO": true, "PWR": true, "SYS": true}

func checkSignal(sig string) error {
	if n, err := strconv.Atoi(sig); err == nil {
		if n < 1 || n > 64 {
			return fmt.Errorf("invalid signal: %s", sig)
		}
		return nil
	}
	name := strings.TrimPrefix(strings.ToUpper(sig), "SIG")
	if signalNames[name] || strings.HasPrefix(name, "RTMIN") || strings.HasPrefix(name, "RTMAX") {
		return nil
	}
	return fmt.Errorf("invalid signal: %s", sig)
}
