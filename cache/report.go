package cache

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/go-units"
)

// Report statuses.
const (
	Cached = "CACHED"
	Built  = "BUILT"
)

// ReportSchema names the JSON layout written by --report (documented in README.md).
const ReportSchema = "layerbuild.report/v1"

// ReportStep is one row of the layer-cache report.
type ReportStep struct {
	Step        int     `json:"step"`
	Stage       string  `json:"stage"`
	Instruction string  `json:"instruction"`
	Key         string  `json:"key"`
	Status      string  `json:"status"`
	Reason      string  `json:"reason,omitempty"`
	Duration    float64 `json:"duration_seconds"`
	Saved       float64 `json:"saved_seconds,omitempty"` // for CACHED steps: what the step took when it was built
	LayerDigest string  `json:"layer_digest,omitempty"`
	LayerSize   int64   `json:"layer_size"`
	Cause       int     `json:"cause_step,omitempty"` // for BUILT steps: the step whose own change started the rebuild

	// For hints; not in the JSON.
	Kind    string   `json:"-"` // instruction name in upper case: RUN, COPY, ...
	Sources []string `json:"-"` // COPY/ADD: the context paths it copied
	Broad   bool     `json:"-"` // COPY/ADD: a source is a directory (such as ".")
	Changed []string `json:"-"` // COPY/ADD: the files whose change rebuilt it
}

// Summary totals a report.
type Summary struct {
	Steps    int     `json:"steps"`
	Cached   int     `json:"cached"`
	Built    int     `json:"built"`
	Saved    float64 `json:"saved_seconds"`
	Duration float64 `json:"duration_seconds"`
}

// Report is the layer-cache report of one build.
type Report struct {
	Schema     string       `json:"schema"`
	Dockerfile string       `json:"dockerfile"`
	Target     string       `json:"target,omitempty"`
	Image      string       `json:"image"`
	Tags       []string     `json:"tags,omitempty"`
	NoCache    bool         `json:"no_cache,omitempty"`
	Steps      []ReportStep `json:"steps"`
	Summary    Summary      `json:"summary"`
	Hints      []string     `json:"hints,omitempty"`
}

// Finish computes the summary.
func (r *Report) Finish(total time.Duration) {
	r.Schema = ReportSchema
	s := Summary{Steps: len(r.Steps), Duration: round(total.Seconds())}
	for _, st := range r.Steps {
		if st.Status == Cached {
			s.Cached++
			s.Saved += st.Saved
		} else {
			s.Built++
		}
	}
	s.Saved = round(s.Saved)
	r.Summary = s
}

func round(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// WriteJSON writes the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report as a table, then the totals and hints.
func (r *Report) WriteText(w io.Writer) error {
	fmt.Fprintln(w, "Layer cache report:")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  STEP\tINSTRUCTION\tSTATUS\tTIME\tSIZE\tREASON")
	for _, s := range r.Steps {
		size := "-"
		if s.LayerDigest != "" {
			size = units.HumanSizeWithPrecision(float64(s.LayerSize), 3)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%.1fs\t%s\t%s\n", s.Step, shorten(norm(s.Instruction), 40), s.Status, s.Duration, size, s.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	sum := r.Summary
	line := fmt.Sprintf("%d of %d steps cached", sum.Cached, sum.Steps)
	if sum.Saved > 0 {
		line += fmt.Sprintf(", %.1fs saved", sum.Saved)
	}
	if r.NoCache {
		line += " (--no-cache)"
	}
	fmt.Fprintln(w, line)
	for _, h := range r.Hints {
		fmt.Fprintln(w, "hint: "+strings.ReplaceAll(h, "\n", "\n      "))
	}
	return nil
}
