package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/layerbuild/layerbuild/registry"
)

// repoTag is the REPOSITORY and TAG columns for a normalized name, in docker's short form.
func repoTag(name string) (string, string) {
	repo, tag := registry.SplitName(name)
	if strings.HasPrefix(tag, "sha256:") || tag == "" {
		tag = "<none>"
	}
	return registry.FamiliarName(repo), tag
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func humanSize(n int64) string { return units.HumanSizeWithPrecision(float64(n), 3) }

func humanAgo(t time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	return units.HumanDuration(time.Since(t)) + " ago"
}

func newImagesCmd(g *globalOpts) *cobra.Command {
	var quiet, noTrunc bool
	cmd := &cobra.Command{
		Use:     "images [REPOSITORY[:TAG]]",
		Aliases: []string{"image-ls"},
		Short:   "List images in the local store",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.store()
			if err != nil {
				return err
			}
			imgs, err := st.Images()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 3, ' ', 0)
			if !quiet {
				fmt.Fprintln(w, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
			}
			seen := map[string]bool{}
			for _, img := range imgs {
				id := shortID(img.ID.String())
				if noTrunc {
					id = img.ID.String()
				}
				names := img.Names
				if len(names) == 0 {
					names = []string{""}
				}
				for _, n := range names {
					repo, tag := "<none>", "<none>"
					if n != "" {
						repo, tag = repoTag(n)
					}
					if len(args) == 1 && !filterMatches(args[0], repo, tag) {
						continue
					}
					if quiet {
						if !seen[id] {
							fmt.Fprintln(w, id)
							seen[id] = true
						}
						continue
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", repo, tag, id, humanAgo(img.Created), humanSize(img.Size))
				}
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only show image IDs")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "do not truncate IDs")
	return cmd
}

// filterMatches tells whether `images REPOSITORY[:TAG]` selects a row.
func filterMatches(filter, repo, tag string) bool {
	frepo, ftag := registry.SplitName(filter)
	full, err := registry.NormalizeName(frepo)
	if err != nil {
		return false
	}
	nrepo, _ := registry.SplitName(full)
	return registry.FamiliarName(nrepo) == repo && (ftag == "" || ftag == tag)
}

func newHistoryCmd(g *globalOpts) *cobra.Command {
	var noTrunc, quiet bool
	cmd := &cobra.Command{
		Use:   "history IMAGE",
		Short: "Show the history of an image: one row per step, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.store()
			if err != nil {
				return err
			}
			img, err := st.Lookup(args[0])
			if err != nil {
				return err
			}
			rows := historyRows(img)
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 3, ' ', 0)
			if !quiet {
				fmt.Fprintln(w, "IMAGE\tCREATED\tCREATED BY\tSIZE\tLAYER\tCOMMENT")
			}
			for i := len(rows) - 1; i >= 0; i-- {
				r := rows[i]
				id := "<missing>"
				if i == len(rows)-1 {
					id = shortID(img.ID.String())
					if noTrunc {
						id = img.ID.String()
					}
				}
				if quiet {
					fmt.Fprintln(w, id)
					continue
				}
				createdBy := strings.Join(strings.Fields(r.createdBy), " ")
				layer := "(empty layer)"
				if !r.empty {
					layer = shortID(r.digest)
					if noTrunc {
						layer = r.digest
					}
				}
				if !noTrunc {
					createdBy = shorten(createdBy, 45)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", id, humanAgo(r.created), createdBy, humanSize(r.size), layer, r.comment)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "do not truncate output")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only show image IDs")
	return cmd
}

type historyRow struct {
	created   time.Time
	createdBy string
	comment   string
	empty     bool
	size      int64
	digest    string
}

// historyRows pairs history entries with the layers they made, oldest first.
func historyRows(img *registry.Image) []historyRow {
	var rows []historyRow
	layer := 0
	for _, h := range img.Config.History {
		r := historyRow{created: h.Created.Time, createdBy: h.CreatedBy, comment: h.Comment, empty: h.EmptyLayer}
		if !h.EmptyLayer && layer < len(img.Manifest.Layers) {
			r.size = img.Manifest.Layers[layer].Size
			r.digest = img.Manifest.Layers[layer].Digest.String()
			layer++
		}
		rows = append(rows, r)
	}
	return rows
}

func newTagCmd(g *globalOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE TARGET_IMAGE[:TAG]",
		Short: "Give an image another name",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.store()
			if err != nil {
				return err
			}
			n, err := registry.NormalizeName(args[1])
			if err != nil {
				return fmt.Errorf("invalid name %q: %w", args[1], err)
			}
			return st.Tag(args[0], n)
		},
	}
}

func newRmCmd(g *globalOpts) *cobra.Command {
	return &cobra.Command{
		Use:     "rm IMAGE [IMAGE...]",
		Aliases: []string{"rmi"},
		Short:   "Remove images (by name: untag; by ID: the image)",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.store()
			if err != nil {
				return err
			}
			var firstErr error
			for _, a := range args {
				lines, err := st.Remove(a)
				for _, l := range lines {
					fmt.Fprintln(cmd.OutOrStdout(), l)
				}
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "error: %v\n", err)
					if firstErr == nil {
						firstErr = &exitError{code: 1}
					}
				}
			}
			return firstErr
		},
	}
}
