package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/layerbuild/layerbuild/builder"
)

func newCacheCmd(g *globalOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Show and prune the step cache",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCacheLsCmd(g), newCachePruneCmd(g))
	return cmd
}

func newCacheLsCmd(g *globalOpts) *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"du"},
		Short:   "List the step cache: entries, their layers, sizes and last use",
		Long: `List the step cache, most recently used first, as "docker buildx du" does: each entry's key,
the layer it made ("(empty)" for a step that changed no file, "(missing)" when the layer is no longer
unpacked), the layer's size, when a build last used it and the instruction.

The last line sums the distinct layers the entries name, and what of that "cache prune" can reclaim: the
layers no image in the store needs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := g.builder()
			if err != nil {
				return err
			}
			u, err := b.CacheUsage()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 3, ' ', 0)
			fmt.Fprintln(w, "KEY\tLAYER\tSIZE\tLAST USED\tDESCRIPTION")
			for _, r := range u.Records {
				key, layer, size, desc := r.Key, "(empty)", humanSize(r.Size), r.Description
				if !r.Empty {
					layer = r.DiffID
					if r.Layer == nil {
						size = "-"
					} else {
						size = humanSize(r.Layer.Size)
					}
				}
				if !verbose {
					key = shortID(key)
					if !r.Empty {
						layer = shortID(layer)
					}
					desc = shorten(desc, 50)
				}
				if !r.Empty && r.Layer == nil {
					layer += " (missing)"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", key, layer, size, humanAgo(r.LastUsed), desc)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			noun := "entries"
			if len(u.Records) == 1 {
				noun = "entry"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d %s, %s total (%s reclaimable)\n", len(u.Records), noun,
				humanSize(u.Size), humanSize(u.Reclaimable))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show full keys, layer IDs and instructions")
	return cmd
}

func newCachePruneCmd(g *globalOpts) *cobra.Command {
	var (
		all, force  bool
		keepStorage string
		filters     []string
	)
	cmd := &cobra.Command{
		Use:   "prune [--all] [--filter until=DURATION] [--keep-storage SIZE] [-f]",
		Short: "Remove step cache entries and the unpacked layers only they keep",
		Long: `Remove step cache entries, as "docker builder prune" does, and then every unpacked layer that no
remaining entry names and no image in the store (tagged or not) needs. Images are never touched: the
layers (and layer blobs) of every image stay.

Which entries go:
  (no flags)              dangling entries: those whose layer no image in the store needs. Entries of
                          steps that changed no file hold no storage and stay.
  --all                   every entry, including those of images' layers and of steps that changed no
                          file (the next build of those images runs every step again).
  --filter until=24h      of those, only the entries no build used in the last 24h (a Go duration, Nd
                          for days, or an RFC 3339 time).
  --keep-storage 1GB      of those, least recently used first, only until the distinct layers the
                          remaining entries name take at most 1GB ("0" keeps nothing).

It waits for running builds to finish and keeps new ones waiting until it is done. Sizes are those of
the layers' tars, as "images" and "cache ls" show them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := builder.PruneOptions{All: all}
			if cmd.Flags().Changed("keep-storage") {
				n, err := units.RAMInBytes(keepStorage)
				if err != nil || n < 0 {
					return fmt.Errorf("invalid --keep-storage %q: want a size like 500MB or 2GB", keepStorage)
				}
				opts.LimitStorage, opts.KeepStorage = true, n
			}
			for _, f := range filters {
				d, err := parseUntil(f, time.Now())
				if err != nil {
					return err
				}
				opts.Until = d
			}
			if !force {
				what := "all dangling build cache"
				if all {
					what = "all build cache"
				}
				if err := confirm(cmd, "WARNING! This will remove "+what+"."); err != nil {
					return err
				}
			}
			b, err := g.builder()
			if err != nil {
				return err
			}
			res, err := b.PruneCache(opts)
			if res != nil {
				noun := "entries"
				if res.Entries == 1 {
					noun = "entry"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Deleted %d %s, reclaimed %s\n", res.Entries, noun, humanSize(res.Reclaimed))
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove every entry, not only dangling ones (images keep their layers)")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, "only entries not used within a time: until=DURATION (e.g. until=24h)")
	cmd.Flags().StringVar(&keepStorage, "keep-storage", "", "remove least recently used entries only until the cache takes at most SIZE (1GB = 1024^3 bytes, as docker)")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not ask for confirmation")
	return cmd
}

func newPruneCmd(g *globalOpts) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "prune [-f]",
		Short: "Remove dangling images (those without a name) and unused unpacked layers",
		Long: `Remove the images that have no name (dangling images, e.g. the one a build's tag moved away from),
as "docker image prune" does. Named images and everything they use stay.

Then every unpacked layer (under the store's layers/ dir) that neither an image nor a step cache entry
uses is removed too. The layers of the removed images that cache entries still name stay: "cache prune"
removes those.

It waits for running builds to finish and keeps new ones waiting until it is done.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !force {
				if err := confirm(cmd, "WARNING! This will remove all dangling images."); err != nil {
					return err
				}
			}
			b, err := g.builder()
			if err != nil {
				return err
			}
			res, err := b.PruneImages()
			if res != nil {
				out := cmd.OutOrStdout()
				if len(res.Lines) > 0 {
					fmt.Fprintln(out, "Deleted Images:")
					for _, l := range res.Lines {
						fmt.Fprintln(out, l)
					}
					fmt.Fprintln(out)
				}
				fmt.Fprintf(out, "Total reclaimed space: %s\n", humanSize(res.Reclaimed))
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not ask for confirmation")
	return cmd
}

// confirm asks on stderr and reads the answer from stdin; anything but y or yes cancels.
func confirm(cmd *cobra.Command, warning string) error {
	fmt.Fprintf(cmd.ErrOrStderr(), "%s\nAre you sure you want to continue? [y/N] ", warning)
	line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	if errors.Is(err, io.EOF) {
		fmt.Fprintln(cmd.ErrOrStderr())
	}
	return errors.New("cancelled: nothing was removed (-f skips this question)")
}

// parseUntil reads a --filter value "until=X": X is a Go duration (24h, 90m), a number of days (7d) or an
// RFC 3339 time; the result is how recently used an entry must be to stay.
func parseUntil(f string, now time.Time) (time.Duration, error) {
	k, v, ok := strings.Cut(f, "=")
	if !ok || strings.TrimSpace(k) != "until" {
		return 0, fmt.Errorf("invalid --filter %q: the only filter is until=DURATION (e.g. until=24h)", f)
	}
	v = strings.TrimSpace(v)
	if days, ok := strings.CutSuffix(v, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return d, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		if d := now.Sub(t); d > 0 {
			return d, nil
		}
		return 0, fmt.Errorf("invalid --filter %q: the time is in the future", f)
	}
	return 0, fmt.Errorf("invalid --filter %q: want a duration (24h, 90m, 7d) or an RFC 3339 time", f)
}
