package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A container with limits (Limits.Any) gets a cgroup of its own, created by its monitor before the sandbox's
// init runs anything: the init is moved into it right after the fork, before it reads its config, so the
// command and everything it starts are born inside (no process escapes the limits).
//
// cgroup v1 (and hybrid mode, where the controllers are on v1): one directory per needed controller
// (memory, pids, cpu), named layerbuild-<id> and nested in the monitor's own cgroup of that controller
// (so whatever limits the caller already has still apply, and nothing is left in a hierarchy we do not
// own). cgroup v2 (/sys/fs/cgroup is cgroup2): one directory, <mount>/layerbuild-<id>, with the needed
// controllers enabled in the root's cgroup.subtree_control. The directories are recorded in state.json
// and removed when the container ends and again (whatever is left) when it is removed.

// cgroupLayout says where the cgroup hierarchies are and where this process sits in them.
type cgroupLayout struct {
	v2     bool
	v2Root string            // the cgroup2 mount (v2)
	v1     map[string]string // v1 controller -> the directory of this process's cgroup of that controller
}

// cgroupV1Controllers are the v1 controllers that Limits use.
var cgroupV1Controllers = []string{"memory", "pids", "cpu"}

// detectCgroups reads /proc/self/mountinfo and /proc/self/cgroup.
func detectCgroups() (*cgroupLayout, error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return &cgroupLayout{v2: true, v2Root: "/sys/fs/cgroup"}, nil
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	return parseCgroupLayout(string(mi), string(self)), nil
}

// parseCgroupLayout finds, for each v1 controller, the mount of its hierarchy and this process's cgroup in it.
func parseCgroupLayout(mountinfo, selfCgroup string) *cgroupLayout {
	own := map[string]string{} // controller -> cgroup path
	for _, line := range strings.Split(selfCgroup, "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 || f[1] == "" {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			own[c] = f[2]
		}
	}
	l := &cgroupLayout{v1: map[string]string{}}
	for _, line := range strings.Split(mountinfo, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 || g[0] != "cgroup" {
			continue
		}
		root, mp := unescapeOctal(f[3]), unescapeOctal(f[4])
		for _, opt := range strings.Split(g[2], ",") {
			p, ok := own[opt]
			if !ok || !contains(cgroupV1Controllers, opt) || l.v1[opt] != "" {
				continue
			}
			rel := p
			if root != "/" {
				if p != root && !strings.HasPrefix(p, root+"/") {
					continue // our cgroup is not visible through this mount
				}
				rel = strings.TrimPrefix(p, root)
			}
			l.v1[opt] = filepath.Join(mp, rel)
		}
	}
	return l
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// cgroupDirs are the directories of a container's cgroup for lim: v1, one per needed controller, keyed
// by controller; v2, one keyed by "".
func (l *cgroupLayout) cgroupDirs(id string, lim Limits) (map[string]string, error) {
	name := "layerbuild-" + id
	if l.v2 {
		return map[string]string{"": filepath.Join(l.v2Root, name)}, nil
	}
	dirs := map[string]string{}
	need := map[string]bool{"memory": lim.Memory > 0, "pids": lim.PidsLimit > 0, "cpu": lim.NanoCPUs > 0}
	for _, c := range cgroupV1Controllers {
		if !need[c] {
			continue
		}
		base := l.v1[c]
		if base == "" {
			return nil, fmt.Errorf("the %s cgroup controller is not available", c)
		}
		dirs[c] = filepath.Join(base, name)
	}
	return dirs, nil
}

// cgroupFile is one write that sets up a limit.
type cgroupFile struct {
	dir, name, value string
	optional         bool // skipped when the file does not exist (memsw without swap accounting)
}

// limitFiles lists the writes that enforce lim, in order (memory before memsw: memsw may not be lower).
func limitFiles(dirs map[string]string, v2 bool, lim Limits) []cgroupFile {
	var w []cgroupFile
	if v2 {
		d := dirs[""]
		if lim.Memory > 0 {
			w = append(w, cgroupFile{d, "memory.max", strconv.FormatInt(lim.Memory, 10), false},
				cgroupFile{d, "memory.swap.max", "0", true})
		}
		if lim.PidsLimit > 0 {
			w = append(w, cgroupFile{d, "pids.max", strconv.FormatInt(lim.PidsLimit+pidsSlack(), 10), false})
		}
		if q := lim.cpuQuota(); q > 0 {
			w = append(w, cgroupFile{d, "cpu.max", fmt.Sprintf("%d %d", q, cfsPeriod), false})
		}
		return w
	}
	if d := dirs["memory"]; d != "" && lim.Memory > 0 {
		v := strconv.FormatInt(lim.Memory, 10)
		w = append(w, cgroupFile{d, "memory.limit_in_bytes", v, false}, cgroupFile{d, "memory.memsw.limit_in_bytes", v, true})
	}
	if d := dirs["pids"]; d != "" && lim.PidsLimit > 0 {
		w = append(w, cgroupFile{d, "pids.max", strconv.FormatInt(lim.PidsLimit+pidsSlack(), 10), false})
	}
	if d := dirs["cpu"]; d != "" {
		if q := lim.cpuQuota(); q > 0 {
			w = append(w, cgroupFile{d, "cpu.cfs_period_us", strconv.Itoa(cfsPeriod), false},
				cgroupFile{d, "cpu.cfs_quota_us", strconv.FormatInt(q, 10), false})
		}
	}
	return w
}

