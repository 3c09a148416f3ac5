package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestConfigInstructions(t *testing.T) {
	e := newEnv(t)
	df := `FROM busybox AS base
CMD ["base-cmd"]
FROM base
MAINTAINER someone@example.com
LABEL a=1 "b c"="d e"
EXPOSE 80 53/udp 8000-8001
VOLUME /data
VOLUME ["/logs"]
ENTRYPOINT ["/bin/echo"]
STOPSIGNAL SIGQUIT
USER nobody:nogroup
SHELL ["/bin/sh", "-ec"]
CMD echo shell form
`
	e.mustBuild(df, nil, "-t", "cfg")
	c := e.config("cfg")
	cc := c.Config
	if c.Author != "someone@example.com" {
		t.Errorf("author %q", c.Author)
	}
	if cc.Labels["a"] != "1" || cc.Labels["b c"] != "d e" {
		t.Errorf("labels %v", cc.Labels)
	}
	for _, p := range []string{"80/tcp", "53/udp", "8000/tcp", "8001/tcp"} {
		if _, ok := cc.ExposedPorts[p]; !ok {
			t.Errorf("missing exposed port %s in %v", p, cc.ExposedPorts)
		}
	}
	if _, ok := cc.Volumes["/logs"]; !ok || len(cc.Volumes) != 2 {
		t.Errorf("volumes %v", cc.Volumes)
	}
	if !slices.Equal(cc.Entrypoint, []string{"/bin/echo"}) || cc.StopSignal != "SIGQUIT" || cc.User != "nobody:nogroup" {
		t.Errorf("entrypoint %v stopsignal %q user %q", cc.Entrypoint, cc.StopSignal, cc.User)
	}
	if !slices.Equal(cc.Cmd, []string{"/bin/sh", "-ec", "echo shell form"}) {
		t.Errorf("CMD in shell form should use SHELL: %v", cc.Cmd)
	}
	if !slices.Equal(cc.Shell, []string{"/bin/sh", "-ec"}) {
		t.Errorf("shell %v", cc.Shell)
	}

}

func TestEntrypointCmdReset(t *testing.T) {
	e := newEnv(t)
	e.mustBuild("FROM busybox\nCMD [\"base\"]\n", nil, "-t", "withcmd")
	e.mustBuild("FROM withcmd\nENTRYPOINT [\"top\"]\n", nil, "-t", "ep1")
	if c := e.config("ep1"); c.Config.Cmd != nil {
		t.Errorf("inherited CMD should be reset by ENTRYPOINT: %v", c.Config.Cmd)
	}
	e.mustBuild("FROM withcmd\nCMD [\"mine\"]\nENTRYPOINT [\"top\"]\n", nil, "-t", "ep2")
	if c := e.config("ep2"); !slices.Equal(c.Config.Cmd, []string{"mine"}) {
		t.Errorf("a CMD of the same stage survives ENTRYPOINT: %v", c.Config.Cmd)
	}
}

func TestArgScopesAndBuildArgs(t *testing.T) {
	e := newEnv(t)
	df := `ARG TAG=latest
ARG GLOBAL=g1
FROM busybox:${TAG}
ARG GLOBAL
ARG WITH_DEFAULT=dflt
ARG FROM_CLI
ARG UNSET
ENV FROM_ENV=${WITH_DEFAULT}-env
RUN echo "$GLOBAL|$WITH_DEFAULT|$FROM_CLI|${UNSET:-none}|$FROM_ENV" > /args.txt
`
	r := e.mustBuild(df, nil, "-t", "args", "--build-arg", "FROM_CLI=cli", "--build-arg", "WITH_DEFAULT=over",
		"--build-arg", "NOBODY_USES=1")
	if !strings.Contains(r.stderr, "warning: build-args not consumed by any ARG: NOBODY_USES") {
		t.Errorf("an unused build-arg is reported: %s", r.stderr)
	}
	if got := e.files("args")["/args.txt"].data; got != "g1|over|cli|none|over-env\n" {
		t.Errorf("args.txt = %q", got)
	}
	c := e.config("args")
	for _, kv := range c.Config.Env {
		if strings.HasPrefix(kv, "FROM_CLI=") || strings.HasPrefix(kv, "GLOBAL=") {
			t.Errorf("ARG values must not persist in the image env: %v", c.Config.Env)
		}
	}
	r = e.build(df, nil, "--build-arg", "TAG=nosuch")
	if r.code == 0 || !strings.Contains(r.stderr, "busybox:nosuch") || !strings.Contains(r.stderr, "not found") {
		t.Errorf("a FROM built from ARG should name the missing image: %s", r)
	}
}

