package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/layerbuild/layerbuild/snapshot"
)

// RunOptions say how Run attaches to a container.
type RunOptions struct {
	Detach bool
	// The container's stdio in the foreground (nil: /dev/null). A detached container writes to its log.
	Stdin, Stdout, Stderr *os.File
}

// Run starts a created container under a new monitor. Detached, it returns once the command runs (the
// container lives on after this process exits). In the foreground it forwards SIGINT, SIGTERM, SIGHUP,
// SIGQUIT, SIGUSR1 and SIGUSR2 to the command and returns its exit code (128+signal when it was killed);
// the container dies with this process. A container that cannot start gives a *StartError.
func (cs *Containers) Run(c *Container, o RunOptions) (int, error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return 125, err
	}
	defer readyR.Close()
	cmd := exec.Command("/proc/self/exe", c.dir)
	cmd.Args[0] = monitorArg0
	cmd.Env = []string{monitorEnv + "=1"}
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{readyW}
	// A session of its own: no terminal signal reaches the monitor twice (the CLI forwards them).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: unix.CLONE_NEWNS}
	if o.Detach {
		log, err := os.OpenFile(c.LogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			readyW.Close()
			return 125, err
		}
		defer log.Close()
		cmd.Stdout, cmd.Stderr = log, log
	} else {
		if o.Stdin != nil {
			cmd.Stdin = o.Stdin
		}
		if o.Stdout != nil {
			cmd.Stdout = o.Stdout
		}
		if o.Stderr != nil {
			cmd.Stderr = o.Stderr
		}
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
		// Pdeathsig follows the forking thread: keep it for the monitor's whole life.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	var sigs chan os.Signal
	if !o.Detach {
		sigs = make(chan os.Signal, 16)
		signal.Notify(sigs, forwarded...)
		defer signal.Stop(sigs)
	}
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		return 125, &StartError{Code: 125, Msg: fmt.Sprintf("start container monitor: %v", err)}
	}
	var st readyStatus
	b, _ := io.ReadAll(io.LimitReader(readyR, maxStatus))
	if len(b) == 0 || json.Unmarshal(b, &st) != nil || !st.OK {
		werr := cmd.Wait()
		if st.Error == "" {
			st.Error = fmt.Sprintf("the container monitor died before the container started (%v)", werr)
		}
		if st.Code <= 0 {
			st.Code = 125
		}
		return st.Code, &StartError{Code: st.Code, Msg: st.Error}
	}
	if o.Detach {
		_ = cmd.Process.Release()
		return 0, nil
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	if ps := cmd.ProcessState; ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
			switch {
			case ws.Exited():
				return ws.ExitStatus(), nil
			case ws.Signaled():
				return 128 + int(ws.Signal()), nil
			}
		}
	}
	return 125, err
}

// containerMonitorMain runs the monitor when this process is one, and never returns then.
func containerMonitorMain() {
	if len(os.Args) != 2 || os.Args[0] != monitorArg0 || os.Getenv(monitorEnv) != "1" {
		return
	}
	os.Unsetenv(monitorEnv)
	os.Exit(monitorRun(os.Args[1]))
}