// createCgroup makes the container's cgroup directories and writes its limits. On failure it removes
// what it made.
func createCgroup(dirs map[string]string, v2 bool, lim Limits) (err error) {
	var made []string
	defer func() {
		if err != nil {
			removeCgroupDirs(made, 0)
		}
	}()
	if v2 {
		d := dirs[""]
		var ctrl []string
		if lim.Memory > 0 {
			ctrl = append(ctrl, "+memory")
		}
		if lim.PidsLimit > 0 {
			ctrl = append(ctrl, "+pids")
		}
		if lim.NanoCPUs > 0 {
			ctrl = append(ctrl, "+cpu")
		}
		if len(ctrl) > 0 {
			p := filepath.Join(filepath.Dir(d), "cgroup.subtree_control")
			if err := os.WriteFile(p, []byte(strings.Join(ctrl, " ")), 0o644); err != nil {
				return fmt.Errorf("cgroup: enable controllers (%s): %w", strings.Join(ctrl, " "), err)
			}
		}
	}
	for _, d := range sortedDirs(dirs) {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
		made = append(made, d)
	}
	for _, f := range limitFiles(dirs, v2, lim) {
		p := filepath.Join(f.dir, f.name)
		if f.optional {
			if _, err := os.Stat(p); err != nil {
				continue
			}
		}
		if err := writeCgroupFile(p, f.value); err != nil {
			return err
		}
	}
	return nil
}

func writeCgroupFile(path, value string) error {
	// O_TRUNC is not supported by every cgroup file; a plain write is what the kernel expects.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cgroup: write %s to %s: %w", value, path, err)
	}
	return nil
}

func sortedDirs(dirs map[string]string) []string {
	var out []string
	for _, c := range append([]string{""}, cgroupV1Controllers...) {
		if d, ok := dirs[c]; ok {
			out = append(out, d)
		}
	}
	return out
}

// enterCgroup moves pid (its whole thread group) into every directory.
func enterCgroup(dirs []string, pid int) error {
	for _, d := range dirs {
		if err := writeCgroupFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// pidsSlack is what pids.max allows on top of --pids-limit until the command runs: the sandbox's init is a
// Go program whose threads count as tasks, and a thread it cannot create kills it.
func pidsSlack() int64 { return 64 + int64(runtime.NumCPU()) }

// settlePids applies the exact --pids-limit once the command runs (born inside the pids cgroup). On v1 the
// init leaves the pids cgroup for the monitor's own first, so that only the command and what it starts
// count, as under docker (whose pid 1 is the command); on v2, where it cannot leave alone, its threads are
// added to the limit.
func settlePids(dirs map[string]string, v2 bool, lim Limits, initPid int) error {
	if lim.PidsLimit <= 0 {
		return nil
	}
	max := lim.PidsLimit
	d := dirs["pids"]
	if v2 {
		d = dirs[""]
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", initPid))
		if err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
		max += int64(len(ents)) + 4 // and a few threads more for the init
	} else if err := writeCgroupFile(filepath.Join(filepath.Dir(d), "cgroup.procs"), strconv.Itoa(initPid)); err != nil {
		return err
	}
	return writeCgroupFile(filepath.Join(d, "pids.max"), strconv.FormatInt(max, 10))
}

// oomKills reads how many processes the kernel's OOM killer killed in the container's cgroup: the
// oom_kill line of memory.oom_control (v1) or memory.events (v2). -1: not known.
func oomKills(dirs []string) int64 {
	for _, d := range dirs {
		for _, name := range []string{"memory.oom_control", "memory.events"} {
			f, err := os.Open(filepath.Join(d, name))
			if err != nil {
				continue
			}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if k, v, ok := strings.Cut(sc.Text(), " "); ok && k == "oom_kill" {
					n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					if err == nil {
						f.Close()
						return n
					}
				}
			}
			f.Close()
		}
	}
	return -1
}

// removeCgroupDirs removes the container's cgroup directories, retrying while the last processes are
// still leaving them (EBUSY), for up to wait. Missing ones are fine.
func removeCgroupDirs(dirs []string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	var errs []error
	for _, d := range dirs {
		for {
			err := unix.Rmdir(d)
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			if errors.Is(err, unix.EBUSY) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EPERM) {
				// Not a cgroup after all (a plain directory standing in for one, in tests).
				if rerr := os.RemoveAll(d); rerr == nil {
					break
				}
			}
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
			break
		}
	}
	return errors.Join(errs...)
}

// killCgroup sends SIGKILL to every process left in the directories (the monitor died before it could
// reap them: they normally die with the sandbox's init).
func killCgroup(dirs []string) {
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
	}
}
