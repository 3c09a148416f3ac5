package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// End-to-end tests of `layerbuild run`, ps, logs, stop and rm.

// mountsUnder lists the mount points of this (the host's) mount namespace inside the store.
func (e *env) mountsUnder() []string {
	e.t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], e.root) {
			out = append(out, f[4])
		}
	}
	return out
}

// containerDirs lists ROOT/containers/<id> (dot files aside).
func (e *env) containerDirs() []string {
	e.t.Helper()
	ents, err := os.ReadDir(filepath.Join(e.root, "containers"))
	if err != nil && !os.IsNotExist(err) {
		e.t.Fatal(err)
	}
	var out []string
	for _, d := range ents {
		if !strings.HasPrefix(d.Name(), ".") {
			out = append(out, d.Name())
		}
	}
	return out
}

type ctrState struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Status   string `json:"status"`
	ExitCode int    `json:"exit_code"`
	Created  time.Time
	Started  time.Time
	Finished time.Time
	Monitor  int `json:"monitor_pid"`
	Init     int `json:"init_pid"`
	// Limits (--memory, --pids-limit, --cpus).
	OOMKilled bool     `json:"oom_killed"`
	Cgroups   []string `json:"cgroups"`
	Config    struct {
		Image string   `json:"image"`
		Args  []string `json:"args"`
	} `json:"config"`
}

func (e *env) state(id string) ctrState {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.root, "containers", id, "state.json"))
	if err != nil {
		e.t.Fatal(err)
	}
	var s ctrState
	if err := json.Unmarshal(b, &s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// psLine returns the `ps -a` row of the container called name ("" when there is none).
func (e *env) psLine(name string) string {
	e.t.Helper()
	for _, l := range strings.Split(e.must("ps", "-a"), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[len(f)-1] == name {
			return l
		}
	}
	return ""
}

// ctrProcesses counts the processes whose command line contains marker.
func ctrProcesses(marker string) int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if bytes.Contains(b, []byte(marker)) {
			n++
		}
	}
	return n
}

func ctrWaitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removeContainersAtEnd makes sure a failing test leaves no container running.
func (e *env) removeContainersAtEnd() {
	e.t.Cleanup(func() {
		for _, id := range e.containerDirs() {
			e.run(nil, "rm", "-f", id)
		}
	})
}

// start starts layerbuild in the background.
func (e *env) start(args ...string) (*exec.Cmd, *bytes.Buffer) {
	e.t.Helper()
	cmd := exec.Command(lbBin, args...)
	cmd.Env = append(os.Environ(), "LAYERBUILD_ROOT="+e.root)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, &out
}

func TestRunExitCodes(t *testing.T) {
	e := newEnv(t)
	e.removeContainersAtEnd()
	cases := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"busybox", "echo", "hello"}, 0, "hello\n", ""},
		{[]string{"busybox", "sh", "-c", "echo out; echo err >&2; exit 3"}, 3, "out\n", "err\n"},
		{[]string{"busybox", "sh", "-c", "kill -9 $$"}, 137, "", ""},
		{[]string{"busybox", "sh", "-c", "kill -TERM $$"}, 143, "", ""},
		{[]string{"nosuch:image", "true"}, 125, "", "unable to find image"},
		{[]string{"busybox", "nosuchcommand"}, 127, "", "executable file not found"},
		{[]string{"busybox", "/etc/passwd"}, 126, "", "permission denied"},
		{[]string{"--network", "bogus", "busybox", "true"}, 125, "", "--network"},
		{[]string{"--bogus-flag", "busybox", "true"}, 125, "", "unknown flag"},
		{[]string{"-w", "relative", "busybox", "true"}, 125, "", "absolute"},
		{[]string{"-p", "8080", "busybox", "true"}, 125, "", "invalid port spec"},
	}
	for _, c := range cases {
		r := e.run(nil, append([]string{"run", "--rm"}, c.args...)...)
		if r.code != c.code || (c.stdout != "" && r.stdout != c.stdout) || !strings.Contains(r.stderr, c.stderr) {
			t.Errorf("run %v: want exit %d, stdout %q, stderr with %q; got %s", c.args, c.code, c.stdout, c.stderr, r)
		}
	}
	// -i passes stdin on; without it the container reads /dev/null.
	if r := e.run(strings.NewReader("piped\n"), "run", "--rm", "-i", "busybox", "cat"); r.stdout != "piped\n" {
		t.Errorf("-i: %s", r)
	}
	if r := e.run(strings.NewReader("piped\n"), "run", "--rm", "busybox", "cat"); r.code != 0 || r.stdout != "" {
		t.Errorf("no -i: %s", r)
	}
	if d := e.containerDirs(); len(d) != 0 {
		t.Errorf("--rm left containers: %v", d)
	}
	if m := e.mountsUnder(); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
}

