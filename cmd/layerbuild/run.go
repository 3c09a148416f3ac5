package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/layerbuild/layerbuild/builder"
	"github.com/layerbuild/layerbuild/registry"
	"github.com/layerbuild/layerbuild/sandbox"
	"github.com/layerbuild/layerbuild/snapshot"
)

// Exit statuses of `run`, as docker's: 125 when layerbuild itself fails (unknown image, bad flag, port
// taken), 126 when the command cannot be executed, 127 when it is not found, else the command's own status
// (128+signal when it was killed).
const exitRunError = 125

type runOpts struct {
	rm, detach, interactive bool
	env, envFiles, publish  []string
	workdir, user, name     string
	entrypoint, hostname    string
	network                 string
	memory, cpus            string
	pidsLimit               int64
}

func newRunCmd(g *globalOpts) *cobra.Command {
	o := &runOpts{}
	cmd := &cobra.Command{
		Use:   "run [flags] IMAGE [COMMAND] [ARG...]",
		Short: "Run a command in a new container from an image of the store",
		Long: `Run a command in a new container from an image of the local store, as docker run does: the
image's ENTRYPOINT followed by the arguments (or the image's CMD), its ENV plus -e, its USER and WORKDIR
unless -u or -w say otherwise. The container gets its own mount, pid, uts, ipc, cgroup and (unless
--network host) network namespaces, an overlay rootfs over the image's layers, docker's capabilities and
no_new_privs.

In the foreground the container's output is this command's, signals are passed on to it and its exit code is
returned (125: layerbuild failed, 126/127: the command cannot run/is not found, 128+N: killed by signal N).
With -d the container runs on after layerbuild exits; its output goes to its log (layerbuild logs).`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := runRun(cmd, g, o, args)
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "error: %v\n", err)
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false) // IMAGE ends the flags: what follows is the command's
	f.BoolVar(&o.rm, "rm", false, "remove the container when it exits")
	f.BoolVarP(&o.detach, "detach", "d", false, "run in the background and print the container ID")
	f.BoolVarP(&o.interactive, "interactive", "i", false, "keep stdin attached (foreground only; default: /dev/null)")
	f.StringArrayVarP(&o.env, "env", "e", nil, "set an environment variable (KEY=VALUE, or KEY to take it from this environment); repeatable")
	f.StringArrayVar(&o.envFiles, "env-file", nil, "read environment variables from a file (KEY=VALUE lines, # comments); repeatable")
	f.StringArrayVarP(&o.publish, "publish", "p", nil, "publish a container port: [IP:]HOSTPORT:CONTAINERPORT[/tcp] (IP defaults to 127.0.0.1); repeatable")
	f.StringVarP(&o.workdir, "workdir", "w", "", "working directory inside the container (absolute)")
	f.StringVarP(&o.user, "user", "u", "", "user (name or uid, optionally :group)")
	f.StringVar(&o.entrypoint, "entrypoint", "", "override the image's ENTRYPOINT (this also drops its CMD)")
	f.StringVar(&o.hostname, "hostname", "", "container hostname (default: the short container ID)")
	f.StringVar(&o.network, "network", "private", "network: private (own namespace with loopback), host, or none")
	f.StringVar(&o.name, "name", "", "container name (default: a random one)")
	f.StringVarP(&o.memory, "memory", "m", "", "memory limit (b, k, m or g: 64m); the command is OOM-killed beyond it (exit 137)")
	f.StringVar(&o.cpus, "cpus", "", "CPU limit in CPUs (0.5: half of one CPU's time)")
	f.Int64Var(&o.pidsLimit, "pids-limit", 0, "limit on the number of processes and threads (0 or -1: unlimited)")
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		fmt.Fprintf(c.ErrOrStderr(), "error: %v\nSee 'layerbuild run --help'.\n", err)
		return &exitError{code: exitRunError}
	})
	return cmd
}

