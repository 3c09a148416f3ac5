package cache

import (
	"strings"
	"testing"
)

func TestExplain(t *testing.T) {
	base := StepRecord{Step: 4, Instruction: "RUN make", Canonical: `{"a":1}`, Key: "k1",
		Args: map[string]string{"VERSION": "1.0"}, Env: []string{"PATH=/bin"}, User: "", Workdir: "/src",
		Files: map[string]string{"app.py": "h1", "requirements.txt": "h2", "old.py": "h3"}}
	mod := func(f func(r *StepRecord)) *StepRecord {
		r := base
		r.Args = map[string]string{"VERSION": "1.0"}
		r.Files = map[string]string{"app.py": "h1", "requirements.txt": "h2", "old.py": "h3"}
		f(&r)
		return &r
	}
	tests := []struct {
		name   string
		prev   *StepRecord
		cur    *StepRecord
		parent int
		want   string
	}{
		{"no earlier build", nil, &base, 0, "no earlier build"},
		{"instruction", &base, mod(func(r *StepRecord) { r.Instruction = "RUN make all" }), 3, "instruction changed (was: RUN make)"},
		{"whitespace is not a change", &base, mod(func(r *StepRecord) { r.Instruction = "RUN   make"; r.Key = "k2" }), 3, "parent step 3 rebuilt"},
		{"files", &base, mod(func(r *StepRecord) {
			r.Files["app.py"], r.Files["requirements.txt"] = "x", "y"
			r.Files["new.py"] = "n"
			delete(r.Files, "old.py")
		}), 3, "2 files changed: app.py, requirements.txt (+1 added: new.py) (-1 removed: old.py)"},
		{"only added", &base, mod(func(r *StepRecord) { r.Files["new.py"] = "n" }), 0, "+1 added: new.py"},
		{"build-arg", &base, mod(func(r *StepRecord) { r.Args["VERSION"] = "1.1" }), 3, "build-arg VERSION changed 1.0 -> 1.1"},
		{"build-arg set", &base, mod(func(r *StepRecord) { r.Args["DEBUG"] = "1" }), 0, "build-arg DEBUG set to 1"},
		{"env", &base, mod(func(r *StepRecord) { r.Env = []string{"PATH=/usr/bin"} }), 0, "env PATH changed /bin -> /usr/bin"},
		{"user", &base, mod(func(r *StepRecord) { r.User = "nobody" }), 0, "USER changed (none) -> nobody"},
		{"workdir", &base, mod(func(r *StepRecord) { r.Workdir = "/app" }), 0, "WORKDIR changed /src -> /app"},
		{"network", &base, mod(func(r *StepRecord) { r.Network = "none" }), 0, "network changed (none) -> none"},
		{"from stage", &base, mod(func(r *StepRecord) { r.FromKey, r.FromName = "s2", "build" }), 0, "source build changed"},
		{"parent", &base, mod(func(r *StepRecord) { r.Key = "k2" }), 7, "parent step 7 rebuilt"},
		{"pruned", &base, &base, 0, "cache entry missing (pruned?)"},
		{"base image", &StepRecord{Base: "busybox", BaseID: "image:sha256:ab12ab12ab12ab12ab12"},
			&StepRecord{Base: "busybox", BaseID: "image:sha256:cd34cd34cd34cd34cd34"}, 0,
			"base image busybox changed (sha256:ab12ab12ab12 -> sha256:cd34cd34cd34)"},
		{"base renamed", &StepRecord{Base: "busybox", BaseID: "image:sha256:1"}, &StepRecord{Base: "alpine", BaseID: "image:sha256:2"}, 0,
			"base image changed: busybox -> alpine"},
		{"base stage", &StepRecord{Base: "build", BaseID: "stage:k1"}, &StepRecord{Base: "build", BaseID: "stage:k2"}, 0, "stage build rebuilt"},
	}
	for _, tc := range tests {
		if got := Explain(tc.prev, tc.cur, tc.parent); got != tc.want {
			t.Errorf("%s: Explain = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestChangedFilesAndList(t *testing.T) {
	got := ChangedFiles(map[string]string{"a": "1", "b": "2"}, map[string]string{"a": "1", "b": "3", "c": "4"})
	if strings.Join(got, ",") != "b,c" {
		t.Errorf("ChangedFiles = %v", got)
	}
	names := []string{"g", "f", "e", "d", "c", "b", "a"}
	if l := list(names); l != "a, b, c, d, e, ... (2 more)" {
		t.Errorf("list = %q", l)
	}
}