func TestRunImageConfigRules(t *testing.T) {
	e := newEnv(t)
	e.removeContainersAtEnd()
	e.mustBuild(`FROM busybox
ENV FOO=image BAR=image-bar
WORKDIR /srv/app
USER nobody
ENTRYPOINT ["echo", "ep"]
CMD ["c1", "c2"]
`, nil, "-t", "rules")
	e.mustBuild("FROM busybox\nCMD [\"sh\", \"-c\", \"echo from-cmd\"]\n", nil, "-t", "cmdonly")
	envFile := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(envFile, []byte("# settings\nFILE_VAR=from file\nBAR=file-bar\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOST_VAR", "from host")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"rules"}, "ep c1 c2"},
		{[]string{"rules", "a", "b"}, "ep a b"},
		{[]string{"--entrypoint", "echo", "rules"}, ""},
		{[]string{"--entrypoint", "echo", "rules", "x"}, "x"},
		{[]string{"cmdonly"}, "from-cmd"},
		{[]string{"cmdonly", "echo", "replaced"}, "replaced"},
		{[]string{"--entrypoint", "", "rules", "id", "-u"}, "65534"},
		{[]string{"--entrypoint", "id", "-u", "0", "rules", "-u"}, "0"},
		{[]string{"--entrypoint", "id", "-u", "1000:1000", "rules"}, "uid=1000 gid=1000"},
		{[]string{"--entrypoint", "pwd", "rules"}, "/srv/app"},
		{[]string{"--entrypoint", "pwd", "-w", "/made/here", "rules"}, "/made/here"},
		{[]string{"--entrypoint", "hostname", "--hostname", "box1", "rules"}, "box1"},
		{[]string{"--entrypoint", "sh", "-e", "FOO=cli", "-e", "HOST_VAR", "-e", "UNSET_VAR_X", "--env-file", envFile, "rules",
			"-c", `echo "$FOO|$BAR|$FILE_VAR|$HOST_VAR|${UNSET_VAR_X-unset}|$PATH|$HOME"`},
			"cli|file-bar|from file|from host|unset|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/nonexistent"},
		// private (the default) and none: only loopback; host: the host's interfaces.
		{[]string{"--entrypoint", "sh", "rules", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"}, "lo"},
		{[]string{"--entrypoint", "sh", "--network", "none", "rules", "-c", "tail -n +3 /proc/net/dev | wc -l"}, "1"},
	}
	for _, c := range cases {
		r := e.run(nil, append([]string{"run", "--rm"}, c.args...)...)
		if r.code != 0 || strings.TrimSpace(r.stdout) != c.want {
			t.Errorf("run %q: want %q, got %s", c.args, c.want, r)
		}
	}
	hostIfs, _ := os.ReadFile("/proc/net/dev")
	r := e.run(nil, "run", "--rm", "--network", "host", "--entrypoint", "cat", "rules", "/proc/net/dev")
	if r.code != 0 || strings.Count(r.stdout, "\n") != strings.Count(string(hostIfs), "\n") {
		t.Errorf("--network host should see the host's interfaces:\n%s\nhost:\n%s", r, hostIfs)
	}
	// The container is isolated as a RUN step is: no_new_privs, docker's capabilities, own pid namespace.
	r = e.run(nil, "run", "--rm", "busybox", "sh", "-c", "grep -E '^(NoNewPrivs|CapBnd)' /proc/self/status; echo $$; ls /proc | grep -c '^[0-9]'")
	if !strings.Contains(r.stdout, "NoNewPrivs:\t1") || !strings.Contains(r.stdout, "CapBnd:\t00000000a80425fb") ||
		!strings.Contains(r.stdout, "\n2\n") {
		t.Errorf("isolation: %s", r)
	}
}

