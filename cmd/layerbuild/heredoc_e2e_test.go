package main

import (
	"strings"
	"testing"
)

// TestHeredocRun covers the RUN heredoc forms with BuildKit's semantics: a lone heredoc is the shell's
// script, a shebang picks the interpreter, a heredoc after a command is that command's stdin, several
// heredocs feed several commands, <<- strips leading tabs, a quoted delimiter is not expanded.
func TestHeredocRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds several RUN steps")
	}
	e := newEnv(t)
	df := "FROM busybox\n" +
		"ENV WHO=world\n" +
		"RUN <<EOF\nset -e\necho \"hello $WHO\" > /script\necho second >> /script\nEOF\n" +
		"RUN <<EOF\n#!/bin/awk -f\nBEGIN { printf \"awk %d\\n\", 6*7 > \"/awk\" }\nEOF\n" +
		"RUN <<EOF\n#!/bin/sh -e\necho \"$0\" > /shebang\n[ ! -t 0 ]\nEOF\n" +
		"RUN cat > /stdin <<EOF\nvia stdin $WHO\nEOF\n" +
		"RUN cat <<A > /a && cat <<\"B\" > /b\nfirst $WHO\nA\nsecond $WHO\nB\n" +
		"RUN <<-EOF\n\techo tabs > /tabs\n\tEOF\n" +
		"RUN mkdir /nb && chown 65534 /nb\n" +
		"USER 65534\n" +
		"RUN <<EOF\n#!/bin/sh -e\nid -u > /nb/uid\nEOF\n"
	e.mustBuild(df, nil, "-t", "hd")
	fs := e.files("hd")
	want := map[string]string{
		"/script":  "hello world\nsecond\n",
		"/awk":     "awk 42\n",
		"/shebang": "/dev/pipes/EOF\n",
		"/stdin":   "via stdin world\n",
		"/a":       "first world\n",
		"/b":       "second $WHO\n",
		"/tabs":    "tabs\n",
		"/nb/uid":  "65534\n",
	}
	for p, w := range want {
		if got, ok := fs[p]; !ok || got.data != w {
			t.Errorf("%s = %q (present %v), want %q", p, got.data, ok, w)
		}
	}
	if _, ok := fs["/dev/pipes/EOF"]; ok {
		t.Errorf("the shebang script landed in the image")
	}
	// The heredoc content is part of the cache key: a rebuild is cached, a changed body is not.
	r := e.mustBuild(df, nil, "-t", "hd")
	if strings.Contains(r.stderr, "BUILT") {
		t.Errorf("an unchanged rebuild ran steps:\n%s", r.stderr)
	}
	df2 := strings.Replace(df, "via stdin", "changed", 1)
	e.mustBuild(df2, nil, "-t", "hd2")
	if got := e.files("hd2")["/stdin"].data; got != "changed world\n" {
		t.Errorf("changed heredoc body: /stdin = %q", got)
	}
}

// TestHeredocCopy: COPY heredocs get their names, mode 0644 (or --chmod), --chown, and BuildKit's
// expansion rule: an unquoted delimiter expands ARG/ENV (quotes kept), a quoted one does not.
func TestHeredocCopy(t *testing.T) {
	e := newEnv(t)
	df := "FROM busybox\n" +
		"ARG NAME=arg\n" +
		"ENV KIND=env\n" +
		"COPY <<EOF /etc/conf\nname=$NAME kind=\"$KIND\"\nEOF\n" +
		"COPY <<\"EOF\" /etc/raw\nname=$NAME\nEOF\n" +
		"COPY --chmod=0755 --chown=1:2 <<a.txt <<b.txt /dir/\nA\na.txt\nB\nb.txt\n"
	e.mustBuild(df, nil, "-t", "hc")
	fs := e.files("hc")
	check := func(p, data string, mode int64, uid, gid int) {
		t.Helper()
		f, ok := fs[p]
		if !ok {
			t.Errorf("%s missing", p)
			return
		}
		if f.data != data || f.hdr.Mode&0o7777 != mode || f.hdr.Uid != uid || f.hdr.Gid != gid {
			t.Errorf("%s = %q mode %o %d:%d, want %q mode %o %d:%d", p, f.data, f.hdr.Mode&0o7777, f.hdr.Uid,
				f.hdr.Gid, data, mode, uid, gid)
		}
	}
	check("/etc/conf", "name=arg kind=\"env\"\n", 0o644, 0, 0)
	check("/etc/raw", "name=$NAME\n", 0o644, 0, 0)
	check("/dir/a.txt", "A\n", 0o755, 1, 2)
	check("/dir/b.txt", "B\n", 0o755, 1, 2)
}

// TestHeredocUnterminated: a heredoc never closed is an error naming the Dockerfile and the line.
func TestHeredocUnterminated(t *testing.T) {
	e := newEnv(t)
	r := e.build("FROM busybox\nRUN true\nRUN cat <<EOF\nno end\n", nil)
	if r.code == 0 {
		t.Fatalf("build succeeded: %s", r)
	}
	if !strings.Contains(r.stderr, "Dockerfile") || !strings.Contains(r.stderr, ":3") {
		t.Errorf("error does not name the file and line 3: %s", r.stderr)
	}
}
