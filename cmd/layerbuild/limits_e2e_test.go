package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cgroupsOf lists every cgroup directory of container id anywhere under /sys/fs/cgroup.
func cgroupsOf(t *testing.T, id string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir("/sys/fs/cgroup", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if d.Name() == "layerbuild-"+id {
			out = append(out, p)
			return fs.SkipDir
		}
		if strings.Count(p, "/") > 8 {
			return fs.SkipDir
		}
		return nil
	})
	return out
}

func readTrim(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func containerIDByName(e *env, name string) string {
	e.t.Helper()
	for _, id := range e.containerDirs() {
		if e.state(id).Name == name {
			return id
		}
	}
	e.t.Fatalf("no container %s", name)
	return ""
}

func TestRunLimitFlags(t *testing.T) {
	e := newEnv(t)
	e.removeContainersAtEnd()
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--memory", "1m"}, "minimum memory limit allowed is 6MB"},
		{[]string{"--memory", "lots"}, "invalid size"},
		{[]string{"--cpus", "100000"}, "range of CPUs"},
		{[]string{"--cpus", "half"}, "invalid --cpus"},
	} {
		r := e.run(nil, append(append([]string{"run", "--rm"}, c.args...), "busybox", "true")...)
		if r.code != 125 || !strings.Contains(r.stderr, c.msg) {
			t.Errorf("run %v: want 125 and %q, got %s", c.args, c.msg, r)
		}
	}
	if dirs := e.containerDirs(); len(dirs) != 0 {
		t.Errorf("bad flags left containers: %v", dirs)
	}
}

// A command that goes over --memory is OOM-killed: exit 137, a message, oom_killed in the state and ps.
func TestRunMemoryOOMKill(t *testing.T) {
	e := newEnv(t)
	e.removeContainersAtEnd()
	r := e.run(nil, "run", "--name", "hog", "--memory", "32m", "busybox", "sh", "-c",
		`x=$(head -c 100000000 /dev/zero | tr "\0" a); echo survived`)
	if r.code != 137 || strings.Contains(r.stdout, "survived") ||
		!strings.Contains(r.stderr, "container was OOM-killed (memory limit 32MB)") {
		t.Fatalf("want exit 137 and the OOM message, got %s", r)
	}
	id := containerIDByName(e, "hog")
	st := e.state(id)
	if !st.OOMKilled || st.Status != "exited" || st.ExitCode != 137 || len(st.Cgroups) != 0 {
		t.Errorf("state after the OOM kill: %+v", st)
	}
	if line := e.psLine("hog"); !strings.Contains(line, "Exited (137)") || !strings.Contains(line, "OOMKilled") {
		t.Errorf("ps: %q", line)
	}
	if left := cgroupsOf(t, id); len(left) != 0 {
		t.Errorf("cgroups left after the container ended: %v", left)
	}

	// Under the limit: nothing is killed, nothing is reported.
	r = e.run(nil, "run", "--name", "fits", "--memory", "64m", "busybox", "sh", "-c",
		`x=$(head -c 4000000 /dev/zero | tr "\0" a); echo ${#x}`)
	if r.code != 0 || r.stdout != "4000000\n" || strings.Contains(r.stderr, "OOM") {
		t.Fatalf("a command under its limit: %s", r)
	}
	if st := e.state(containerIDByName(e, "fits")); st.OOMKilled {
		t.Errorf("oom_killed set for a command under its limit: %+v", st)
	}
	e.must("rm", "hog", "fits")
}

