package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// setupError is a setup failure with the exit code Run reports for it.
type setupError struct {
	code int
	msg  string
}

func (e *setupError) Error() string { return e.msg }

// forwarded are the signals pid 1 passes on to the command.
var forwarded = []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2}

// initMain runs the sandbox init when this process is one (argv[0] marker and environment marker), and
// never returns then.
func initMain() {
	if len(os.Args) != 1 || os.Args[0] != initArg0 {
		return
	}
	switch os.Getenv(initEnv) {
	case "1":
		// First stage, pid 1 of the new pid namespace: the Go runtime's threads took pids 2, 3, ...
		// execve ends them and frees their pids, the new image's threads get higher ones, and
		// pid 2 is left for the command (see lastPid). fds 3 and 4 stay open across the exec.
		err := syscall.Exec("/proc/self/exe", []string{initArg0}, []string{initEnv + "=2"})
		writeStatus(os.NewFile(statusFd, "status"), initStatus{Error: fmt.Sprintf("init: re-exec: %v", err), Code: -1})
		os.Exit(1)
	case "2":
	default:
		return
	}
	// Capabilities, no_new_privs and credentials are per thread: all of them are set on this thread,
	// which also forks the command.
	runtime.LockOSThread()
	os.Exit(initRun())
}

func initRun() (code int) {
	unix.CloseOnExec(specFd)
	unix.CloseOnExec(statusFd)
	status := os.NewFile(statusFd, "status")
	report := func(err error) int {
		st := initStatus{Error: err.Error(), Code: -1}
		var se *setupError
		if errors.As(err, &se) {
			st.Code = se.code
		}
		writeStatus(status, st)
		status.Close()
		return 1
	}
	defer func() {
		if r := recover(); r != nil {
			code = report(fmt.Errorf("init: internal error: %v", r))
		}
	}()

	// CVE-2019-5736: nobody in the container may open /proc/1/exe (our binary) or our fds.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return report(fmt.Errorf("set non-dumpable: %w", err))
	}
	var cfg initConfig
	specFile := os.NewFile(specFd, "spec")
	err := json.NewDecoder(specFile).Decode(&cfg)
	specFile.Close()
	if err != nil {
		return report(fmt.Errorf("read config: %w", err))
	}
	pid, err := setupAndStart(&cfg)
	if err != nil {
		return report(err)
	}
	writeStatus(status, initStatus{Pid: pid})
	status.Close()
	return superviseChild(pid)
}

// setupAndStart builds the container around us and starts the command; it returns the command's pid.
func setupAndStart(cfg *initConfig) (int, error) {
	// Signals that arrive before the command starts are queued, not lost, and forwarded once it runs.
	// (Early, too, because the runtime starts a thread for signal delivery: see lastPid.)
	signal.Notify(sigCh, forwarded...)
	unix.Umask(0o022)
	if cfg.NewNet {
		if err := loopbackUp(); err != nil {
			return 0, err
		}
	}
	lastPid.open()
	if err := setupMounts(cfg); err != nil {
		return 0, err
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return 0, fmt.Errorf("set hostname: %w", err)
	}
	u, err := resolveUser(cfg.User)
	if err != nil {
		return 0, err
	}
	env := withDefaultEnv(cfg.Env, u)
	cwd, err := makeCwd(cfg.Cwd, u.Uid, u.Gid)
	if err != nil {
		return 0, err
	}
	path, err := lookPath(cfg.Args[0], getenv(env, "PATH"), cwd)
	if err != nil {
		return 0, err
	}
	// CVE-2024-21626: whatever the init inherited, only 0, 1 and 2 reach the command.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return 0, fmt.Errorf("close inherited fds: %w", err)
	}
	if err := restrictThread(); err != nil {
		return 0, err
	}
	groups := make([]uint32, len(u.Sgids))
	for i, g := range u.Sgids {
		groups[i] = uint32(g)
	}
	lastPid.reset()
	pid, err := syscall.ForkExec(path, cfg.Args, &syscall.ProcAttr{
		Dir:   cwd,
		Env:   env,
		Files: []uintptr{0, 1, 2},
		Sys: &syscall.SysProcAttr{
			Setsid:     true,
			Credential: &syscall.Credential{Uid: uint32(u.Uid), Gid: uint32(u.Gid), Groups: groups},
		},
	})
	if err != nil {
		code, msg := 126, fmt.Sprintf("exec: %q: %v", cfg.Args[0], err)
		if errors.Is(err, unix.ENOENT) {
			code = 127
			msg += " (its ELF or #! interpreter is missing)" // the file itself was found above
		}
		return 0, &setupError{code: code, msg: msg}
	}
	return pid, nil
}

var sigCh = make(chan os.Signal, 32)

// superviseChild forwards signals to the command, reaps every process that ends up as our child and
// returns the command's exit code (128+signal when it was killed). Returning ends the pid namespace.
func superviseChild(pid int) int {
	go func() {
		for s := range sigCh {
			_ = unix.Kill(pid, s.(syscall.Signal))
		}
	}()
	code, done := -1, false
	for !done {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil { // ECHILD: cannot happen while the command runs
			return 255
		}
		if wpid == pid {
			code, done = exitCode(ws), true
		}
	}
	// Reap what is already dead; the rest dies with us.
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if wpid <= 0 && !errors.Is(err, unix.EINTR) {
			break
		}
	}
	return code
}

func exitCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return -1
}

func getenv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

func hasenv(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

// lastPid makes the command pid 2 of its namespace, as it would be under a single-threaded init: the
// pid namespace's ns_last_pid (opened before /proc/sys becomes read-only) is set back to 1 right before
// the fork. Best effort: when it fails, or a runtime thread is born in between, the command just gets
// another small pid.
var lastPid = &pidCursor{fd: -1}

type pidCursor struct{ fd int }

func (l *pidCursor) open() {
	fd, err := unix.Open("/proc/sys/kernel/ns_last_pid", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fd = -1
	}
	l.fd = fd
}

func (l *pidCursor) reset() {
	if l.fd >= 0 {
		_, _ = unix.Write(l.fd, []byte("1"))
		unix.Close(l.fd)
		l.fd = -1
	}
}