func TestRunKeepsOrRemovesContainer(t *testing.T) {
	e := newEnv(t)
	e.removeContainersAtEnd()
	r := e.run(nil, "run", "--name", "kept", "busybox", "sh", "-c", "echo data > /newfile; exit 4")
	if r.code != 4 {
		t.Fatalf("%s", r)
	}
	dirs := e.containerDirs()
	if len(dirs) != 1 {
		t.Fatalf("containers: %v", dirs)
	}
	st := e.state(dirs[0])
	if st.ID != dirs[0] || st.Name != "kept" || st.Status != "exited" || st.ExitCode != 4 || st.Config.Image != "busybox" ||
		strings.Join(st.Config.Args, " ") != "sh -c echo data > /newfile; exit 4" ||
		st.Created.IsZero() || st.Started.Before(st.Created) || st.Finished.Before(st.Started) {
		t.Errorf("state: %+v", st)
	}
	// The writable layer is kept with the container, and the image is untouched.
	if b, err := os.ReadFile(filepath.Join(e.root, "containers", dirs[0], "upper", "newfile")); err != nil || string(b) != "data\n" {
		t.Errorf("upper dir: %q %v", b, err)
	}
	if r := e.run(nil, "run", "--rm", "busybox", "cat", "/newfile"); r.code == 0 {
		t.Errorf("a container's change leaked into the image: %s", r)
	}
	if l := e.psLine("kept"); !strings.Contains(l, "Exited (4)") || !strings.HasPrefix(l, dirs[0][:12]) {
		t.Errorf("ps -a: %q", l)
	}
	if out := e.must("ps"); strings.Contains(out, "kept") {
		t.Errorf("ps lists a stopped container:\n%s", out)
	}
	// The name is taken until the container is removed.
	if r := e.run(nil, "run", "--name", "kept", "busybox", "true"); r.code != 125 || !strings.Contains(r.stderr, "already in use") {
		t.Errorf("name reuse: %s", r)
	}
	// rm by ID prefix; then rm falls back to images (rmi removes images only).
	if out := e.must("rm", dirs[0][:5]); strings.TrimSpace(out) != dirs[0][:5] {
		t.Errorf("rm output %q", out)
	}
	if d := e.containerDirs(); len(d) != 0 {
		t.Errorf("rm left %v", d)
	}
	e.must("tag", "busybox", "extra:1")
	if out := e.must("rm", "extra:1"); !strings.Contains(out, "Untagged") {
		t.Errorf("rm of an image: %q", out)
	}
	e.must("tag", "busybox", "extra:2")
	if out := e.must("rmi", "extra:2"); !strings.Contains(out, "Untagged") {
		t.Errorf("rmi: %q", out)
	}
	if m := e.mountsUnder(); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
}