func runRun(cmd *cobra.Command, g *globalOpts, o *runOpts, args []string) (int, error) {
	if len(args) == 0 {
		return exitRunError, errors.New(`"layerbuild run" needs at least 1 argument: IMAGE [COMMAND] [ARG...]`)
	}
	if o.detach && o.interactive {
		return exitRunError, errors.New("-d and -i cannot be combined (no attach yet)")
	}
	imageRef, cmdArgs := args[0], args[1:]
	network, err := runNetwork(o.network)
	if err != nil {
		return exitRunError, err
	}
	var ports []sandbox.PortMapping
	for _, p := range o.publish {
		pm, err := sandbox.ParsePort(p)
		if err != nil {
			return exitRunError, err
		}
		ports = append(ports, pm)
	}
	if len(ports) > 0 && network != sandbox.ContainerNetPrivate {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: published ports are discarded with --network %s\n", network)
		ports = nil
	}
	if o.workdir != "" && !path.IsAbs(o.workdir) {
		return exitRunError, fmt.Errorf("the working directory %q is invalid: it needs to be an absolute path", o.workdir)
	}
	extraEnv, err := runEnv(o.env, o.envFiles, os.LookupEnv)
	if err != nil {
		return exitRunError, err
	}
	limits, err := runLimits(o)
	if err != nil {
		return exitRunError, err
	}

	st, err := g.store()
	if err != nil {
		return exitRunError, err
	}
	snap, err := snapshot.New(filepath.Join(st.Root(), "layers"))
	if err != nil {
		return exitRunError, err
	}
	b := &builder.Builder{Store: st, Snap: snap}
	img, err := b.PrepareContainer(imageRef)
	if errors.Is(err, registry.ErrNotFound) {
		return exitRunError, fmt.Errorf("unable to find image %q in the store (build, import or pull it first)", imageRef)
	}
	if err != nil {
		return exitRunError, err
	}
	argv, err := resolveCommand(img.Config, cmd.Flags().Changed("entrypoint"), o.entrypoint, cmdArgs)
	if err != nil {
		return exitRunError, err
	}
	cfg := sandbox.ContainerConfig{
		Image:      imageRef,
		ImageID:    img.ID,
		Args:       argv,
		Env:        mergeEnv(withPath(img.Config.Env), extraEnv),
		Cwd:        img.Config.WorkingDir,
		User:       img.Config.User,
		Hostname:   o.hostname,
		Network:    network,
		StopSignal: img.Config.StopSignal,
		Ports:      ports,
		AutoRemove: o.rm,
		Lowers:     img.Lowers,
		Limits:     limits,
	}
	if o.workdir != "" {
		cfg.Cwd = o.workdir
	}
	if o.user != "" {
		cfg.User = o.user
	}
	if _, err := sandbox.ParseSignal(cfg.StopSignal); err != nil {
		return exitRunError, fmt.Errorf("image %s: STOPSIGNAL: %w", imageRef, err)
	}
	cs, err := sandbox.OpenContainers(filepath.Join(st.Root(), "containers"))
	if err != nil {
		return exitRunError, err
	}
	c, err := cs.Create(o.name, cfg, o.detach)
	if err != nil {
		return exitRunError, err
	}
	ro := sandbox.RunOptions{Detach: o.detach, Stdout: os.Stdout, Stderr: os.Stderr}
	if o.interactive {
		ro.Stdin = os.Stdin
	}
	code, err := cs.Run(c, ro)
	if err != nil {
		return code, err
	}
	if o.detach {
		fmt.Fprintln(cmd.OutOrStdout(), c.ID)
	}
	return code, nil
}

// runLimits parses --memory, --cpus and --pids-limit as docker does.
func runLimits(o *runOpts) (sandbox.Limits, error) {
	var l sandbox.Limits
	if o.memory != "" {
		m, err := sandbox.ParseMemory(o.memory)
		if err != nil {
			return l, fmt.Errorf("--memory: %w", err)
		}
		if m > 0 && m < sandbox.MinMemory {
			return l, errors.New("minimum memory limit allowed is 6MB")
		}
		l.Memory = m
	}
	if o.cpus != "" {
		n, err := sandbox.ParseCPUs(o.cpus, runtime.NumCPU())
		if err != nil {
			return l, err
		}
		l.NanoCPUs = n
	}
	if o.pidsLimit > 0 {
		l.PidsLimit = o.pidsLimit
	}
	return l, nil
}

func runNetwork(n string) (string, error) {
	switch n {
	case "", "private", "default", "bridge":
		return sandbox.ContainerNetPrivate, nil
	case "host":
		return sandbox.ContainerNetHost, nil
	case "none":
		return sandbox.ContainerNetNone, nil
	}
	return "", fmt.Errorf("--network %s: expected private, host or none", n)
}

// resolveCommand applies docker's rules: ENTRYPOINT followed by the arguments, or by the image's CMD when
// there are none; --entrypoint replaces ENTRYPOINT and drops the image's CMD (an empty one clears both).
func resolveCommand(cfg v1.Config, entrypointSet bool, entrypoint string, args []string) ([]string, error) {
	ep, cmd := cfg.Entrypoint, cfg.Cmd
	if entrypointSet {
		ep, cmd = nil, nil
		if entrypoint != "" {
			ep = []string{entrypoint}
		}
	}
	if len(args) > 0 {
		cmd = args
	}
	argv := append(append([]string{}, ep...), cmd...)
	if len(argv) == 0 {
		return nil, errors.New("no command specified: the image has no ENTRYPOINT or CMD, and none was given")
	}
	return argv, nil
}

// withPath adds docker's default PATH to an image environment that has none.
func withPath(env []string) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			return env
		}
	}
	return append(append([]string{}, env...), "PATH="+builder.DefaultPath)
}

// mergeEnv sets each KEY=VALUE of add in base: a key already there keeps its place and takes the new value.
func mergeEnv(base, add []string) []string {
	out := append([]string{}, base...)
	idx := map[string]int{}
	for i, kv := range out {
		k, _, _ := strings.Cut(kv, "=")
		idx[k] = i
	}
	for _, kv := range add {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// runEnv gathers --env-file files then -e values (docker's order: -e wins). A bare KEY takes its value
// from lookup and is left out when unset there.
func runEnv(envs, files []string, lookup func(string) (string, bool)) ([]string, error) {
	var out []string
	add := func(kv, where string) error {
		k, _, hasValue := strings.Cut(kv, "=")
		if k == "" || strings.ContainsAny(k, " \t") {
			return fmt.Errorf("%s: invalid environment variable %q", where, kv)
		}
		if !hasValue {
			v, ok := lookup(k)
			if !ok {
				return nil
			}
			kv = k + "=" + v
		}
		out = append(out, kv)
		return nil
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("--env-file: %w", err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimLeft(strings.TrimSuffix(sc.Text(), "\r"), " \t")
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if err := add(line, fmt.Sprintf("%s:%d", name, n)); err != nil {
				f.Close()
				return nil, err
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("--env-file %s: %w", name, err)
		}
	}
	for _, kv := range envs {
		if err := add(kv, "-e"); err != nil {
			return nil, err
		}
	}
	return out, nil
}