// The limits are written to the container's own cgroups, the sandbox is inside them from its start, and
// the cgroups go away with the container, even when its monitor was killed with SIGKILL.
func TestRunCgroupValuesAndCleanup(t *testing.T) {
	e := newEnv(t)
	e.removeContainersAtEnd()
	id := strings.TrimSpace(e.must("run", "-d", "--name", "limited", "--memory", "64m", "--cpus", "0.5",
		"--pids-limit", "50", "busybox", "sh", "-c", "cat /proc/self/cgroup; exec sleep 1000"))
	st := e.state(id)
	if st.Status != "running" || len(st.Cgroups) != 3 {
		t.Fatalf("state: %+v", st)
	}
	byName := map[string]string{}
	for _, d := range st.Cgroups {
		if filepath.Base(d) != "layerbuild-"+id {
			t.Errorf("cgroup %s not named after the container", d)
		}
		for _, f := range []string{"memory.limit_in_bytes", "pids.max", "cpu.cfs_quota_us"} {
			if _, err := os.Stat(filepath.Join(d, f)); err == nil {
				byName[f] = d
			}
		}
	}
	want := map[string]string{"memory.limit_in_bytes": "67108864", "pids.max": "50", "cpu.cfs_quota_us": "50000"}
	for f, v := range want {
		if d := byName[f]; d == "" {
			t.Errorf("no cgroup has %s", f)
		} else if got := readTrim(t, filepath.Join(d, f)); got != v {
			t.Errorf("%s = %s, want %s", f, got, v)
		}
	}
	if d := byName["cpu.cfs_quota_us"]; d != "" {
		if got := readTrim(t, filepath.Join(d, "cpu.cfs_period_us")); got != "100000" {
			t.Errorf("cpu.cfs_period_us = %s", got)
		}
	}
	if d := byName["memory.limit_in_bytes"]; d != "" {
		if b, err := os.ReadFile(filepath.Join(d, "memory.memsw.limit_in_bytes")); err == nil && strings.TrimSpace(string(b)) != "67108864" {
			t.Errorf("memory.memsw.limit_in_bytes = %s: swap would dodge the limit", b)
		}
	}
	ctrWaitFor(t, "the command's output", 5*time.Second, func() bool {
		return strings.Contains(e.must("logs", "limited"), "layerbuild-"+id)
	})
	// The init and the command (and nothing else) are in the memory and cpu cgroups (once cat is done and
	// sh has exec'd); the pids one has only the command (the init's threads are not the container's).
	for _, d := range st.Cgroups {
		want := 2
		if d == byName["pids.max"] {
			want = 1
		}
		ctrWaitFor(t, "the init and the command in "+d, 5*time.Second, func() bool {
			procs := strings.Fields(readTrim(t, filepath.Join(d, "cgroup.procs")))
			hasInit := false
			for _, p := range procs {
				hasInit = hasInit || p == strconv.Itoa(st.Init)
			}
			return len(procs) == want && hasInit == (want == 2)
		})
	}
	if got := cgroupsOf(t, id); len(got) != 3 {
		t.Errorf("cgroups found: %v, recorded: %v", got, st.Cgroups)
	}

	// The monitor dies with SIGKILL: ps sees it, and rm removes the cgroups it could not.
	if err := syscall.Kill(st.Monitor, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctrWaitFor(t, "ps to show the container exited", 5*time.Second, func() bool {
		return strings.Contains(e.psLine("limited"), "Exited (137)")
	})
	if left := cgroupsOf(t, id); len(left) != 0 { // ps found the monitor dead and cleaned up
		t.Errorf("cgroups left after ps saw the dead monitor: %v", left)
	}
	e.must("rm", "limited")
	if left := cgroupsOf(t, id); len(left) != 0 {
		t.Errorf("cgroups left after rm: %v", left)
	}

	// A foreground run whose CLI is killed with SIGKILL: stop and rm clean up.
	cli, _ := e.start("run", "--name", "fg", "--memory", "64m", "--pids-limit", "20", "busybox", "sleep", "1000")
	var fgID string
	ctrWaitFor(t, "the foreground container to run", 5*time.Second, func() bool {
		for _, d := range e.containerDirs() {
			if s := e.state(d); s.Name == "fg" && s.Status == "running" {
				fgID = d
				return true
			}
		}
		return false
	})
	if got := cgroupsOf(t, fgID); len(got) != 2 {
		t.Errorf("cgroups of the foreground container: %v", got)
	}
	_ = cli.Process.Kill()
	_ = cli.Wait()
	e.must("stop", "fg")
	if line := e.psLine("fg"); !strings.Contains(line, "Exited (137)") {
		t.Errorf("ps after the CLI was killed: %q", line)
	}
	e.must("rm", "fg")
	if left := cgroupsOf(t, fgID); len(left) != 0 {
		t.Errorf("cgroups left after the CLI was killed and rm: %v", left)
	}

	// --rm: gone with the container.
	id = strings.TrimSpace(e.must("run", "-d", "--rm", "--memory", "64m", "--pids-limit", "20", "busybox", "sleep", "0.2"))
	ctrWaitFor(t, "the --rm container to go", 5*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(e.root, "containers", id))
		return os.IsNotExist(err)
	})
	if left := cgroupsOf(t, id); len(left) != 0 {
		t.Errorf("cgroups left after --rm: %v", left)
	}
}

