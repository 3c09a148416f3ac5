package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		errWant string // "" means no error
	}{
		{"zero", sh("exit 0"), 0, ""},
		{"three", sh("exit 3"), 3, ""},
		{"killed", sh("kill -9 $$"), 137, ""},
		{"terminated", sh("kill -TERM $$; sleep 5"), 143, ""},
		{"missing in PATH", []string{"nonexistent-cmd"}, 127, `exec: "nonexistent-cmd": executable file not found in $PATH`},
		{"missing absolute", []string{"/no/such/file"}, 127, "no such file or directory"},
		{"not executable", []string{"/etc/passwd"}, 126, "permission denied"},
		{"shell not found", sh("nonexistent-cmd"), 127, ""},
		{"missing interpreter", []string{"/script"}, 127, "interpreter is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rootfs := newRootfs(t)
			mustWrite(t, filepath.Join(rootfs, "script"), "#!/no/such/shell\necho hi\n", 0o755)
			r := runBox(t, Spec{Rootfs: rootfs, Args: tc.args})
			if r.code != tc.code {
				t.Errorf("code = %d, want %d (err %v, stderr %q)", r.code, tc.code, r.err, r.stderr)
			}
			switch {
			case tc.errWant == "" && r.err != nil:
				t.Errorf("unexpected error: %v", r.err)
			case tc.errWant != "" && (r.err == nil || !strings.Contains(r.err.Error(), tc.errWant)):
				t.Errorf("err = %v, want it to contain %q", r.err, tc.errWant)
			}
			if strings.Contains(r.stderr, "goroutine ") {
				t.Errorf("Go stack on stderr: %s", r.stderr)
			}
		})
	}
}

func TestEnvCwdStdin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		spec  Spec
		want  string
		check func(t *testing.T, rootfs string)
	}{
		{"env", Spec{Args: sh(`echo "$FOO|$BAR"`), Env: []string{"FOO=bar", "BAR=a b"}}, "bar|a b", nil},
		{"big env", Spec{Args: sh(`echo ${#BIG}`), Env: []string{"BIG=" + strings.Repeat("x", 100000)}}, "100000", nil},
		{"default PATH", Spec{Args: sh(`echo $PATH`)}, DefaultPath, nil},
		{"own PATH finds argv0", Spec{Args: []string{"tool"}, Env: []string{"PATH=/opt/tools"}}, "from tool", nil},
		{"PATH kept", Spec{Args: sh(`echo $PATH`), Env: []string{"PATH=/bin:/x"}}, "/bin:/x", nil},
		{"HOME root", Spec{Args: sh(`echo $HOME`)}, "/root", nil},
		{"HOME kept", Spec{Args: sh(`echo $HOME`), Env: []string{"HOME=/h"}}, "/h", nil},
		{"only given env", Spec{Args: []string{"env"}, Env: []string{"A=1"}}, "A=1\nPATH=" + DefaultPath + "\nHOME=/root", nil},
		{"default cwd", Spec{Args: []string{"pwd"}}, "/", nil},
		{"existing cwd", Spec{Args: []string{"pwd"}, Cwd: "/etc"}, "/etc", nil},
		{"created cwd", Spec{Args: sh(`pwd; stat -c %u:%g .`), Cwd: "/work/app", User: "nobody"}, "/work/app\n65534:65534",
			func(t *testing.T, rootfs string) {
				fi, err := os.Stat(filepath.Join(rootfs, "work/app"))
				if err != nil || !fi.IsDir() {
					t.Fatalf("workdir not kept in the rootfs: %v", err)
				}
			}},
		{"relative argv0 from cwd", Spec{Args: []string{"./tool"}, Cwd: "/opt/tools"}, "from tool", nil},
		{"stdin", Spec{Args: []string{"cat"}, Stdin: strings.NewReader("hello\nworld\n")}, "hello\nworld", nil},
		{"nil stdin is empty", Spec{Args: sh(`cat; echo end`)}, "end", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rootfs := newRootfs(t)
			mustMkdir(t, filepath.Join(rootfs, "opt/tools"))
			mustWrite(t, filepath.Join(rootfs, "opt/tools/tool"), "#!/bin/sh\necho from tool\n", 0o755)
			tc.spec.Rootfs = rootfs
			r := runBox(t, tc.spec).ok(t)
			if got := strings.TrimSpace(r.stdout); got != tc.want {
				t.Errorf("stdout = %q, want %q", got, tc.want)
			}
			if tc.check != nil {
				tc.check(t, rootfs)
			}
		})
	}
}

