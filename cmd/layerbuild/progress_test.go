package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPlainProgress(t *testing.T) {
	var b bytes.Buffer
	p := newProgress("plain", &b, false)
	p.StepStart(1, 2, "RUN make")
	p.StepOutput(1, []byte("compiling\npart"))
	p.StepOutput(1, []byte("ial\n"))
	p.StepDone(1, 1200*time.Millisecond, false, nil)
	p.StepStart(2, 2, "COPY . /app")
	p.StepDone(2, 0, true, nil)
	p.Close()
	want := "[1/2] RUN make\n  | compiling\n  | partial\n[1/2] DONE 1.2s\n[2/2] COPY . /app\n[2/2] CACHED\n"
	if b.String() != want {
		t.Errorf("plain progress:\n%q\nwant\n%q", b.String(), want)
	}
}

func TestTTYProgressRedrawsInPlace(t *testing.T) {
	var b bytes.Buffer
	p := newProgress("tty", &b, false)
	p.StepStart(1, 3, "RUN make")
	for i := 0; i < 10; i++ {
		p.StepOutput(1, []byte("line\n"))
	}
	time.Sleep(250 * time.Millisecond) // let the ticker redraw
	p.StepDone(1, 2*time.Second, false, nil)
	p.StepStart(2, 3, "RUN false")
	p.StepOutput(2, []byte("why it failed\n"))
	p.StepDone(2, time.Second, false, errors.New("exit 1"))
	p.Close()
	out := b.String()
	if !strings.Contains(out, "\x1b[") || !strings.Contains(out, "\x1b[J") {
		t.Errorf("a terminal view moves the cursor and clears: %q", out)
	}
	if !strings.Contains(out, "[1/3] RUN make ... 2.0s\n") || !strings.Contains(out, "[2/3] RUN false ... ERROR\n  | why it failed\n") {
		t.Errorf("finished steps stay as one line (failures keep their output): %q", out)
	}
	if strings.Count(out, "  | line") > 6*5 {
		t.Error("the live view shows only the last lines")
	}
}
