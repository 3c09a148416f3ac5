// Package sandbox runs a process inside Linux namespaces with pivot_root onto a prepared rootfs.
// It serves RUN steps and `layerbuild run`.
//
// Run re-executes the current binary (/proc/self/exe) as a small init in new mount, pid, uts, ipc and
// cgroup namespaces (and a new network namespace for NetworkNone). The init builds the container's mount
// tree (proc, a minimal /dev, read-only sysfs, masked /proc paths, /etc/hosts, /etc/resolv.conf and
// /etc/hostname), pivots into the rootfs, drops to docker's default capability bounding set with
// no_new_privs set, starts the command as its child with the credentials of Spec.User, forwards signals,
// reaps zombies and exits with the command's exit code. Every binary that calls Run must call Init first
// thing in main (test binaries: in TestMain).
package sandbox

import (
	"context"
	"errors"
	"io"
)

// Network modes.
const (
	NetworkHost = "host" // share the host's network namespace
	NetworkNone = "none" // a new network namespace with only loopback
)

// DefaultPath is the PATH used to find Args[0] (and put in the environment) when Env has no PATH.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultHostname is the hostname used when Spec.Hostname is empty.
const DefaultHostname = "layerbuild"

// Spec describes one process to run.
type Spec struct {
	Rootfs   string   // mounted, writable root filesystem
	Args     []string // argv; Args[0] is looked up in PATH of Env inside the rootfs when not absolute
	Env      []string // KEY=VALUE
	Cwd      string   // inside the rootfs; created when missing
	User     string   // USER as in a Dockerfile: name or uid, optionally :group; "" is root
	Hostname string
	Network  string // NetworkHost or NetworkNone ("" = NetworkHost)
	Hosts    []byte // content for /etc/hosts (nil: a default with localhost and the hostname)
	Resolv   []byte // content for /etc/resolv.conf (nil: the host's)
	Stdin    io.Reader
	Stdout   io.Writer
	Stderr   io.Writer

	// Mounts are extra bind/tmpfs mounts for RUN --mount (see spec_mounts.go).
	Mounts []Mount

	// OnStart, when set, is called once the command has started, with the host pid of the sandbox's init
	// (pid 1 of the container; its /proc/PID/ns/* are the container's namespaces, and signals sent to it
	// are forwarded to the command). It runs on Run's goroutine: it must not block.
	OnStart func(initPid int)

	// OnCreate, when set, is called right after the init was forked, before it reads its config and so
	// before it sets anything up or starts the command (the place to move it into a cgroup: everything
	// it starts is born there). An error kills the init and fails Run.
	OnCreate func(initPid int) error
}

// Run runs spec and returns the process's exit code (128+signal when killed). err is for failures to start
// or set up the sandbox, not for a non-zero exit.
//
// When the command cannot be executed, Run returns 127 (not found) or 126 (not executable) together with
// an error that says why (`exec: "foo": executable file not found in $PATH`); other setup failures
// return -1. When ctx is done, the whole sandbox is killed and Run returns ctx's error.
func Run(ctx context.Context, spec Spec) (exitCode int, err error) {
	if len(spec.Args) == 0 || spec.Args[0] == "" {
		return -1, errors.New("sandbox: no command")
	}
	if spec.Rootfs == "" {
		return -1, errors.New("sandbox: no rootfs")
	}
	switch spec.Network {
	case "", NetworkHost, NetworkNone:
	default:
		return -1, errors.New("sandbox: unknown network mode " + spec.Network)
	}
	return run(ctx, spec)
}

// Init must be the first call in main: in a re-executed sandbox init it sets up the container and never
// returns; otherwise it returns at once.
func Init() {
	containerMonitorMain()
	initMain()
}
