package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/layerbuild/layerbuild/builder"
	"github.com/layerbuild/layerbuild/cache"
	"github.com/layerbuild/layerbuild/parser"
	"github.com/layerbuild/layerbuild/registry"
	"github.com/layerbuild/layerbuild/sandbox"
)

type buildOpts struct {
	file      string
	tags      []string
	buildArgs []string
	target    string
	progress  string
	iidfile   string
	noCache   bool
	network   string
	quiet     bool
	report    string
	noCacheOf []string
	pull      bool
	remote    remoteFlags
}

func addBuildFlags(cmd *cobra.Command, b *buildOpts) {
	var f *pflag.FlagSet = cmd.Flags()
	f.StringVarP(&b.file, "file", "f", "", "name of the Dockerfile, or - for stdin (default CONTEXT/Dockerfile)")
	f.StringArrayVarP(&b.tags, "tag", "t", nil, "name and optionally a tag (NAME[:TAG]); repeatable")
	f.StringArrayVar(&b.buildArgs, "build-arg", nil, "set a build-time variable (KEY=VALUE, or KEY to take it from the environment); repeatable")
	f.StringVar(&b.target, "target", "", "build this stage (and the stages it needs) instead of the last one")
	f.StringVar(&b.progress, "progress", "auto", "progress output: auto, plain or tty")
	f.StringVar(&b.iidfile, "iidfile", "", "write the image ID to this file")
	f.BoolVar(&b.noCache, "no-cache", false, "do not use the layer cache")
	f.StringVar(&b.network, "network", "host", "network for RUN steps: host or none")
	f.BoolVarP(&b.quiet, "quiet", "q", false, "print only the image ID on success")
	f.StringVar(&b.report, "report", "", "write the layer-cache report as JSON to this file")
	f.StringArrayVar(&b.noCacheOf, "no-cache-filter", nil, "do not use the cache for the steps of this stage (name or index); repeatable")
	f.BoolVar(&b.pull, "pull", false, "pull every base image from its registry, even when the store has it (a missing one is always pulled)")
	b.remote.add(cmd)
}

func newBuildCmd(g *globalOpts) *cobra.Command {
	b := &buildOpts{}
	cmd := &cobra.Command{
		Use:   "build [flags] CONTEXT",
		Short: "Build an image from a Dockerfile",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBuild(cmd, g, b, args)
		},
	}
	addBuildFlags(cmd, b)
	return cmd
}

func runBuild(cmd *cobra.Command, g *globalOpts, b *buildOpts, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("build needs exactly one CONTEXT argument, got %d", len(args))
	}
	// The build's overlay mounts live in a mount namespace of its own: killed at any moment, it leaks none.
	if err := sandbox.EnterPrivateMountNamespace(); err != nil {
		return err
	}
	contextDir, err := filepath.Abs(args[0])
	if err != nil {
		return err
	}
	if fi, err := os.Stat(contextDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("build context %s is not a directory", args[0])
	}
	if b.network != "host" && b.network != "none" && b.network != "default" {
		return fmt.Errorf("--network=%s: expected host or none", b.network)
	}
	if b.network == "default" {
		b.network = "host"
	}
	buildArgs := map[string]string{}
	for _, a := range b.buildArgs {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			if v, ok = os.LookupEnv(k); !ok {
				continue
			}
		}
		buildArgs[k] = v
	}
	var tags []string
	for _, t := range b.tags {
		n, err := registry.NormalizeName(t)
		if err != nil {
			return fmt.Errorf("invalid tag %q: %w", t, err)
		}
		tags = append(tags, n)
	}

	dfPath, dfName, data, err := readDockerfile(cmd.InOrStdin(), contextDir, b.file)
	if err != nil {
		return err
	}
	plan, err := parser.Parse(bytes.NewReader(data), parser.Options{File: dfName, BuildArgs: buildArgs, Target: b.target})
	if err != nil {
		return err
	}
	ignore, err := parser.ReadDockerignore(contextDir, dfPath)
	if err != nil {
		return err
	}
	bld, err := g.builder()
	if err != nil {
		return err
	}
	bld.Pull = pullHook(bld.Store, &b.remote, cmd.ErrOrStderr())
	statCache, err := cache.OpenStatCache(filepath.Join(bld.Store.Root(), "cache"), contextDir)
	if err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	prog := newProgress(b.progress, stderr, b.quiet)
	for _, w := range plan.Warnings {
		fmt.Fprintf(stderr, "warning: %s: %s\n", dfName, w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	dfID := dfPath
	if dfID == "" {
		dfID = filepath.Join(contextDir, "-")
	}
	res, err := bld.Build(ctx, builder.Options{ContextDir: contextDir, Plan: plan, Ignore: ignore, Tags: tags,
		NoCache: b.noCache, Pull: b.pull, Network: b.network, Progress: prog, StatCache: statCache, NoCacheFilter: b.noCacheOf, DockerfileID: dfID})
	prog.Close()
	if err != nil {
		return err
	}
	if err := statCache.Save(); err != nil {
		fmt.Fprintf(stderr, "warning: %v\n", err)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	id := res.Image.ID.String()
	if b.report != "" {
		if err := writeFileAtomic(b.report, res.Report.WriteJSON); err != nil {
			return fmt.Errorf("write --report: %w", err)
		}
	}
	if b.iidfile != "" {
		if err := os.WriteFile(b.iidfile, []byte(id), 0o644); err != nil {
			return fmt.Errorf("write --iidfile: %w", err)
		}
	}
	if b.quiet {
		fmt.Fprintln(cmd.OutOrStdout(), id)
		return nil
	}
	if err := res.Report.WriteText(stderr); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "Built %s in %.1fs\n", id, time.Since(start).Seconds())
	for _, t := range tags {
		fmt.Fprintf(stderr, "Tagged %s\n", t)
	}
	return nil
}

// readDockerfile reads -f (a path, "-" for stdin, or CONTEXT/Dockerfile) and returns its path (for
// Dockerfile.dockerignore), the name used in messages, and its content.
func readDockerfile(stdin io.Reader, contextDir, file string) (string, string, []byte, error) {
	if file == "-" {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return "", "", nil, fmt.Errorf("read Dockerfile from stdin: %w", err)
		}
		return "", "Dockerfile", data, nil
	}
	name := file
	if name == "" {
		name = filepath.Join(contextDir, "Dockerfile")
	}
	data, err := os.ReadFile(name)
	if err != nil {
		if os.IsNotExist(err) {
			return "", "", nil, fmt.Errorf("no Dockerfile at %s (use -f to name one)", name)
		}
		return "", "", nil, fmt.Errorf("read Dockerfile: %w", err)
	}
	display := file
	if display == "" {
		display = "Dockerfile"
	}
	return name, display, data, nil
}