// --pids-limit stops a fork bomb (a bounded one), and the container can still be stopped.
func TestRunPidsLimitStopsForkBomb(t *testing.T) {
	e := newEnv(t)
	e.removeContainersAtEnd()
	id := strings.TrimSpace(e.must("run", "-d", "--name", "bomb", "--pids-limit", "10", "busybox", "sh", "-c",
		`(i=0; while [ $i -lt 200 ]; do sleep 1000 & i=$((i+1)); done; echo NOFAIL) 2>/tmp/err
grep -q "can't fork" /tmp/err && echo FORKFAILED; exec sleep 1000`))
	ctrWaitFor(t, "the fork bomb to hit the limit", 10*time.Second, func() bool {
		return strings.Contains(e.must("logs", "bomb"), "FORKFAILED")
	})
	if logs := e.must("logs", "bomb"); strings.Contains(logs, "NOFAIL") {
		t.Errorf("200 forks succeeded under --pids-limit 10: %q", logs)
	}
	st := e.state(id)
	for _, d := range st.Cgroups {
		if b, err := os.ReadFile(filepath.Join(d, "pids.current")); err == nil {
			if n, _ := strconv.Atoi(strings.TrimSpace(string(b))); n > 10 || n < 5 {
				t.Errorf("pids.current = %d with --pids-limit 10", n)
			}
		}
	}
	start := time.Now()
	e.must("stop", "-t", "2", "bomb")
	if line := e.psLine("bomb"); !strings.Contains(line, "Exited") {
		t.Errorf("after stop: %q", line)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("stop took %v", d)
	}
	e.must("rm", "bomb")
	if left := cgroupsOf(t, id); len(left) != 0 {
		t.Errorf("cgroups left after rm: %v", left)
	}
}

// --cpus 0.5: a busy loop is throttled by the CFS quota (cpu.stat counts the throttled periods). Not a
// timing test: any busy loop overruns a 50 ms quota within a few 100 ms periods.
func TestRunCPUQuotaThrottles(t *testing.T) {
	e := newEnv(t)
	e.removeContainersAtEnd()
	id := strings.TrimSpace(e.must("run", "-d", "--name", "spin", "--cpus", "0.5", "busybox", "sh", "-c", "while :; do :; done"))
	st := e.state(id)
	if len(st.Cgroups) != 1 {
		t.Fatalf("cgroups: %v", st.Cgroups)
	}
	if got := readTrim(t, filepath.Join(st.Cgroups[0], "cpu.cfs_quota_us")); got != "50000" {
		t.Errorf("cpu.cfs_quota_us = %s", got)
	}
	ctrWaitFor(t, "the busy loop to be throttled", 10*time.Second, func() bool {
		for _, l := range strings.Split(readTrim(t, filepath.Join(st.Cgroups[0], "cpu.stat")), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "nr_throttled" && f[1] != "0" {
				return true
			}
		}
		return false
	})
	e.must("rm", "-f", "spin")
	if left := cgroupsOf(t, id); len(left) != 0 {
		t.Errorf("cgroups left after rm -f: %v", left)
	}
}
