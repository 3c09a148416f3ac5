package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// waitDelay bounds how long Run waits for the output pipes after the sandbox died (the pid namespace
// dies with its init, so the pipes normally close at once).
const waitDelay = 10 * time.Second

func run(ctx context.Context, spec Spec) (int, error) {
	if err := ctx.Err(); err != nil {
		return -1, fmt.Errorf("sandbox: %w", err)
	}
	root, err := filepath.Abs(spec.Rootfs)
	if err == nil {
		root, err = filepath.EvalSymlinks(root)
	}
	if err != nil {
		return -1, fmt.Errorf("sandbox: rootfs: %w", err)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return -1, fmt.Errorf("sandbox: rootfs %s is not a directory", root)
	}
	if root == "/" {
		return -1, errors.New("sandbox: rootfs cannot be the host's /")
	}

	tmp, err := os.MkdirTemp("", "layerbuild-sandbox-")
	if err != nil {
		return -1, fmt.Errorf("sandbox: %w", err)
	}
	defer os.RemoveAll(tmp)

	st, err := newStubs(root)
	if err != nil {
		return -1, err
	}
	cfg, err := prepare(spec, root, tmp, st)
	st.sealed()
	code, runErr := -1, err
	if err == nil {
		code, runErr = startInit(ctx, spec, cfg)
	}
	if err := st.cleanup(); err != nil && runErr == nil {
		runErr = err
	}
	return code, runErr
}

// prepare writes the generated /etc files, creates the missing mountpoints and builds the init's config.
func prepare(spec Spec, root, tmp string, st *stubs) (*initConfig, error) {
	hostname := spec.Hostname
	if hostname == "" {
		hostname = DefaultHostname
	}
	cfg := &initConfig{
		Rootfs:   root,
		Args:     spec.Args,
		Env:      spec.Env,
		Cwd:      spec.Cwd,
		User:     spec.User,
		Hostname: hostname,
		NewNet:   spec.Network == NetworkNone,
	}
	var err error
	if cfg.Proc, err = st.ensure("/proc", true); err != nil {
		return nil, err
	}
	if cfg.Dev, err = st.ensure("/dev", true); err != nil {
		return nil, err
	}
	if cfg.Sys, err = st.ensure("/sys", true); err != nil {
		return nil, err
	}

	hosts := spec.Hosts
	if hosts == nil {
		hosts = defaultHosts(hostname)
	}
	resolv := spec.Resolv
	if resolv == nil {
		resolv, err = os.ReadFile("/etc/resolv.conf")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("sandbox: read host resolv.conf: %w", err)
		}
	}
	files := []struct {
		path string
		data []byte
	}{
		{"/etc/hosts", hosts},
		{"/etc/resolv.conf", resolv},
		{"/etc/hostname", []byte(hostname + "\n")},
	}
	for _, f := range files {
		src := filepath.Join(tmp, filepath.Base(f.path))
		if err := os.WriteFile(src, f.data, 0o644); err != nil {
			return nil, fmt.Errorf("sandbox: write %s: %w", f.path, err)
		}
		if err := os.Chmod(src, 0o644); err != nil { // whatever the umask
			return nil, fmt.Errorf("sandbox: chmod %s: %w", f.path, err)
		}
		target, err := st.ensure(f.path, false)
		if err != nil {
			return nil, err
		}
		for _, special := range []string{cfg.Proc, cfg.Dev, cfg.Sys} {
			if target == special || hasPathPrefix(target, special) {
				return nil, fmt.Errorf("sandbox: %s resolves to %s, inside %s", f.path, target, special)
			}
		}
		cfg.Files = append(cfg.Files, bindFile{Source: src, Target: target})
	}
	if cfg.Mounts, err = prepareExtraMounts(spec, st, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

func defaultHosts(hostname string) []byte {
	return []byte("127.0.0.1\tlocalhost\n" +
		"::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"127.0.1.1\t" + hostname + "\n")
}

func hasPathPrefix(p, dir string) bool {
	return len(p) > len(dir) && p[:len(dir)] == dir && p[len(dir)] == '/'
}

// startInit re-executes the current binary as the sandbox init and waits for it.
func startInit(ctx context.Context, spec Spec, cfg *initConfig) (int, error) {
	specR, specW, err := os.Pipe()
	if err != nil {
		return -1, fmt.Errorf("sandbox: %w", err)
	}
	defer specW.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		specR.Close()
		return -1, fmt.Errorf("sandbox: %w", err)
	}
	defer statusR.Close()

	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWCGROUP)
	if cfg.NewNet {
		flags |= unix.CLONE_NEWNET
	}
	cmd := exec.CommandContext(ctx, "/proc/self/exe")
	cmd.Args = []string{initArg0}
	cmd.Env = []string{initEnv + "=1"}
	cmd.Dir = "/"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = spec.Stdin, spec.Stdout, spec.Stderr
	cmd.ExtraFiles = []*os.File{specR, statusW} // fds 3 and 4
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = waitDelay

	// Pdeathsig fires when the thread that forked the init exits: keep this goroutine on its thread
	// until the init is gone, so the runtime cannot retire that thread under us.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err = cmd.Start()
	specR.Close()
	statusW.Close()
	if err != nil {
		return -1, fmt.Errorf("sandbox: start init: %w", err)
	}

	if spec.OnCreate != nil {
		if err := spec.OnCreate(cmd.Process.Pid); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return -1, fmt.Errorf("sandbox: %w", err)
		}
	}
	// The init reads the whole config before anything else; a failed write shows up as its status.
	_ = json.NewEncoder(specW).Encode(cfg)
	specW.Close()

	status, statusErr := readStatus(statusR)
	if statusErr == nil && status.Error == "" && status.Pid > 0 && spec.OnStart != nil {
		spec.OnStart(cmd.Process.Pid)
	}
	waitErr := cmd.Wait()
	if errors.Is(waitErr, exec.ErrWaitDelay) {
		waitErr = nil
	}
	code, killed := -1, false
	if ps := cmd.ProcessState; ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
			switch {
			case ws.Exited():
				code = ws.ExitStatus()
			case ws.Signaled():
				code = 128 + int(ws.Signal())
				killed = ws.Signal() == syscall.SIGKILL
			}
		}
	}
	switch {
	case killed && ctx.Err() != nil:
		return code, fmt.Errorf("sandbox: %w", ctx.Err())
	case statusErr != nil:
		return -1, statusErr
	case status.Error != "":
		if status.Code == 0 {
			status.Code = -1
		}
		return status.Code, errors.New("sandbox: " + status.Error)
	case status.Pid == 0:
		if waitErr == nil {
			waitErr = fmt.Errorf("exit status %d", code)
		}
		return -1, fmt.Errorf("sandbox: init died before starting the command: %w", waitErr)
	}
	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) {
		return code, fmt.Errorf("sandbox: wait: %w", waitErr)
	}
	return code, nil
}
