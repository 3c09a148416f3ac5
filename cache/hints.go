package cache

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/docker/go-units"
)

// BroadCopyHints finds expensive RUN steps (at least minSeconds) that were rebuilt only because an earlier COPY
// of a whole directory changed files the RUN does not mention, as `COPY . .` before `RUN pip install -r
// requirements.txt` does, and suggests copying the files the RUN needs first. Hints are advice, never applied.
func BroadCopyHints(steps []ReportStep, minSeconds float64) []string {
	byStep := map[int]*ReportStep{}
	for i := range steps {
		byStep[steps[i].Step] = &steps[i]
	}
	var hints []string
	for _, s := range steps {
		if s.Status != Built || s.Kind != "RUN" || s.Cause == 0 || s.Cause == s.Step || s.Duration < minSeconds {
			continue
		}
		c := byStep[s.Cause]
		if c == nil || (c.Kind != "COPY" && c.Kind != "ADD") || !c.Broad || len(c.Changed) == 0 {
			continue
		}
		if mentionsAny(s.Instruction, c.Changed) {
			continue // the RUN names a changed file: it may well need it
		}
		needed := mentioned(s.Instruction, c.Sources)
		h := fmt.Sprintf("step %d %s (%.1fs) was rebuilt only because step %d %s changed %s, which it does not use.",
			s.Step, shorten(norm(s.Instruction), 50), s.Duration, c.Step, norm(c.Instruction), list(c.Changed))
		if len(needed) > 0 {
			dest := copyDest(c.Instruction)
			h += "\nCopy what it needs first, so it only reruns when those files change:"
			h += fmt.Sprintf("\n  COPY %s %s", strings.Join(needed, " "), dest)
			h += "\n  " + norm(s.Instruction)
			h += "\n  " + norm(c.Instruction)
		} else {
			h += "\nCopy only the files it needs before it, and the rest after it."
		}
		hints = append(hints, h)
	}
	return hints
}

func mentionsAny(text string, files []string) bool {
	for _, f := range files {
		if strings.Contains(text, f) || strings.Contains(text, path.Base(f)) {
			return true
		}
	}
	return false
}

// mentioned lists the sources whose path appears as a word of the instruction.
func mentioned(text string, sources []string) []string {
	words := map[string]bool{}
	for _, w := range strings.FieldsFunc(text, func(r rune) bool { return strings.ContainsRune(" \t\"'=;&|<>()", r) }) {
		words[strings.TrimPrefix(w, "./")] = true
	}
	var out []string
	for _, s := range sources {
		if words[s] {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// copyDest is the destination of a COPY/ADD instruction (its last word), with a trailing slash for the hint.
func copyDest(instr string) string {
	f := strings.Fields(instr)
	if len(f) == 0 {
		return "./"
	}
	d := f[len(f)-1]
	if !strings.HasSuffix(d, "/") {
		d += "/"
	}
	return d
}

// LayerFile is one entry of a layer, as WastedBytes needs it.
type LayerFile struct {
	Path     string // clean, relative, no leading slash
	Size     int64
	Whiteout bool // .wh.<name>: Path is the deleted path
	Opaque   bool // .wh..wh..opq: Path is the directory whose lower content is hidden
}

// LayerWaste is what one layer adds that later layers delete or overwrite.
type LayerWaste struct {
	Layer   int // index into the layers given to WastedBytes
	Bytes   int64
	Files   int      // how many paths are wasted
	Largest []string // a few of the biggest wasted paths
}

// WastedBytes finds bytes that a layer adds and a later layer deletes (whiteout, opaque directory) or overwrites.
// layers are bottom first.
func WastedBytes(layers [][]LayerFile) []LayerWaste {
	type origin struct {
		layer int
		size  int64
	}
	live := map[string]origin{}
	waste := map[int]map[string]int64{}
	kill := func(p string, o origin) {
		if o.size == 0 {
			return
		}
		if waste[o.layer] == nil {
			waste[o.layer] = map[string]int64{}
		}
		waste[o.layer]["/"+p] += o.size
	}
	removeUnder := func(dir string, layer int) {
		prefix := dir + "/"
		for p, o := range live {
			if o.layer < layer && (strings.HasPrefix(p, prefix) || dir == "") {
				kill(p, o)
				delete(live, p)
			}
		}
	}
	for i, files := range layers {
		for _, f := range files {
			switch {
			case f.Opaque:
				removeUnder(f.Path, i)
			case f.Whiteout:
				if o, ok := live[f.Path]; ok {
					kill(f.Path, o)
					delete(live, f.Path)
				}
				removeUnder(f.Path, i)
			default:
				if o, ok := live[f.Path]; ok && o.layer < i {
					kill(f.Path, o)
				}
				live[f.Path] = origin{i, f.Size}
			}
		}
	}
	var out []LayerWaste
	for layer, paths := range waste {
		lw := LayerWaste{Layer: layer}
		type ps struct {
			p string
			n int64
		}
		var all []ps
		lw.Files = len(paths)
		for p, n := range paths {
			lw.Bytes += n
			all = append(all, ps{p, n})
		}
		sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n || (all[i].n == all[j].n && all[i].p < all[j].p) })
		for i := 0; i < len(all) && i < 3; i++ {
			lw.Largest = append(lw.Largest, all[i].p)
		}
		out = append(out, lw)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Bytes > out[j].Bytes })
	return out
}

// WasteHint words a LayerWaste for the report.
func WasteHint(w LayerWaste, step int, instruction string) string {
	more := ""
	if w.Files > len(w.Largest) {
		more = fmt.Sprintf(", and %d more", w.Files-len(w.Largest))
	}
	return fmt.Sprintf("%s added by step %d %s is deleted or overwritten by later steps (%s%s): remove such files in the step that creates them.",
		units.HumanSizeWithPrecision(float64(w.Bytes), 3), step, shorten(norm(instruction), 40), strings.Join(w.Largest, ", "), more)
}