func TestUser(t *testing.T) {
	t.Parallel()
	script := sh(`echo "$(id -u) $(id -g) $(id -G) $HOME"`)
	for _, tc := range []struct {
		user, want, errWant string
	}{
		{"", "0 0 0 /root", ""},
		{"root", "0 0 0 /root", ""},
		{"nobody", "65534 65534 65534 /nonexistent", ""},
		{"alice", "1000 1000 1000 10 100 /home/alice", ""},
		{"alice:users", "1000 100 100 /home/alice", ""},
		{"1000", "1000 1000 1000 10 100 /home/alice", ""},
		{"1234", "1234 0 0 /", ""},
		{"1234:5678", "1234 5678 5678 /", ""},
		{"nobody:0", "65534 0 0 /nonexistent", ""},
		{"nobody2", "", "unable to find user nobody2: no matching entries in passwd file"},
		{"alice:nogroup2", "", "unable to find group nogroup2"},
	} {
		t.Run(tc.user, func(t *testing.T) {
			t.Parallel()
			r := runBox(t, Spec{Args: script, User: tc.user})
			if tc.errWant != "" {
				if r.err == nil || !strings.Contains(r.err.Error(), tc.errWant) {
					t.Fatalf("err = %v, want %q", r.err, tc.errWant)
				}
				if r.stdout != "" {
					t.Errorf("the command ran: %q", r.stdout)
				}
				return
			}
			r.ok(t)
			if got := strings.TrimSpace(r.stdout); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestContextCancelKills(t *testing.T) {
	t.Parallel()
	rootfs := newRootfs(t)
	marker := "7" + strconv.Itoa(os.Getpid()%100000) + "3" // an argument no host process has
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	// A background child of a setsid'd grandchild: everything must die with the pid namespace.
	code, err := Run(ctx, Spec{Rootfs: rootfs, Args: sh("setsid sleep " + marker + " & sleep " + marker)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v (code %d), want the context's error", err, code)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Run took %v after cancel", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := hostProcsWithArg(t, marker)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes survived the sandbox: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hostProcsWithArg(t *testing.T, arg string) []string {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var found []string
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		for _, a := range strings.Split(string(b), "\x00") {
			if a == arg {
				found = append(found, d+": "+strings.ReplaceAll(string(b), "\x00", " "))
			}
		}
	}
	return found
}

func TestSetupErrors(t *testing.T) {
	t.Parallel()
	rootfs := newRootfs(t)
	for _, tc := range []struct {
		name    string
		spec    Spec
		errWant string
	}{
		{"no rootfs", Spec{Rootfs: filepath.Join(rootfs, "missing"), Args: []string{"true"}}, "rootfs"},
		{"no args", Spec{Rootfs: rootfs}, "no command"},
		{"bad network", Spec{Rootfs: rootfs, Args: []string{"true"}, Network: "bridge"}, "unknown network mode bridge"},
		{"cwd is a file", Spec{Rootfs: rootfs, Args: []string{"true"}, Cwd: "/etc/passwd"}, "/etc/passwd is not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runBox(t, tc.spec)
			if r.err == nil || !strings.Contains(r.err.Error(), tc.errWant) {
				t.Fatalf("err = %v, want %q", r.err, tc.errWant)
			}
			if r.code != -1 {
				t.Errorf("code = %d, want -1", r.code)
			}
			if r.stderr != "" {
				t.Errorf("stderr = %q, want nothing (errors come back through Run)", r.stderr)
			}
		})
	}
}
