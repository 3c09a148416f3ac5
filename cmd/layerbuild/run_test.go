package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/layerbuild/layerbuild/sandbox"
)

func TestResolveCommand(t *testing.T) {
	img := v1.Config{Entrypoint: []string{"/ep", "-x"}, Cmd: []string{"c1", "c2"}}
	cmdOnly := v1.Config{Cmd: []string{"sh", "-c", "echo hi"}}
	cases := []struct {
		name     string
		cfg      v1.Config
		epSet    bool
		ep       string
		args     []string
		want     []string
		wantFail bool
	}{
		{"entrypoint + cmd", img, false, "", nil, []string{"/ep", "-x", "c1", "c2"}, false},
		{"args replace cmd", img, false, "", []string{"a"}, []string{"/ep", "-x", "a"}, false},
		{"cmd only", cmdOnly, false, "", nil, []string{"sh", "-c", "echo hi"}, false},
		{"args replace cmd only", cmdOnly, false, "", []string{"ls", "/"}, []string{"ls", "/"}, false},
		{"--entrypoint drops cmd", img, true, "echo", nil, []string{"echo"}, false},
		{"--entrypoint with args", img, true, "echo", []string{"x", "y"}, []string{"echo", "x", "y"}, false},
		{"--entrypoint '' with args", img, true, "", []string{"id"}, []string{"id"}, false},
		{"--entrypoint '' alone", img, true, "", nil, nil, true},
		{"nothing at all", v1.Config{}, false, "", nil, nil, true},
	}
	for _, c := range cases {
		got, err := resolveCommand(c.cfg, c.epSet, c.ep, c.args)
		if (err != nil) != c.wantFail || !slices.Equal(got, c.want) {
			t.Errorf("%s: got %q, %v; want %q (fail %v)", c.name, got, err, c.want, c.wantFail)
		}
	}
	if !slices.Equal(img.Cmd, []string{"c1", "c2"}) || !slices.Equal(img.Entrypoint, []string{"/ep", "-x"}) {
		t.Error("resolveCommand changed the image config")
	}
}

func TestRunEnv(t *testing.T) {
	f := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(f, []byte("# comment\n\nA=from-file\r\n  B=2\nFROMHOST\nUNSET_ONE\nEQ=a=b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lookup := func(k string) (string, bool) {
		if k == "FROMHOST" {
			return "h", true
		}
		return "", false
	}
	got, err := runEnv([]string{"A=from-e", "C=", "FROMHOST"}, []string{f}, lookup)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A=from-file", "B=2", "FROMHOST=h", "EQ=a=b", "A=from-e", "C=", "FROMHOST=h"}
	if !slices.Equal(got, want) {
		t.Errorf("runEnv = %q, want %q", got, want)
	}
	merged := mergeEnv(withPath([]string{"A=img", "HOME=/x"}), got)
	wantMerged := []string{"A=from-e", "HOME=/x", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "B=2", "FROMHOST=h", "EQ=a=b", "C="}
	if !slices.Equal(merged, wantMerged) {
		t.Errorf("mergeEnv = %q, want %q", merged, wantMerged)
	}
	if p := withPath([]string{"PATH=/bin"}); !slices.Equal(p, []string{"PATH=/bin"}) {
		t.Errorf("withPath kept no PATH: %q", p)
	}
	if _, err := runEnv([]string{"=x"}, nil, lookup); err == nil {
		t.Error("an empty key was accepted")
	}
	if _, err := runEnv(nil, []string{filepath.Join(t.TempDir(), "nope")}, lookup); err == nil {
		t.Error("a missing --env-file was accepted")
	}
}

func TestPsColumns(t *testing.T) {
	now := time.Now()
	up := &sandbox.Container{Status: sandbox.StatusRunning, Started: now.Add(-3 * time.Second),
		Config: sandbox.ContainerConfig{Ports: []sandbox.PortMapping{{HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 5000, Proto: "tcp"},
			{HostIP: "0.0.0.0", HostPort: 81, ContainerPort: 80, Proto: "tcp"}}}}
	if s := psStatus(up, now); s != "Up 3 seconds" {
		t.Errorf("running: %q", s)
	}
	if s := psPorts(up); s != "127.0.0.1:8080->5000/tcp, 0.0.0.0:81->80/tcp" {
		t.Errorf("ports: %q", s)
	}
	exited := &sandbox.Container{Status: sandbox.StatusExited, ExitCode: 137, Finished: now.Add(-5 * time.Second), Config: up.Config}
	if s := psStatus(exited, now); s != "Exited (137) 5 seconds ago" {
		t.Errorf("exited: %q", s)
	}
	if s := psPorts(exited); s != "" {
		t.Errorf("a stopped container publishes nothing: %q", s)
	}
	if s := psStatus(&sandbox.Container{Status: sandbox.StatusCreated}, now); s != "Created" {
		t.Errorf("created: %q", s)
	}
	if s := psCommand([]string{"sh", "-c", "exec httpd -f -v -p 8080"}, false); s != `"sh -c exec httpd -f…"` {
		t.Errorf("command: %s", s)
	}
	if s := psCommand([]string{"true"}, false); s != `"true"` {
		t.Errorf("command: %s", s)
	}
}
