package parser

import (
	"strings"
	"testing"
)

func TestRunMountChecks(t *testing.T) {
	for _, tc := range []struct{ df, want string }{
		{"FROM scratch\nRUN --mount=type=cache true\n", "target is required"},
		{"FROM scratch\nRUN --mount=type=secret,id=a true\n", "not supported yet"},
		{"FROM scratch\nRUN --mount=type=bind,from=nope,target=/x true\n", ""}, // an image name: no stage dep
	} {
		_, err := Parse(strings.NewReader(tc.df), Options{File: "Dockerfile"})
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.df, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "Dockerfile:2") {
			t.Errorf("%q: error %v, want Dockerfile:2 ... %q", tc.df, err, tc.want)
		}
	}
	p, err := Parse(strings.NewReader("FROM scratch AS tools\nFROM scratch AS unused\nFROM scratch\nRUN --mount=from=tools,target=/t true\n"),
		Options{File: "Dockerfile"})
	if err != nil {
		t.Fatal(err)
	}
	if deps := p.Target.Deps; len(deps) != 1 || deps[0].Name != "tools" {
		t.Errorf("deps of the target = %v, want the tools stage", deps)
	}
}
