package builder

import (
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	dfparser "github.com/moby/buildkit/frontend/dockerfile/parser"
)

func parseRun(t *testing.T, src string) *instructions.RunCommand {
	t.Helper()
	res, err := dfparser.Parse(strings.NewReader("FROM scratch\n" + src))
	if err != nil {
		t.Fatal(err)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatal(err)
	}
	return stages[0].Commands[0].(*instructions.RunCommand)
}

func TestRunArgvHeredocs(t *testing.T) {
	s := &stageState{cfg: &v1.ConfigFile{}}
	for _, tc := range []struct {
		src   string
		argv  []string
		stdin string
	}{
		{"RUN echo hi\n", []string{"/bin/sh", "-c", "echo hi"}, ""},
		{"RUN <<EOF\necho a\nEOF\n", []string{"/bin/sh", "-c", "echo a\n"}, ""},
		{"RUN <<-EOF\n\techo a\n\tEOF\n", []string{"/bin/sh", "-c", "echo a\n"}, ""},
		{"RUN <<EOF\n#!/bin/awk -f\nBEGIN{}\nEOF\n", []string{"/bin/sh", "-c",
			shebangScript("EOF", "#!/bin/awk -f\nBEGIN{}\n")},
			"#!/bin/awk -f\nBEGIN{}\n"},
		{"RUN cat <<A > /a && cat <<\"B\" > /b\n1\nA\n$x\nB\n", []string{"/bin/sh", "-c",
			"cat <<A > /a && cat <<\"B\" > /b\n1\nA\n$x\nB"}, ""},
	} {
		if strings.Contains(tc.src, "#!") && !strings.Contains(tc.argv[2], "exec '/bin/awk' '-f' \"$f\"") {
			t.Errorf("shebang fallback does not run the interpreter: %s", tc.argv[2])
		}
		argv, stdin, err := runArgv(s, parseRun(t, tc.src))
		if err != nil || !reflect.DeepEqual(argv, tc.argv) || stdin != tc.stdin {
			t.Errorf("%q: argv %q stdin %q err %v, want %q %q", tc.src, argv, stdin, err, tc.argv, tc.stdin)
		}
	}
}
