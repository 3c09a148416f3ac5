package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRunSandboxThroughBuild(t *testing.T) {
	e := newEnv(t)
	marker := filepath.Join(t.TempDir(), "host-marker")
	if err := os.WriteFile(marker, []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	df := `FROM busybox
RUN grep -E '^(NoNewPrivs|CapBnd)' /proc/self/status > /status.txt \
 && hostname > /hostname.txt && echo $$ > /pid.txt \
 && (test -e ` + marker + ` && echo visible || echo invisible) > /marker.txt \
 && ls /proc/self/fd | sort -n | tr '\n' ' ' > /fds.txt \
 && (grep -q localhost /etc/hosts && echo hosts-ok) > /hosts.txt
RUN --network=none cat /proc/net/dev | awk -F: 'NR>2 {gsub(/ /, "", $1); print $1}' > /netdev.txt
HEALTHCHECK --interval=5s CMD true
ONBUILD RUN echo later
`
	e.mustBuild(df, nil, "-t", "sb")
	f := e.files("sb")
	if s := f["/status.txt"].data; !strings.Contains(s, "NoNewPrivs:\t1") || !strings.Contains(s, "CapBnd:\t00000000a80425fb") {
		t.Errorf("RUN should have no_new_privs and docker's capabilities: %q", s)
	}
	if got := strings.TrimSpace(f["/pid.txt"].data); got == "" || len(got) > 1 {
		t.Errorf("RUN's shell should be a low pid in its own pid namespace, got %q", got)
	}
	if got := f["/marker.txt"].data; got != "invisible\n" {
		t.Errorf("the host's files must be invisible: %q", got)
	}
	if got := f["/fds.txt"].data; got != "0 1 2 3 " {
		t.Errorf("only stdio (and ls's own dir fd) may be open: %q", got)
	}
	if f["/hosts.txt"].data != "hosts-ok\n" || strings.TrimSpace(f["/hostname.txt"].data) == "" {
		t.Errorf("/etc/hosts and hostname are provided: %q %q", f["/hosts.txt"].data, f["/hostname.txt"].data)
	}
	if got := strings.Fields(f["/netdev.txt"].data); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("RUN --network=none sees only loopback: %v", got)
	}
	// The generated /etc/hosts never lands in a layer (busybox has none).
	if _, ok := f["/etc/hosts"]; ok {
		t.Error("/etc/hosts leaked into the image")
	}
	cfg := e.config("sb")
	if cfg.Config.Healthcheck == nil || !slices.Equal(cfg.Config.Healthcheck.Test, []string{"CMD-SHELL", "true"}) ||
		cfg.Config.Healthcheck.Interval.Seconds() != 5 {
		t.Errorf("healthcheck %+v", cfg.Config.Healthcheck)
	}
	if !slices.Equal(cfg.Config.OnBuild, []string{"RUN echo later"}) {
		t.Errorf("onbuild %v", cfg.Config.OnBuild)
	}

	// --network none on the command line applies to every RUN.
	e.mustBuild("FROM busybox\nRUN cat /proc/net/dev | tail -n +3 | wc -l > /n\n", nil, "-t", "nn", "--network", "none")
	if got := strings.TrimSpace(e.files("nn")["/n"].data); got != "1" {
		t.Errorf("--network none: %s interfaces", got)
	}
}