func TestRunDetached(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: detached containers, stop timeouts")
	}
	e := newEnv(t)
	e.removeContainersAtEnd()
	id := strings.TrimSpace(e.must("run", "-d", "--name", "bg", "busybox", "sh", "-c",
		"echo started; echo to-stderr >&2; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"))
	if len(id) != 64 {
		t.Fatalf("run -d printed %q", id)
	}
	ctrWaitFor(t, "output in the log", 5*time.Second, func() bool { return strings.Contains(e.must("logs", "bg"), "tick 2") })
	logs := e.must("logs", id[:12])
	if !strings.HasPrefix(logs, "started\n") || !strings.Contains(logs, "to-stderr\n") {
		t.Errorf("logs: %q", logs)
	}
	line := e.psLine("bg")
	if !strings.HasPrefix(line, id[:12]) || !strings.Contains(line, "busybox") || !strings.Contains(line, "Up ") ||
		!strings.Contains(line, `"sh -c echo started;…"`) {
		t.Errorf("ps: %q", line)
	}
	if out := e.must("ps", "-q"); strings.TrimSpace(out) != id[:12] {
		t.Errorf("ps -q: %q", out)
	}
	if r := e.run(nil, "rm", "bg"); r.code == 0 || !strings.Contains(r.stderr, "running") {
		t.Errorf("rm of a running container: %s", r)
	}
	// logs -f follows until the container stops.
	follow, followOut := e.start("logs", "-f", "bg")
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if out := e.must("stop", "bg"); strings.TrimSpace(out) != "bg" {
		t.Errorf("stop printed %q", out)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop took %v for a container that ends on SIGTERM", d)
	}
	done := make(chan error, 1)
	go func() { done <- follow.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("logs -f did not end with the container")
	}
	if !strings.Contains(followOut.String(), "tick") {
		t.Errorf("logs -f printed %q", followOut.String())
	}
	if l := e.psLine("bg"); !strings.Contains(l, "Exited (143)") {
		t.Errorf("after stop: %q", l)
	}
	if st := e.state(id); st.Status != "exited" || st.ExitCode != 143 {
		t.Errorf("state after stop: %+v", st)
	}
	e.must("stop", "bg") // stopping a stopped container is fine

	// A command that ignores SIGTERM is killed after -t: 137.
	e.must("run", "-d", "--name", "stubborn", "busybox", "sh", "-c", "trap '' TERM; while true; do sleep 0.1; done")
	start = time.Now()
	e.must("stop", "-t", "1", "stubborn")
	if d := time.Since(start); d < time.Second || d > 6*time.Second {
		t.Errorf("stop -t 1 took %v", d)
	}
	if l := e.psLine("stubborn"); !strings.Contains(l, "Exited (137)") {
		t.Errorf("after stop -t 1: %q", l)
	}
	// The image's STOPSIGNAL is used.
	e.mustBuild("FROM busybox\nSTOPSIGNAL SIGUSR1\n", nil, "-t", "usr1")
	e.must("run", "-d", "--name", "usr1", "usr1", "sh", "-c", "trap 'echo got USR1; exit 9' USR1; while true; do sleep 0.1; done")
	time.Sleep(200 * time.Millisecond)
	e.must("stop", "usr1")
	if l := e.psLine("usr1"); !strings.Contains(l, "Exited (9)") || !strings.Contains(e.must("logs", "usr1"), "got USR1") {
		t.Errorf("STOPSIGNAL: %q, logs %q", l, e.must("logs", "usr1"))
	}
	// rm -f kills a running one; --rm -d removes itself on exit.
	e.must("run", "-d", "--name", "forced", "busybox", "sleep", "1000")
	e.must("rm", "-f", "forced")
	e.must("run", "-d", "--rm", "--name", "selfrm", "busybox", "sh", "-c", "sleep 0.2")
	ctrWaitFor(t, "the --rm container to go", 5*time.Second, func() bool { return e.psLine("selfrm") == "" })
	e.must("rm", "bg", "stubborn", "usr1")
	if d := e.containerDirs(); len(d) != 0 {
		t.Errorf("containers left: %v", d)
	}
	if m := e.mountsUnder(); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
}

// ctrFreePort returns a TCP port nobody listens on (now).
func ctrFreePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func ctrHTTPGet(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("status %s", resp.Status)
	}
	return string(b), err
}

func TestRunPublishTwoContainersSameInnerPort(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: two detached web servers")
	}
	e := newEnv(t)
	e.removeContainersAtEnd()
	p1, p2 := ctrFreePort(t), ctrFreePort(t)
	for i, p := range []int{p1, p2} {
		e.must("run", "-d", "--name", fmt.Sprintf("web%d", i+1), "-p", fmt.Sprintf("%d:5000", p), "busybox", "sh", "-c",
			fmt.Sprintf("mkdir /www && echo 'site %d' > /www/index.html && exec httpd -f -p 5000 -h /www", i+1))
	}
	for i, p := range []int{p1, p2} {
		url := fmt.Sprintf("http://127.0.0.1:%d/", p)
		var body string
		var err error
		ctrWaitFor(t, url, 5*time.Second, func() bool { body, err = ctrHTTPGet(url); return err == nil })
		if want := fmt.Sprintf("site %d\n", i+1); body != want {
			t.Errorf("%s: %q, want %q", url, body, want)
		}
	}
	if l := e.psLine("web1"); !strings.Contains(l, fmt.Sprintf("127.0.0.1:%d->5000/tcp", p1)) {
		t.Errorf("ps: %q", l)
	}
	// The forwarder binds 127.0.0.1 only, unless an IP is given.
	if addrs, _ := net.InterfaceAddrs(); len(addrs) > 0 {
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLoopback() || ipn.IP.To4() == nil {
				continue
			}
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(ipn.IP.String(), strconv.Itoa(p1)), time.Second); err == nil {
				c.Close()
				t.Errorf("port %d is reachable on %s", p1, ipn.IP)
			}
			break
		}
	}
	// A host port that is taken fails the run (125), and nothing is left of it.
	if r := e.run(nil, "run", "--rm", "-p", fmt.Sprintf("%d:80", p1), "busybox", "true"); r.code != 125 || !strings.Contains(r.stderr, "address already in use") {
		t.Errorf("taken port: %s", r)
	}
	// A container reaches another through its published port (with --network host, as the seed's
	// API-to-database set-up does until containers share a network).
	r := e.run(nil, "run", "--rm", "--network", "host", "busybox", "wget", "-q", "-O", "-", fmt.Sprintf("http://127.0.0.1:%d/", p2))
	if r.code != 0 || r.stdout != "site 2\n" {
		t.Errorf("container to container: %s", r)
	}
	e.must("stop", "-t", "2", "web1", "web2")
	if _, err := ctrHTTPGet(fmt.Sprintf("http://127.0.0.1:%d/", p1)); err == nil {
		t.Error("the forwarder outlived its container")
	}
	// The port is free again.
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p1))
	if err != nil {
		t.Errorf("port %d still held: %v", p1, err)
	} else {
		l.Close()
	}
	e.must("rm", "web1", "web2")
	if m := e.mountsUnder(); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
}

func TestRunSurvivesKilledCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: kills layerbuild processes")
	}
	e := newEnv(t)
	e.removeContainersAtEnd()
	marker := strconv.Itoa(100000 + os.Getpid()%100000) // busybox sleep's argument, to find its process
	// A detached container outlives a SIGKILLed layerbuild (here `logs -f`, attached to it).
	e.must("run", "-d", "--name", "bg", "busybox", "sleep", marker)
	follow, _ := e.start("logs", "-f", "bg")
	time.Sleep(200 * time.Millisecond)
	_ = follow.Process.Signal(syscall.SIGKILL)
	_ = follow.Wait()
	if l := e.psLine("bg"); !strings.Contains(l, "Up ") {
		t.Errorf("after kill -9 of logs -f: %q", l)
	}

	// A foreground run killed with SIGKILL takes its container with it; ps then says so.
	fg, _ := e.start("run", "--name", "fg", "busybox", "sleep", marker)
	ctrWaitFor(t, "the foreground container", 5*time.Second, func() bool { return strings.Contains(e.psLine("fg"), "Up ") })
	_ = fg.Process.Signal(syscall.SIGKILL)
	_ = fg.Wait()
	ctrWaitFor(t, "ps to see the foreground container dead", 5*time.Second, func() bool {
		return strings.Contains(e.psLine("fg"), "Exited (137)")
	})
	if n := ctrProcesses("sleep\x00" + marker); n != 1 {
		t.Errorf("%d sleep processes, want 1 (the detached one)", n)
	}

	// SIGTERM to a foreground run is forwarded to the command, whose exit code comes back.
	term, out := e.start("run", "--rm", "busybox", "sh", "-c", "trap 'echo bye; exit 7' TERM; echo ready; while true; do sleep 0.1; done")
	ctrWaitFor(t, "the trapping container", 5*time.Second, func() bool { return strings.Contains(out.String(), "ready") })
	_ = term.Process.Signal(syscall.SIGTERM)
	err := term.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 || !strings.Contains(out.String(), "bye") {
		t.Errorf("forwarded SIGTERM: %v, output %q", err, out.String())
	}

	// The monitor of a detached container killed with SIGKILL: the container dies with it, ps tells.
	dirs := e.containerDirs()
	var bgID string
	for _, d := range dirs {
		if e.state(d).Name == "bg" {
			bgID = d
		}
	}
	st := e.state(bgID)
	if st.Monitor <= 0 || st.Init <= 0 {
		t.Fatalf("state: %+v", st)
	}
	if err := syscall.Kill(st.Monitor, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctrWaitFor(t, "the container to die with its monitor", 5*time.Second, func() bool { return ctrProcesses("sleep\x00"+marker) == 0 })
	if l := e.psLine("bg"); !strings.Contains(l, "Exited (137)") {
		t.Errorf("after kill -9 of the monitor: %q", l)
	}
	e.must("stop", "bg")
	e.must("rm", "bg", "fg")
	if d := e.containerDirs(); len(d) != 0 {
		t.Errorf("containers left: %v", d)
	}
	if m := e.mountsUnder(); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
}
