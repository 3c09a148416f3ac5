package cache

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// layerFilesMagic starts a layer summary file; the version is in it.
const layerFilesMagic = "lbfiles1"

// ForgetLayer drops the summary of a removed layer.
func (ix *Index) ForgetLayer(diffID string) {
	_ = os.Remove(filepath.Join(ix.dir, "layerfiles", strings.TrimPrefix(diffID, "sha256:")))
}

// LayerFiles returns the entry summary of the layer diffID (as WastedBytes needs it), from the summary kept in
// the index when there is one, else from scan, whose result is kept for the next build. A layer never changes,
// so its summary never goes stale.
func (ix *Index) LayerFiles(diffID string, scan func() ([]LayerFile, error)) ([]LayerFile, error) {
	name := filepath.Join(ix.dir, "layerfiles", strings.TrimPrefix(diffID, "sha256:"))
	if data, err := os.ReadFile(name); err == nil {
		if files, err := decodeLayerFiles(data); err == nil {
			return files, nil
		}
	}
	files, err := scan()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err == nil {
		_ = writeAtomic(name, encodeLayerFiles(files)) // a summary that cannot be kept is scanned again next time
	}
	return files, nil
}

func encodeLayerFiles(files []LayerFile) []byte {
	var b bytes.Buffer
	b.WriteString(layerFilesMagic)
	var tmp [binary.MaxVarintLen64]byte
	put := func(v uint64) { b.Write(tmp[:binary.PutUvarint(tmp[:], v)]) }
	put(uint64(len(files)))
	for _, f := range files {
		flags := byte(0)
		if f.Whiteout {
			flags |= 1
		}
		if f.Opaque {
			flags |= 2
		}
		b.WriteByte(flags)
		put(uint64(f.Size))
		put(uint64(len(f.Path)))
		b.WriteString(f.Path)
	}
	return b.Bytes()
}

var errBadSummary = errors.New("cache: bad layer summary")

func decodeLayerFiles(data []byte) ([]LayerFile, error) {
	if !bytes.HasPrefix(data, []byte(layerFilesMagic)) {
		return nil, errBadSummary
	}
	r := bufio.NewReader(bytes.NewReader(data[len(layerFilesMagic):]))
	n, err := binary.ReadUvarint(r)
	if err != nil || n > uint64(len(data)) {
		return nil, errBadSummary
	}
	// One string holds every path; entries slice into it (one allocation instead of one per path).
	files := make([]LayerFile, n)
	paths := make([]byte, 0, len(data))
	type span struct{ start, end int }
	spans := make([]span, n)
	for i := range files {
		flags, err := r.ReadByte()
		if err != nil {
			return nil, errBadSummary
		}
		size, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, errBadSummary
		}
		l, err := binary.ReadUvarint(r)
		if err != nil || l > uint64(len(data)) {
			return nil, errBadSummary
		}
		start := len(paths)
		paths = paths[:start+int(l)]
		if _, err := io.ReadFull(r, paths[start:]); err != nil {
			return nil, errBadSummary
		}
		spans[i] = span{start, len(paths)}
		files[i] = LayerFile{Size: int64(size), Whiteout: flags&1 != 0, Opaque: flags&2 != 0}
	}
	all := string(paths)
	for i, s := range spans {
		files[i].Path = all[s.start:s.end]
	}
	return files, nil
}
