package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	monitorArg0 = "layerbuild-container-monitor" // argv[0] of a container monitor; argv[1] is its dir
	monitorEnv  = "_LAYERBUILD_CONTAINER_MONITOR"
	readyFd     = 3 // the monitor reports its start (one readyStatus as JSON) on this pipe
)

// StartError is a container that could not start. Code is the exit status docker gives it: 125 for our
// own failures, 126 (not executable) or 127 (not found) for the command.
type StartError struct {
	Code int
	Msg  string
}

func (e *StartError) Error() string { return e.Msg }

type readyStatus struct {
	OK    bool   `json:"ok,omitempty"`
	Error string `json:"error,omitempty"`
	Code  int    `json:"code,omitempty"`
}

// Containers manages the containers under one directory (ROOT/containers).
type Containers struct {
	dir string
}

// OpenContainers opens (creating when missing) the containers directory.
func OpenContainers(dir string) (*Containers, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("containers: %w", err)
	}
	return &Containers{dir: dir}, nil
}

// lock serializes creation (unique names) between processes.
func (cs *Containers) lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(cs.dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("containers: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("containers: lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// all reads every container's state as recorded (no refresh).
func (cs *Containers) all() ([]*Container, error) {
	ents, err := os.ReadDir(cs.dir)
	if err != nil {
		return nil, fmt.Errorf("containers: %w", err)
	}
	var out []*Container
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), ".removing-") {
			_ = os.RemoveAll(filepath.Join(cs.dir, e.Name())) // a removal that was killed half-way
			continue
		}
		if !e.IsDir() || len(e.Name()) != 64 {
			continue
		}
		c, err := readContainer(filepath.Join(cs.dir, e.Name()))
		if err != nil {
			continue // being created or removed
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// Create records a new container (status created) with a unique name (a random one when name is empty).
func (cs *Containers) Create(name string, cfg ContainerConfig, detached bool) (*Container, error) {
	if name != "" {
		if err := ValidateName(name); err != nil {
			return nil, err
		}
	}
	unlock, err := cs.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	existing, err := cs.all()
	if err != nil {
		return nil, err
	}
	taken := map[string]string{}
	for _, c := range existing {
		if cs.Refresh(c) { // a dead --rm container gives its name back
			taken[c.Name] = c.ID
		}
	}
	if id, ok := taken[name]; ok && name != "" {
		return nil, fmt.Errorf("the container name %q is already in use by container %s: remove it (layerbuild rm %s) to reuse the name",
			name, id[:12], name)
	}
	for try := 0; name == ""; try++ {
		if n := randomName(try); taken[n] == "" {
			name = n
		}
	}
	c := &Container{ID: newContainerID(), Name: name, Created: time.Now(), Config: cfg, Detached: detached,
		Status: StatusCreated}
	if c.Config.Hostname == "" {
		c.Config.Hostname = c.ShortID()
	}
	if c.Config.Network == "" {
		c.Config.Network = ContainerNetPrivate
	}
	c.dir = filepath.Join(cs.dir, c.ID)
	if err := os.Mkdir(c.dir, 0o700); err != nil {
		return nil, fmt.Errorf("containers: %w", err)
	}
	for _, d := range []string{"upper", "work", "rootfs"} {
		if err := os.Mkdir(filepath.Join(c.dir, d), 0o755); err != nil {
			os.RemoveAll(c.dir)
			return nil, fmt.Errorf("containers: %w", err)
		}
	}
	if err := c.save(); err != nil {
		os.RemoveAll(c.dir)
		return nil, err
	}
	return c, nil
}

// List returns every container, newest first, each refreshed (see Refresh).
func (cs *Containers) List() ([]*Container, error) {
	all, err := cs.all()
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, c := range all {
		if cs.Refresh(c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// Get finds a container by full ID, name, or unique ID prefix, refreshed.
func (cs *Containers) Get(ref string) (*Container, error) {
	all, err := cs.List()
	if err != nil {
		return nil, err
	}
	var byPrefix []*Container
	for _, c := range all {
		if c.ID == ref || c.Name == ref || c.Name == strings.TrimPrefix(ref, "/") {
			return c, nil
		}
		if ref != "" && strings.HasPrefix(c.ID, ref) {
			byPrefix = append(byPrefix, c)
		}
	}
	switch len(byPrefix) {
	case 1:
		return byPrefix[0], nil
	case 0:
		return nil, fmt.Errorf("%w: %s", ErrNoSuchContainer, ref)
	}
	return nil, fmt.Errorf("container ID prefix %q is ambiguous (%d containers)", ref, len(byPrefix))
}

// Refresh brings c's state in line with the processes: a container whose monitor is gone (killed with
// SIGKILL, say) is not running, whatever its state file says; the kernel killed its sandbox with the monitor
// (parent-death signal), so it exited with 137. A dead --rm container is removed; Refresh then reports
// false.
func (cs *Containers) Refresh(c *Container) bool {
	if c.MonitorPid == 0 || (c.Status != StatusRunning && c.Status != StatusCreated) || alive(c.MonitorPid, c.MonitorStart) {
		return true
	}
	// The monitor may have recorded the exit just before it ended.
	fresh, err := readContainer(c.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false // removed (--rm) meanwhile
	}
	if err == nil {
		*c = *fresh
	}
	if c.Status == StatusRunning || c.Status == StatusCreated {
		if alive(c.InitPid, c.InitStart) { // cannot outlive the monitor; make sure
			_ = unix.Kill(c.InitPid, unix.SIGKILL)
		}
		c.Status, c.ExitCode, c.Finished = StatusExited, 128+int(unix.SIGKILL), time.Now()
		c.Error = "the container's monitor process was killed, and the container with it"
		_ = c.save()
	}
	if len(c.Cgroups) > 0 && !c.Config.AutoRemove { // the monitor could not remove them (remove does for --rm)
		if oomKills(c.Cgroups) > 0 {
			c.OOMKilled = true
		}
		killCgroup(c.Cgroups)
		if removeCgroupDirs(c.Cgroups, 2*time.Second) == nil {
			c.Cgroups = nil
		}
		_ = c.save()
	}
	if c.Config.AutoRemove {
		_ = cs.remove(c)
		return false
	}
	return true
}

// Signal sends sig to the container's command: through the sandbox's init for the signals it forwards
// (and SIGKILL, which ends the whole sandbox), directly otherwise.
func (c *Container) Signal(sig unix.Signal) error {
	if c.Status != StatusRunning || !alive(c.InitPid, c.InitStart) {
		return fmt.Errorf("container %s is not running", c.Name)
	}
	if sig == unix.SIGKILL || isForwarded(sig) {
		return unix.Kill(c.InitPid, sig)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", c.InitPid, c.InitPid))
	if err != nil {
		return err
	}
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = unix.Kill(pid, sig)
		}
	}
	return nil
}

func isForwarded(sig unix.Signal) bool {
	for _, s := range forwarded {
		if s == sig {
			return true
		}
	}
	return false
}

// ParseSignal parses a STOPSIGNAL value: SIGTERM, TERM or 15.
func ParseSignal(s string) (unix.Signal, error) {
	if s == "" {
		return unix.SIGTERM, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("invalid signal %q", s)
}

// Stop sends the stop signal (the image's STOPSIGNAL, SIGTERM by default), waits up to timeout for the
// container to end, then kills it with SIGKILL (exit code 137). Stopping a stopped container does nothing.
func (cs *Containers) Stop(c *Container, timeout time.Duration) error {
	if !cs.Refresh(c) || c.Status != StatusRunning {
		return nil
	}
	sig, err := ParseSignal(c.Config.StopSignal)
	if err != nil {
		sig = unix.SIGTERM
	}
	_ = c.Signal(sig)
	if !waitGone(c.MonitorPid, c.MonitorStart, timeout) {
		cs.kill(c)
	}
	cs.Refresh(c)
	return nil
}

// kill ends a running container with SIGKILL and waits for its monitor to record the exit.
func (cs *Containers) kill(c *Container) {
	if alive(c.InitPid, c.InitStart) {
		_ = unix.Kill(c.InitPid, unix.SIGKILL)
	}
	if !waitGone(c.MonitorPid, c.MonitorStart, 10*time.Second) {
		_ = unix.Kill(c.MonitorPid, unix.SIGKILL) // stuck: its death kills what is left
		waitGone(c.MonitorPid, c.MonitorStart, 5*time.Second)
	}
}

// Remove deletes a container: its writable layer, log and state. A running one is refused unless force,
// which kills it first (as docker rm -f).
func (cs *Containers) Remove(c *Container, force bool) error {
	if !cs.Refresh(c) {
		return nil
	}
	if alive(c.MonitorPid, c.MonitorStart) {
		if !force {
			return fmt.Errorf("cannot remove container %s: it is running: stop it first, or use rm -f", c.Name)
		}
		cs.kill(c)
	}
	return cs.remove(c)
}

// remove deletes the container's directory; mounts cannot be there (they live in the monitor's mount
// namespace), but whatever is mounted below it here is detached first, so nothing is deleted through one.
func (cs *Containers) remove(c *Container) error {
	unmountBelow(c.dir)
	if len(c.Cgroups) > 0 { // its monitor was killed before it could remove them
		killCgroup(c.Cgroups)
		if err := removeCgroupDirs(c.Cgroups, 5*time.Second); err != nil {
			return fmt.Errorf("remove container %s: %w", c.Name, err)
		}
	}
	// Out of sight first (a rename is atomic), so a half-deleted container never shows in ps.
	gone := filepath.Join(cs.dir, ".removing-"+c.ID)
	if err := os.Rename(c.dir, gone); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove container %s: %w", c.Name, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("remove container %s: %w", c.Name, err)
	}
	return nil
}

// unmountBelow detaches every mount at or below dir in this mount namespace, deepest first.
func unmountBelow(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mps []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 {
			if mp := unescapeOctal(f[4]); mp == dir || strings.HasPrefix(mp, dir+"/") {
				mps = append(mps, mp)
			}
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	for _, mp := range mps {
		_ = unix.Unmount(mp, unix.MNT_DETACH)
	}
}

func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// pidStat returns a process's state letter and start time (clock ticks after boot).
func pidStat(pid int) (byte, uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return 0, 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	return f[0][0], start, err
}

// alive reports whether pid is still the process that started at start (not a recycled pid, not a zombie).
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	state, st, err := pidStat(pid)
	return err == nil && st == start && state != 'Z' && state != 'X'
}

func waitGone(pid int, start uint64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for alive(pid, start) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
