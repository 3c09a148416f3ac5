package builder

import (
	"archive/tar"
	"bufio"
	"io"
	"os"
	"path"
	"strings"

	"github.com/layerbuild/layerbuild/cache"
	"github.com/layerbuild/layerbuild/snapshot"
)

// minWaste is the smallest waste worth a hint.
const minWaste = 1024

// wasteHints reads the headers of the target's layers and reports bytes that a step's layer adds and a later
// layer deletes or overwrites. Only layers made by this Dockerfile's steps are named.
func (r *buildRun) wasteHints(layers []*snapshot.Layer) []string {
	made := map[string]*stepInfo{}
	for _, si := range r.steps {
		if si.layer != nil && !si.layer.Empty {
			made[si.layer.DiffID.String()] = si
		}
	}
	var all [][]cache.LayerFile
	for _, l := range layers {
		tarPath := l.TarPath
		files, err := r.b.Cache.LayerFiles(l.DiffID.String(), func() ([]cache.LayerFile, error) { return layerFiles(tarPath) })
		if err != nil {
			return nil // advice only: an unreadable layer means no hint, not a failed build
		}
		all = append(all, files)
	}
	var hints []string
	for _, w := range cache.WastedBytes(all) {
		si := made[layers[w.Layer].DiffID.String()]
		if si == nil || w.Bytes < minWaste {
			continue
		}
		hints = append(hints, cache.WasteHint(w, si.rec.Step, si.rec.Instruction))
	}
	return hints
}

// layerFiles lists a layer tar's entries (names cleaned, whiteouts decoded).
func layerFiles(tarPath string) ([]cache.LayerFile, error) {
	f, err := os.Open(tarPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []cache.LayerFile
	// Small layers are read straight through (far fewer system calls than seeking past each entry's data);
	// big ones are skipped through by seeking.
	var src io.Reader = f
	if fi, err := f.Stat(); err == nil && fi.Size() < 64<<20 {
		src = bufio.NewReaderSize(f, 1<<20)
	}
	tr := tar.NewReader(src)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		switch {
		case base == ".wh..wh..opq":
			out = append(out, cache.LayerFile{Path: dir, Opaque: true})
		case strings.HasPrefix(base, ".wh."):
			out = append(out, cache.LayerFile{Path: path.Join(dir, strings.TrimPrefix(base, ".wh.")), Whiteout: true})
		case h.Typeflag == tar.TypeReg:
			out = append(out, cache.LayerFile{Path: name, Size: h.Size})
		default:
			out = append(out, cache.LayerFile{Path: name})
		}
	}
}
