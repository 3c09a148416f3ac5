// Command layerbuild builds Dockerfiles into a local OCI image store without a daemon.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/layerbuild/layerbuild/builder"
	"github.com/layerbuild/layerbuild/cache"
	"github.com/layerbuild/layerbuild/registry"
	"github.com/layerbuild/layerbuild/sandbox"
	"github.com/layerbuild/layerbuild/snapshot"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// exitError carries an exit status without printing anything more.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	sandbox.Init()
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}

type globalOpts struct {
	root string
}

func newRootCmd() *cobra.Command {
	g := &globalOpts{}
	b := &buildOpts{}
	cmd := &cobra.Command{
		Use:   "layerbuild [build flags] CONTEXT",
		Short: "Build Dockerfiles into a local OCI image store, no daemon needed",
		Long: `layerbuild builds a Dockerfile into an image in a local OCI image store. RUN steps run in a
Linux-namespaced sandbox on an overlay snapshot; each step becomes a layer keyed by a cache hash.

"layerbuild -f Dockerfile -t me/api ." is the same as "layerbuild build -f Dockerfile -t me/api .".`,
		Args:          cobra.ArbitraryArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return runBuild(cmd, g, b, args)
		},
	}
	cmd.PersistentFlags().StringVar(&g.root, "root", "", "store root directory (default $LAYERBUILD_ROOT, else /var/lib/layerbuild for root, else $XDG_DATA_HOME/layerbuild)")
	addBuildFlags(cmd, b)
	cmd.AddCommand(newBuildCmd(g), newImportCmd(g), newImagesCmd(g), newHistoryCmd(g), newTagCmd(g),
		newRmCmdWithContainers(g), newRmiCmd(g), newRunCmd(g), newPsCmd(g), newLogsCmd(g), newStopCmd(g), newSaveCmd(g), newCacheCmd(g), newPruneCmd(g), newVersionCmd(),
		newPushCmd(g), newPullCmd(g), newLoginCmd(), newLogoutCmd())
	return cmd
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "layerbuild version %s (%s, %s/%s)\n", version, runtime.Version(),
				runtime.GOOS, runtime.GOARCH)
		},
	}
}

// storeRoot picks the store directory: --root, LAYERBUILD_ROOT, /var/lib/layerbuild for root, else
// $XDG_DATA_HOME/layerbuild.
func (g *globalOpts) storeRoot() string {
	return pickRoot(g.root, os.Getenv, os.Geteuid())
}

func pickRoot(flag string, getenv func(string) string, euid int) string {
	if flag != "" {
		return flag
	}
	if r := getenv("LAYERBUILD_ROOT"); r != "" {
		return r
	}
	if euid == 0 {
		return "/var/lib/layerbuild"
	}
	if x := getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "layerbuild")
	}
	return filepath.Join(getenv("HOME"), ".local", "share", "layerbuild")
}

func (g *globalOpts) store() (*registry.Store, error) {
	s, err := registry.Open(g.storeRoot())
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", g.storeRoot(), err)
	}
	return s, nil
}

func (g *globalOpts) builder() (*builder.Builder, error) {
	st, err := g.store()
	if err != nil {
		return nil, err
	}
	snap, err := snapshot.New(filepath.Join(st.Root(), "layers"))
	if err != nil {
		return nil, err
	}
	ix, err := cache.Open(filepath.Join(st.Root(), "cache"))
	if err != nil {
		return nil, err
	}
	return &builder.Builder{Store: st, Snap: snap, Cache: ix}, nil
}
