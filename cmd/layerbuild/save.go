package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/layerbuild/layerbuild/registry"
)

func newSaveCmd(g *globalOpts) *cobra.Command {
	var output, format string
	cmd := &cobra.Command{
		Use:   "save [-o FILE] [--format docker-archive|oci-archive] IMAGE [IMAGE...]",
		Short: "Write images to a tar archive (stdout unless -o)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "docker-archive" && format != "oci-archive" {
				return fmt.Errorf("--format=%s: expected docker-archive or oci-archive", format)
			}
			st, err := g.store()
			if err != nil {
				return err
			}
			for _, a := range args {
				if _, err := st.Lookup(a); err != nil {
					return err
				}
			}
			if output == "" || output == "-" {
				if f, ok := cmd.OutOrStdout().(*os.File); ok && isTerminal(f) {
					return fmt.Errorf("refusing to write an archive to a terminal: use -o FILE or redirect stdout")
				}
				return st.Save(cmd.OutOrStdout(), args, format)
			}
			return writeFileAtomic(output, func(w io.Writer) error { return st.Save(w, args, format) })
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of stdout")
	cmd.Flags().StringVar(&format, "format", "docker-archive", "archive format: docker-archive or oci-archive")
	return cmd
}

// writeFileAtomic writes name through a temp file in the same directory, renamed when complete.
func writeFileAtomic(name string, fill func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := fill(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

func newImportCmd(g *globalOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import ROOTFS.tar|- [NAME[:TAG]]",
		Short: "Make an image from a root filesystem tarball (plain, gzip, bzip2 or zstd)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var names []string
			if len(args) == 2 {
				n, err := registry.NormalizeName(args[1])
				if err != nil {
					return fmt.Errorf("invalid name %q: %w", args[1], err)
				}
				names = append(names, n)
			}
			var in io.Reader = cmd.InOrStdin()
			source := "-"
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				defer f.Close()
				in, source = f, args[0]
			}
			b, err := g.builder()
			if err != nil {
				return err
			}
			img, err := b.Import(in, source, names)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), img.ID.String())
			return nil
		},
	}
	return cmd
}
