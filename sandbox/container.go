package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Containers (`layerbuild run`) live under one directory, ROOT/containers, one directory per container:
//
//	<id>/state.json   the container: its config (written once) and its state (rewritten atomically)
//	<id>/log          what a detached container writes to stdout and stderr, as plain text
//	<id>/upper/       the container's writable layer (overlay upper dir) and work/ (overlay work dir)
//	<id>/rootfs/      where its monitor mounts the overlay, in a mount namespace of its own
//
// Every container runs under a monitor: a re-execution of our binary (see Init) in a new session and a new
// mount namespace, the parent of the sandbox's init. The monitor mounts the rootfs, holds the published
// ports, records the state and the exit code, and removes the container on exit for --rm. Its mount
// namespace dies with it and the sandbox, so no mount of a container is ever visible on the host, and a
// SIGKILL of anything leaks none. A foreground run's monitor dies with the CLI (and the sandbox with the
// monitor: parent-death signals); a detached one is nobody's child and lives as long as the container.

// Container statuses (docker's words).
const (
	StatusCreated = "created"
	StatusRunning = "running"
	StatusExited  = "exited"
)

// Network modes of a container (`run --network`).
const (
	ContainerNetPrivate = "private" // a network namespace of its own with loopback (the default)
	ContainerNetHost    = "host"
	ContainerNetNone    = "none"
)

// ErrNoSuchContainer is returned (wrapped) when a reference names no container.
var ErrNoSuchContainer = errors.New("no such container")

// PortMapping publishes a container port on the host: HostIP:HostPort -> ContainerPort.
type PortMapping struct {
	HostIP        string `json:"host_ip"`
	HostPort      int    `json:"host_port"`
	ContainerPort int    `json:"container_port"`
	Proto         string `json:"proto"` // "tcp"
}

func (p PortMapping) String() string {
	return fmt.Sprintf("%s->%d/%s", net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort)), p.ContainerPort, p.Proto)
}

// ParsePort parses -p [IP:]HOSTPORT:CTRPORT[/tcp]. The host IP defaults to 127.0.0.1 (never every address
// unless asked for: -p 0.0.0.0:8080:80); IPv6 addresses go in brackets ([::1]:8080:80). HOSTPORT 0 picks
// a free port when the container starts.
func ParsePort(spec string) (PortMapping, error) {
	bad := func(why string) (PortMapping, error) {
		return PortMapping{}, fmt.Errorf("invalid port spec %q: %s (want [IP:]HOSTPORT:CONTAINERPORT[/tcp])", spec, why)
	}
	p := PortMapping{HostIP: "127.0.0.1", Proto: "tcp"}
	rest := spec
	if i := strings.LastIndex(rest, "/"); i >= 0 {
		p.Proto = strings.ToLower(rest[i+1:])
		rest = rest[:i]
		if p.Proto != "tcp" {
			return bad("only tcp is supported")
		}
	}
	i := strings.LastIndex(rest, ":")
	if i < 0 {
		return bad("no host port")
	}
	ctr, host := rest[i+1:], rest[:i]
	if j := strings.LastIndex(host, ":"); j >= 0 && !strings.HasSuffix(host, "]") {
		ip := strings.TrimSuffix(strings.TrimPrefix(host[:j], "["), "]")
		host = host[j+1:]
		if net.ParseIP(ip) == nil {
			return bad("bad IP address " + ip)
		}
		p.HostIP = ip
	}
	var err error
	if p.ContainerPort, err = parsePortNumber(ctr, false); err != nil {
		return bad("container port: " + err.Error())
	}
	if p.HostPort, err = parsePortNumber(host, true); err != nil {
		return bad("host port: " + err.Error())
	}
	return p, nil
}

func parsePortNumber(s string, zeroOK bool) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !zeroOK) {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	return n, nil
}

