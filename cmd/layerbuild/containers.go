package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/layerbuild/layerbuild/sandbox"
)

func (g *globalOpts) containers() (*sandbox.Containers, error) {
	return sandbox.OpenContainers(filepath.Join(g.storeRoot(), "containers"))
}

func newPsCmd(g *globalOpts) *cobra.Command {
	var all, quiet, noTrunc bool
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List containers (running ones; -a: all)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cs, err := g.containers()
			if err != nil {
				return err
			}
			list, err := cs.List()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 3, ' ', 0)
			if !quiet {
				fmt.Fprintln(w, "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES")
			}
			now := time.Now()
			for _, c := range list {
				if !all && c.Status != sandbox.StatusRunning {
					continue
				}
				id := c.ShortID()
				if noTrunc {
					id = c.ID
				}
				if quiet {
					fmt.Fprintln(w, id)
					continue
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id, c.Config.Image, psCommand(c.Config.Args, noTrunc),
					humanAgo(c.Created), psStatus(c, now), psPorts(c), c.Name)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show all containers (default: running ones)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only show container IDs")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "do not truncate IDs and commands")
	return cmd
}

// psCommand is docker's COMMAND column: the command line, quoted, cut at 20 characters.
func psCommand(args []string, noTrunc bool) string {
	s := strings.Join(args, " ")
	if r := []rune(s); !noTrunc && len(r) > 20 {
		s = string(r[:19]) + "…"
	}
	return strconv.Quote(s)
}

// psStatus is docker's STATUS column: "Up 3 seconds", "Exited (0) 5 seconds ago", "Created".
func psStatus(c *sandbox.Container, now time.Time) string {
	switch c.Status {
	case sandbox.StatusRunning:
		return "Up " + units.HumanDuration(now.Sub(c.Started))
	case sandbox.StatusExited:
		s := fmt.Sprintf("Exited (%d) %s ago", c.ExitCode, units.HumanDuration(now.Sub(c.Finished)))
		if c.OOMKilled {
			s += " (OOMKilled)"
		}
		return s
	}
	return "Created"
}

// psPorts is the PORTS column: the published ports of a running container (a stopped one holds none).
func psPorts(c *sandbox.Container) string {
	if c.Status != sandbox.StatusRunning {
		return ""
	}
	var s []string
	for _, p := range c.Config.Ports {
		s = append(s, p.String())
	}
	return strings.Join(s, ", ")
}

func newLogsCmd(g *globalOpts) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs [-f] CONTAINER",
		Short: "Print what a detached container wrote to stdout and stderr",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cs, err := g.containers()
			if err != nil {
				return err
			}
			c, err := cs.Get(args[0])
			if err != nil {
				return err
			}
			f, err := os.Open(c.LogPath())
			if errors.Is(err, os.ErrNotExist) {
				return nil // a foreground container: its output went to the terminal
			}
			if err != nil {
				return err
			}
			defer f.Close()
			out := cmd.OutOrStdout()
			for {
				if _, err := io.Copy(out, f); err != nil {
					return err
				}
				if !follow {
					return nil
				}
				if !cs.Refresh(c) || c.Status != sandbox.StatusRunning {
					_, err := io.Copy(out, f) // what it wrote before it ended
					return err
				}
				time.Sleep(100 * time.Millisecond)
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing the output until the container exits")
	return cmd
}

func newStopCmd(g *globalOpts) *cobra.Command {
	var seconds int
	cmd := &cobra.Command{
		Use:   "stop [-t SECONDS] CONTAINER [CONTAINER...]",
		Short: "Stop containers: the image's STOPSIGNAL (default SIGTERM), then SIGKILL after the timeout",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cs, err := g.containers()
			if err != nil {
				return err
			}
			return eachContainer(cmd, cs, args, func(c *sandbox.Container) error {
				return cs.Stop(c, time.Duration(seconds)*time.Second)
			})
		},
	}
	cmd.Flags().IntVarP(&seconds, "time", "t", 10, "seconds to wait before killing the container")
	return cmd
}

// eachContainer runs fn on each named container, prints the name as given on success (as docker does) and
// errors on stderr, and fails when any failed.
func eachContainer(cmd *cobra.Command, cs *sandbox.Containers, refs []string, fn func(*sandbox.Container) error) error {
	var failed error
	for _, ref := range refs {
		c, err := cs.Get(ref)
		if err == nil {
			err = fn(c)
		}
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "error: %v\n", err)
			failed = &exitError{code: 1}
			continue
		}
		fmt.Fprintln(cmd.OutOrStdout(), ref)
	}
	return failed
}

// newRmCmdWithContainers is `rm`: containers first, as docker rm; an argument that names no container
// (neither a name nor an ID prefix) is taken as an image, as `rm` did before containers existed (`rmi`
// removes images only).
func newRmCmdWithContainers(g *globalOpts) *cobra.Command {
	images := newRmCmd(g)
	var force bool
	cmd := &cobra.Command{
		Use:   "rm [-f] CONTAINER|IMAGE [...]",
		Short: "Remove containers (-f: running ones too); an argument that names no container removes an image",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cs, err := g.containers()
			if err != nil {
				return err
			}
			var failed error
			var imageArgs []string
			for _, ref := range args {
				c, err := cs.Get(ref)
				if errors.Is(err, sandbox.ErrNoSuchContainer) {
					imageArgs = append(imageArgs, ref)
					continue
				}
				if err == nil {
					err = cs.Remove(c, force)
				}
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "error: %v\n", err)
					failed = &exitError{code: 1}
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), ref)
			}
			if len(imageArgs) > 0 {
				images.SetOut(cmd.OutOrStdout())
				images.SetErr(cmd.ErrOrStderr())
				if err := images.RunE(images, imageArgs); err != nil {
					failed = err
				}
			}
			return failed
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill and remove running containers")
	return cmd
}

// newRmiCmd removes images only (docker rmi).
func newRmiCmd(g *globalOpts) *cobra.Command {
	cmd := newRmCmd(g)
	cmd.Use = "rmi IMAGE [IMAGE...]"
	cmd.Aliases = nil
	cmd.Short = "Remove images (by name: untag; by ID: the image); never containers"
	return cmd
}
