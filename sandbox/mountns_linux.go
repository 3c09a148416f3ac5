package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

const mountNSEnv = "_LAYERBUILD_PRIVATE_MNTNS"

// EnterPrivateMountNamespace makes the rest of this command run in a new mount namespace of its own, so the
// overlay mounts it makes vanish with it, even when it is killed with SIGKILL. The first call re-executes the
// command (same argv, stdio and environment) in the new namespace and, in this process, never returns: it
// forwards signals and exits with the child's status. In the child it makes every mount private and returns.
func EnterPrivateMountNamespace() error {
	if os.Getenv(mountNSEnv) == "1" {
		os.Unsetenv(mountNSEnv)
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("sandbox: make mounts private: %w", err)
		}
		return nil
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), mountNSEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
	// Pdeathsig follows the forking thread: keep it alive for the child's whole life.
	runtime.LockOSThread()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("sandbox: re-exec in a private mount namespace: %w", err)
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			os.Exit(128 + int(st.Signal()))
		}
		os.Exit(ee.ExitCode())
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
	return nil
}