// ContainerConfig is what a container runs; it never changes after Create.
type ContainerConfig struct {
	Image      string        `json:"image"`    // the reference the user gave
	ImageID    string        `json:"image_id"` // config digest
	Args       []string      `json:"args"`     // entrypoint + cmd, resolved
	Env        []string      `json:"env"`
	Cwd        string        `json:"cwd,omitempty"`
	User       string        `json:"user,omitempty"`
	Hostname   string        `json:"hostname,omitempty"`
	Network    string        `json:"network"`               // ContainerNet*
	StopSignal string        `json:"stop_signal,omitempty"` // SIGTERM when empty
	Ports      []PortMapping `json:"ports,omitempty"`
	AutoRemove bool          `json:"auto_remove,omitempty"` // --rm
	Lowers     []string      `json:"lowers"`                // the image's unpacked layers, topmost first
	Limits     Limits        `json:"limits,omitzero"`       // --memory, --cpus, --pids-limit
}

// Container is the content of state.json.
type Container struct {
	ID       string          `json:"id"`
	Name     string          `json:"name"`
	Created  time.Time       `json:"created"`
	Config   ContainerConfig `json:"config"`
	Detached bool            `json:"detached,omitempty"`

	Status   string    `json:"status"`
	ExitCode int       `json:"exit_code"`
	Error    string    `json:"error,omitempty"` // why it failed to start, or why its monitor vanished
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// OOMKilled: the kernel's OOM killer killed a process of the container (its memory limit was hit).
	OOMKilled bool `json:"oom_killed,omitempty"`
	// Cgroups are the directories of the container's own cgroup (only with limits), removed with it.
	Cgroups []string `json:"cgroups,omitempty"`

	// The monitor and the sandbox init, each with its start time (clock ticks after boot, from
	// /proc/PID/stat), so that a recycled pid is never taken for them.
	MonitorPid   int    `json:"monitor_pid,omitempty"`
	MonitorStart uint64 `json:"monitor_start,omitempty"`
	InitPid      int    `json:"init_pid,omitempty"`
	InitStart    uint64 `json:"init_start,omitempty"`

	dir string
}

// Dir is the container's directory.
func (c *Container) Dir() string { return c.dir }

// LogPath is the file a detached container's output goes to.
func (c *Container) LogPath() string { return filepath.Join(c.dir, "log") }

// ShortID is the first 12 hex digits of the ID, as docker shows it.
func (c *Container) ShortID() string {
	if len(c.ID) > 12 {
		return c.ID[:12]
	}
	return c.ID
}

// Running reports whether the state says running (see Containers.Refresh for the truth).
func (c *Container) Running() bool { return c.Status == StatusRunning }

const stateFile = "state.json"

// readContainer reads dir/state.json.
func readContainer(dir string) (*Container, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	var c Container
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("container %s: bad %s: %w", filepath.Base(dir), stateFile, err)
	}
	c.dir = dir
	return &c, nil
}

// save writes state.json atomically (temp file, rename): readers see the old or the new state, whatever
// dies when. No fsync: the state matters while the machine runs (containers do not survive a reboot).
func (c *Container) save() error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(c.dir, fmt.Sprintf(".%s.%d.tmp", stateFile, os.Getpid()))
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("container %s: write state: %w", c.ShortID(), err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, stateFile)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("container %s: write state: %w", c.ShortID(), err)
	}
	return nil
}

func newContainerID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// ValidateName checks a --name as docker does.
func ValidateName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
	}
	if len(name) > 128 {
		return fmt.Errorf("invalid container name %q: longer than 128 characters", name)
	}
	return nil
}

var (
	nameLeft  = []string{"brave", "calm", "eager", "fervent", "gentle", "happy", "keen", "lucid", "merry", "nifty", "quirky", "sharp", "tender", "vivid", "witty", "zealous"}
	nameRight = []string{"babbage", "curie", "dijkstra", "euler", "gauss", "hopper", "knuth", "lamport", "lovelace", "noether", "pike", "ritchie", "shannon", "thompson", "turing", "wirth"}
)

// randomName makes a docker-style name (adjective_scientist), with a number after a few collisions.
func randomName(try int) string {
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	n := nameLeft[int(b[0])%len(nameLeft)] + "_" + nameRight[int(b[1])%len(nameRight)]
	if try > 3 {
		n += strconv.Itoa(try)
	}
	return n
}
