package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// progress renders build events: plain (one line as each step starts and ends, RUN output as it comes) or
// tty (a compact live view: the running step with its clock and last output lines, redrawn in place).
type progress interface {
	StepStart(n, total int, text string)
	StepOutput(n int, data []byte)
	StepDone(n int, d time.Duration, cached bool, err error)
	Close()
}

func newProgress(mode string, w io.Writer, quiet bool) progress {
	if quiet {
		return quietProgress{}
	}
	if mode == "auto" {
		mode = "plain"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb" {
			mode = "tty"
		}
	}
	if mode == "tty" {
		t := &ttyProgress{w: w, stop: make(chan struct{})}
		go t.tick()
		return t
	}
	return &plainProgress{w: w}
}

type quietProgress struct{}

func (quietProgress) StepStart(int, int, string)               {}
func (quietProgress) StepOutput(int, []byte)                   {}
func (quietProgress) StepDone(int, time.Duration, bool, error) {}
func (quietProgress) Close()                                   {}

func stepLabel(n, total int, text string) string {
	return fmt.Sprintf("[%d/%d] %s", n, total, shorten(text, 80))
}

func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

func doneSuffix(d time.Duration, cached bool, err error) string {
	switch {
	case err != nil:
		return "ERROR"
	case cached:
		return "CACHED"
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

type plainProgress struct {
	mu      sync.Mutex
	w       io.Writer
	label   string
	num     string
	partial []byte
}

func (p *plainProgress) StepStart(n, total int, text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.label = stepLabel(n, total, text)
	p.num = fmt.Sprintf("[%d/%d]", n, total)
	fmt.Fprintln(p.w, p.label)
}

func (p *plainProgress) StepOutput(n int, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, data...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "  | %s\n", p.partial[:i])
		p.partial = p.partial[i+1:]
	}
}

func (p *plainProgress) StepDone(n int, d time.Duration, cached bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.partial) > 0 {
		fmt.Fprintf(p.w, "  | %s\n", p.partial)
		p.partial = nil
	}
	fmt.Fprintf(p.w, "%s %s\n", p.num, doneWord(d, cached, err))
}

func (p *plainProgress) Close() {}

func doneWord(d time.Duration, cached bool, err error) string {
	if err == nil && !cached {
		return "DONE " + doneSuffix(d, cached, err)
	}
	return doneSuffix(d, cached, err)
}

// ttyProgress keeps finished steps as single lines and redraws the running step below them.
type ttyProgress struct {
	mu      sync.Mutex
	w       io.Writer
	label   string
	start   time.Time
	running bool
	lines   []string // last lines of the running step's output
	partial string
	drawn   int // lines drawn for the running step
	stop    chan struct{}
	once    sync.Once
}

const ttyTail = 6

func (t *ttyProgress) tick() {
	tk := time.NewTicker(100 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tk.C:
			t.mu.Lock()
			if t.running {
				t.redraw()
			}
			t.mu.Unlock()
		}
	}
}

func (t *ttyProgress) clear() {
	if t.drawn > 0 {
		fmt.Fprintf(t.w, "\x1b[%dA\x1b[J", t.drawn)
		t.drawn = 0
	}
}

func (t *ttyProgress) redraw() {
	t.clear()
	fmt.Fprintf(t.w, "\x1b[1m%s\x1b[0m %.1fs\n", t.label, time.Since(t.start).Seconds())
	t.drawn = 1
	for _, l := range t.lines {
		fmt.Fprintf(t.w, "\x1b[2m  | %s\x1b[0m\n", shorten(l, 110))
		t.drawn++
	}
}

func (t *ttyProgress) StepStart(n, total int, text string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.label = stepLabel(n, total, text)
	t.start = time.Now()
	t.running = true
	t.lines, t.partial = nil, ""
	t.redraw()
}

func (t *ttyProgress) StepOutput(n int, data []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	parts := strings.Split(t.partial+string(data), "\n")
	t.partial = parts[len(parts)-1]
	for _, l := range parts[:len(parts)-1] {
		t.lines = append(t.lines, strings.TrimRight(l, "\r"))
	}
	if len(t.lines) > ttyTail {
		t.lines = t.lines[len(t.lines)-ttyTail:]
	}
}

func (t *ttyProgress) StepDone(n int, d time.Duration, cached bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clear()
	t.running = false
	fmt.Fprintf(t.w, "%s ... %s\n", t.label, doneSuffix(d, cached, err))
	if err != nil {
		for _, l := range t.lines {
			fmt.Fprintf(t.w, "  | %s\n", l)
		}
	}
}

func (t *ttyProgress) Close() {
	t.once.Do(func() { close(t.stop) })
}
