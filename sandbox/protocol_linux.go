package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// The parent and the init talk over two pipes passed as extra files:
//   - fd 3 (specFd): the parent writes one initConfig as JSON and closes it;
//   - fd 4 (statusFd): the init writes one initStatus as JSON, then closes it (close-on-exec, so the
//     command never holds it). An empty stream means the init died before it could report.
const (
	specFd   = 3
	statusFd = 4

	initArg0  = "layerbuild-sandbox-init"  // argv[0] of a re-executed init
	initEnv   = "_LAYERBUILD_SANDBOX_INIT" // "1": first stage, "2": after the re-exec
	maxStatus = 1 << 20
)

// bindFile is a host file bind-mounted onto a path of the rootfs.
type bindFile struct {
	Source string // host path
	Target string // resolved path inside the rootfs (no symlinks), starting with "/"
}

// initConfig is everything the init needs; all paths inside the rootfs are already resolved (symlinks
// followed inside the rootfs) by the parent, which also created the mountpoints that were missing.
type initConfig struct {
	Rootfs   string     // absolute host path
	Proc     string     // resolved mountpoints inside Rootfs
	Dev      string     //
	Sys      string     //
	Files    []bindFile // /etc/hosts, /etc/resolv.conf, /etc/hostname
	Args     []string
	Env      []string
	Cwd      string
	User     string
	Hostname string
	NewNet   bool

	Mounts []extraMount // Spec.Mounts, resolved (spec_mounts_linux.go)
}

// initStatus is the init's report. Pid > 0: the command started. Error != "": setup failed; Code is the
// exit code to report (127/126 for exec failures, -1 otherwise).
type initStatus struct {
	Pid   int    `json:",omitempty"`
	Error string `json:",omitempty"`
	Code  int    `json:",omitempty"`
}

func readStatus(r io.Reader) (initStatus, error) {
	var st initStatus
	b, err := io.ReadAll(io.LimitReader(r, maxStatus))
	if err != nil {
		return st, fmt.Errorf("sandbox: read init status: %w", err)
	}
	if len(b) == 0 {
		return st, nil
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("sandbox: bad init status %q: %w", b, err)
	}
	return st, nil
}

func writeStatus(f *os.File, st initStatus) {
	b, _ := json.Marshal(st)
	_, _ = f.Write(b)
}