// monitorRun is the monitor: it mounts the container's rootfs in its private mount namespace, listens on
// the published ports, runs the sandbox, forwards signals to it, and records the state and the exit code.
func monitorRun(dir string) int {
	unix.CloseOnExec(readyFd)
	// Only our stdio and the ready pipe: nothing our parent leaked stays open for the container's life.
	_ = unix.CloseRange(readyFd+1, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	ready := os.NewFile(readyFd, "ready")
	readyDone := false
	report := func(st readyStatus) {
		if !readyDone {
			b, _ := json.Marshal(st)
			_, _ = ready.Write(b)
			ready.Close()
			readyDone = true
		}
	}
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, forwarded...)

	c, err := readContainer(dir)
	if err != nil {
		report(readyStatus{Error: err.Error(), Code: 125})
		return 125
	}
	fail := func(code int, err error) int {
		if code <= 0 {
			code = 125
		}
		report(readyStatus{Error: err.Error(), Code: code})
		c.Status, c.ExitCode, c.Error, c.Finished = StatusExited, code, err.Error(), time.Now()
		_ = unix.Unmount(filepath.Join(dir, "rootfs"), unix.MNT_DETACH)
		if removeCgroupDirs(c.Cgroups, 2*time.Second) == nil {
			c.Cgroups = nil
		}
		if c.Config.AutoRemove {
			_ = os.RemoveAll(dir)
		} else {
			_ = c.save()
		}
		return code
	}
	c.MonitorPid = os.Getpid()
	if _, c.MonitorStart, err = pidStat(c.MonitorPid); err != nil {
		return fail(125, err)
	}
	if err := c.save(); err != nil {
		return fail(125, err)
	}
	// Our own mount namespace (CLONE_NEWNS from Run): make sure nothing propagates to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fail(125, fmt.Errorf("make mounts private: %w", err))
	}
	rootfs := filepath.Join(dir, "rootfs")
	if err := snapshot.MountOverlay(c.Config.Lowers, filepath.Join(dir, "upper"), filepath.Join(dir, "work"), rootfs); err != nil {
		return fail(125, fmt.Errorf("mount the container's rootfs: %w", err))
	}
	fw, err := listenPorts(c.Config.Ports)
	if err != nil {
		return fail(125, err)
	}
	defer fw.close()
	for i, l := range fw.listeners { // HOSTPORT 0: the port the kernel picked
		c.Config.Ports[i].HostPort = l.Addr().(*net.TCPAddr).Port
	}

	network := NetworkNone
	if c.Config.Network == ContainerNetHost {
		network = NetworkHost
	}
	started := false
	spec := Spec{
		Rootfs:   rootfs,
		Args:     c.Config.Args,
		Env:      c.Config.Env,
		Cwd:      c.Config.Cwd,
		User:     c.Config.User,
		Hostname: c.Config.Hostname,
		Network:  network,
		Stdin:    os.Stdin,
		Stdout:   os.Stdout,
		Stderr:   os.Stderr,
		OnStart: func(initPid int) {
			started = true
			c.InitPid = initPid
			_, c.InitStart, _ = pidStat(initPid)
			c.Status, c.Started = StatusRunning, time.Now()
			if err := fw.start(initPid, network == NetworkNone); err != nil {
				fmt.Fprintf(os.Stderr, "layerbuild: published ports: %v\n", err)
			}
			_ = c.save()
			report(readyStatus{OK: true})
			go func() {
				for s := range sigs {
					_ = unix.Kill(initPid, s.(syscall.Signal))
				}
			}()
		},
	}
	if len(spec.Env) == 0 {
		spec.Env = []string{"PATH=" + DefaultPath}
	}
	if lim := c.Config.Limits; lim.Any() {
		layout, err := detectCgroups()
		if err != nil {
			return fail(125, fmt.Errorf("cgroups: %w", err))
		}
		dirs, err := layout.cgroupDirs(c.ID, lim)
		if err != nil {
			return fail(125, err)
		}
		c.Cgroups = sortedDirs(dirs)
		if err := c.save(); err != nil { // recorded first: whatever happens next, rm finds them
			return fail(125, err)
		}
		if err := createCgroup(dirs, layout.v2, lim); err != nil {
			return fail(125, err)
		}
		spec.OnCreate = func(initPid int) error { return enterCgroup(c.Cgroups, initPid) }
		onStart := spec.OnStart
		spec.OnStart = func(initPid int) {
			if err := settlePids(dirs, layout.v2, lim, initPid); err != nil {
				fmt.Fprintf(os.Stderr, "layerbuild: --pids-limit: %v\n", err)
			}
			onStart(initPid)
		}
	}
	code, err := Run(context.Background(), spec)
	if !started {
		if err == nil {
			err = errors.New("the container did not start")
		}
		return fail(code, err)
	}
	fw.close()
	if code < 0 {
		code = 125
	}
	c.Status, c.ExitCode, c.Finished = StatusExited, code, time.Now()
	if err != nil {
		c.Error = err.Error()
		fmt.Fprintf(os.Stderr, "layerbuild: %v\n", err)
	}
	if len(c.Cgroups) > 0 {
		if oomKills(c.Cgroups) > 0 {
			c.OOMKilled = true
			if !c.Detached {
				fmt.Fprintf(os.Stderr, "layerbuild: container was OOM-killed (memory limit %s)\n", FormatMemory(c.Config.Limits.Memory))
			}
		}
		// The init is reaped, and the pid namespace's other processes died before it: the cgroup is empty.
		if err := removeCgroupDirs(c.Cgroups, 2*time.Second); err != nil {
			fmt.Fprintf(os.Stderr, "layerbuild: %v\n", err)
		} else {
			c.Cgroups = nil
		}
	}
	_ = unix.Unmount(rootfs, unix.MNT_DETACH)
	if c.Config.AutoRemove {
		_ = os.RemoveAll(dir)
	} else if err := c.save(); err != nil {
		fmt.Fprintf(os.Stderr, "layerbuild: %v\n", err)
	}
	return code
}
