package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// snapshotStore lists every path under the store's image part (index.json and blobs) with its size.
func snapshotStore(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	for _, top := range []string{"index.json", "blobs"} {
		filepath.WalkDir(filepath.Join(root, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, _ := d.Info()
			rel, _ := filepath.Rel(root, p)
			data := ""
			if rel == "index.json" {
				b, _ := os.ReadFile(p)
				data = string(b)
			}
			out = append(out, rel+" "+fi.Mode().String()+" "+data)
			return nil
		})
	}
	sort.Strings(out)
	return out
}

func TestErrorsNameFileLineAndLeaveStoreAsItWas(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, df string
		want     []string
	}{
		{"syntax", "FROM busybox\nRUN echo ok\nBOGUS thing\n", []string{"Dockerfile:3", "unknown instruction"}},
		{"unknown base", "FROM nosuch/image:1\nRUN true\n", []string{"Dockerfile:1", "docker.io/nosuch/image:1", "not found"}},
		{"failing run", "FROM busybox\nRUN echo first line && echo second line >&2 && exit 7\n",
			[]string{"Dockerfile:2", "exit code: 7", "second line"}},
		{"failing after a good step", "FROM busybox\nRUN echo good > /g\nRUN false\n", []string{"Dockerfile:3", "exit code: 1"}},
		{"bad chown", "FROM busybox\nCOPY --chown=nouser Dockerfile /x\n", []string{"Dockerfile:2", "nouser"}},
		{"bad stopsignal", "FROM busybox\nSTOPSIGNAL SIGNOPE\n", []string{"Dockerfile:2", "invalid signal"}},
		{"missing command", "FROM busybox\nRUN [\"/no/such\"]\n", []string{"Dockerfile:2", "/no/such", "no such file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshotStore(t, e.root)
			r := e.build(tc.df, nil, "-t", "shouldnotexist")
			if r.code == 0 {
				t.Fatalf("build should fail: %s", r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
				t.Errorf("a Go stack reached the user:\n%s", r.stderr)
			}
			after := snapshotStore(t, e.root)
			if strings.Join(before, "\n") != strings.Join(after, "\n") {
				t.Errorf("a failed build changed the store")
			}
			if r := e.run(nil, "history", "shouldnotexist"); r.code == 0 {
				t.Error("a failed build left a tag")
			}
		})
	}
	// The store still works after all those failures.
	e.mustBuild("FROM busybox\nRUN echo fine > /f\n", nil, "-t", "fine")
}
