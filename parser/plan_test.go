package parser

import (
	"errors"
	"strings"
	"testing"
)

func TestParseErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		name, df string
		line     int
		want     string
	}{
		{"unknown instruction", "FROM scratch\nRUN true\nFOO bar\n", 3, "unknown instruction"},
		{"no FROM", "RUN true\n", 1, "no build stage"},
		{"empty file", "# only a comment\n", 1, "no instructions"},
		{"ENV without value", "FROM scratch\nENV\n", 2, "ENV"},
		{"COPY without dest", "FROM scratch\nCOPY onlyone\n", 2, "COPY requires at least two arguments"},
		{"duplicate stage", "FROM scratch AS a\nFROM scratch AS A\n", 2, "duplicate stage name"},
		{"bad --from index", "FROM scratch\nCOPY --from=3 /a /b\n", 2, "no earlier build stage"},
		{"blank base", "ARG B\nFROM ${B}\n", 2, "should not be blank"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.df), Options{File: "my.Dockerfile"})
			if err == nil {
				t.Fatal("want an error")
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %q is not a *parser.Error", err, err)
			}
			if pe.Line != tc.line {
				t.Errorf("line = %d, want %d (%v)", pe.Line, tc.line, err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "my.Dockerfile") {
				t.Errorf("error %q should start with the file and contain %q", err, tc.want)
			}
		})
	}
}

func TestStagesTargetAndNeeded(t *testing.T) {
	df := `ARG BASE=busybox
FROM ${BASE} AS build
RUN make
FROM scratch AS unused
RUN never
FROM build AS test
COPY --from=0 /out /out
FROM scratch
COPY --from=build /out /app
`
	tests := []struct {
		target string
		args   map[string]string
		want   []bool // Needed per stage
		base0  string
	}{
		{"", nil, []bool{true, false, false, true}, "busybox"},
		{"test", nil, []bool{true, false, true, false}, "busybox"},
		{"UNUSED", map[string]string{"BASE": "alpine:3"}, []bool{false, true, false, false}, "alpine:3"},
	}
	for _, tc := range tests {
		p, err := Parse(strings.NewReader(df), Options{Target: tc.target, BuildArgs: tc.args})
		if err != nil {
			t.Fatal(err)
		}
		for i, st := range p.Stages {
			if st.Needed != tc.want[i] {
				t.Errorf("target %q: stage %d needed = %v, want %v", tc.target, i, st.Needed, tc.want[i])
			}
		}
		if p.Stages[0].Base != tc.base0 {
			t.Errorf("base of stage 0 = %q, want %q", p.Stages[0].Base, tc.base0)
		}
	}
	p, _ := Parse(strings.NewReader(df), Options{})
	if p.Stages[2].BaseStage != p.Stages[0] {
		t.Error("FROM build should point at stage 0")
	}
	if got := p.Stages[1].Steps[0].Line; got != 5 {
		t.Errorf("line of RUN never = %d, want 5", got)
	}
	if _, err := Parse(strings.NewReader(df), Options{Target: "nope"}); err == nil || !strings.Contains(err.Error(), "build, test, unused") {
		t.Errorf("unknown target error should list the stages, got %v", err)
	}
}

func TestStepSourceJoinsContinuationLines(t *testing.T) {
	df := "FROM scratch\nRUN echo a \\\n  # comment\n  && echo b\n"
	p, err := Parse(strings.NewReader(df), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Stages[0].Steps[0].Source; got != "RUN echo a && echo b" {
		t.Errorf("source = %q", got)
	}
}

func TestExpander(t *testing.T) {
	e := NewExpander('\\')
	env := []string{"A=1", "B=two words", "A=3"}
	tests := map[string]string{
		"$A":          "3",
		"${B}":        "two words",
		"${C:-dflt}":  "dflt",
		"${A:+set}":   "set",
		`\$A`:         "$A",
		"/app/${A}x/": "/app/3x/",
	}
	for in, want := range tests {
		got, err := e.Word(in, env)
		if err != nil || got != want {
			t.Errorf("Word(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