func TestMultiStage(t *testing.T) {
	e := newEnv(t)
	df := `FROM busybox AS build
RUN mkdir /out && echo artifact > /out/bin && chown 7:7 /out/bin
FROM busybox AS never
RUN echo this stage must not run && exit 1
FROM scratch
COPY --from=build /out/bin /app/bin
COPY --from=0 /out /out2
COPY --from=busybox /bin/busybox /busybox
`
	r := e.mustBuild(df, nil, "-t", "ms")
	if strings.Contains(r.stderr, "must not run") {
		t.Error("a stage the target does not need ran")
	}
	f := e.files("ms")
	if f["/app/bin"].data != "artifact\n" || f["/out2/bin"].data != "artifact\n" {
		t.Errorf("COPY --from results: %q %q", f["/app/bin"].data, f["/out2/bin"].data)
	}
	if h := f["/app/bin"].hdr; h.Uid != 7 {
		t.Errorf("COPY --from keeps the owner: uid %d", h.Uid)
	}
	if _, ok := f["/busybox"]; !ok {
		t.Error("COPY --from=image failed")
	}
	if _, ok := f["/bin/sh"]; ok {
		t.Error("FROM scratch image holds /bin/sh")
	}
	// --target builds up to the named stage only.
	r = e.mustBuild(df, nil, "-t", "tg", "--target", "build")
	if !strings.Contains(r.stderr, "[2/2]") {
		t.Errorf("--target build should have 2 steps: %s", r.stderr)
	}
}

func TestDockerignoreExceptions(t *testing.T) {
	e := newEnv(t)
	files := map[string]string{
		".dockerignore": "logs\n!logs/keep.log\n**/*.tmp\n",
		"logs/a.log":    "a",
		"logs/keep.log": "keep",
		"src/x.tmp":     "tmp",
		"src/main.go":   "package main",
	}
	e.mustBuild("FROM busybox\nCOPY . /ctx/\n", files, "-t", "ign")
	f := e.files("ign")
	if f["/ctx/logs/keep.log"].data != "keep" || f["/ctx/src/main.go"].data == "" {
		t.Error("included files are missing")
	}
	for _, p := range []string{"/ctx/logs/a.log", "/ctx/src/x.tmp"} {
		if _, ok := f[p]; ok {
			t.Errorf("%s is excluded by .dockerignore", p)
		}
	}
}

func TestBareFormStdinDockerfileAndIidfile(t *testing.T) {
	e := newEnv(t)
	dir := writeContext(t, map[string]string{"custom.Dockerfile": "FROM busybox\nRUN echo bare > /bare\n"})
	iid := filepath.Join(t.TempDir(), "iid")
	e.must("-f", filepath.Join(dir, "custom.Dockerfile"), "-t", "me/api", "--iidfile", iid, dir)
	id, err := os.ReadFile(iid)
	if err != nil || !strings.HasPrefix(string(id), "sha256:") {
		t.Fatalf("iidfile %q %v", id, err)
	}
	if !strings.Contains(e.must("images"), "me/api") {
		t.Error("me/api not listed")
	}
	if got := e.config("docker.io/me/api:latest"); got == nil {
		t.Error("me/api should normalize to docker.io/me/api:latest")
	}
	r := e.run(strings.NewReader("FROM busybox\nRUN echo stdin > /s\n"), "build", "-q", "-f", "-", "-t", "fromstdin", dir)
	if r.code != 0 || !strings.HasPrefix(strings.TrimSpace(r.stdout), "sha256:") {
		t.Fatalf("-f - failed: %s", r)
	}
	if e.files("fromstdin")["/s"].data != "stdin\n" {
		t.Error("Dockerfile from stdin not used")
	}
}
