package sandbox

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParsePort(t *testing.T) {
	good := map[string]PortMapping{
		"8080:5000":             {HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 5000, Proto: "tcp"},
		"8080:5000/tcp":         {HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 5000, Proto: "tcp"},
		"0.0.0.0:80:8080":       {HostIP: "0.0.0.0", HostPort: 80, ContainerPort: 8080, Proto: "tcp"},
		"192.168.1.2:81:82":     {HostIP: "192.168.1.2", HostPort: 81, ContainerPort: 82, Proto: "tcp"},
		"[::1]:8080:80":         {HostIP: "::1", HostPort: 8080, ContainerPort: 80, Proto: "tcp"},
		"0:5000":                {HostIP: "127.0.0.1", HostPort: 0, ContainerPort: 5000, Proto: "tcp"},
		"127.0.0.1:1:65535/TCP": {HostIP: "127.0.0.1", HostPort: 1, ContainerPort: 65535, Proto: "tcp"},
	}
	for spec, want := range good {
		got, err := ParsePort(spec)
		if err != nil || got != want {
			t.Errorf("ParsePort(%q) = %+v, %v; want %+v", spec, got, err, want)
		}
	}
	for _, spec := range []string{"", "5000", "8080:5000/udp", "a:5000", "8080:x", "8080:0", "70000:80",
		"1.2.3:8080:80", "host:8080:80", ":8080", "8080:", "-1:80"} {
		if got, err := ParsePort(spec); err == nil {
			t.Errorf("ParsePort(%q) = %+v, want an error", spec, got)
		}
	}
	p, _ := ParsePort("8081:5000")
	if s := p.String(); s != "127.0.0.1:8081->5000/tcp" {
		t.Errorf("String() = %q", s)
	}
}

func TestContainerStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().Round(0)
	c := &Container{
		ID: strings.Repeat("ab", 32), Name: "web", Created: now, Detached: true,
		Config: ContainerConfig{Image: "me/api", ImageID: "sha256:1234", Args: []string{"sh", "-c", "exit 3"},
			Env: []string{"PATH=/bin", "A=b"}, Cwd: "/srv", User: "nobody", Hostname: "h", Network: ContainerNetPrivate,
			StopSignal: "SIGQUIT", AutoRemove: true, Lowers: []string{"/l/2", "/l/1"},
			Ports: []PortMapping{{HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 5000, Proto: "tcp"}}},
		Status: StatusExited, ExitCode: 3, Started: now.Add(time.Second), Finished: now.Add(2 * time.Second),
		MonitorPid: 42, MonitorStart: 4242, InitPid: 43, InitStart: 4343, dir: dir,
	}
	if err := c.save(); err != nil {
		t.Fatal(err)
	}
	got, err := readContainer(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Created.Equal(c.Created) || !got.Started.Equal(c.Started) || !got.Finished.Equal(c.Finished) {
		t.Errorf("times: %v %v %v", got.Created, got.Started, got.Finished)
	}
	got.Created, got.Started, got.Finished = c.Created, c.Started, c.Finished
	if !reflect.DeepEqual(got, c) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, c)
	}
	b, _ := os.ReadFile(filepath.Join(dir, stateFile))
	for _, field := range []string{`"id"`, `"name"`, `"image"`, `"args"`, `"status"`, `"exit_code"`, `"created"`, `"started"`, `"finished"`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("state.json lacks %s:\n%s", field, b)
		}
	}
	// No temp file is left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("dir holds %d entries", len(ents))
	}
}

func TestValidateNameAndSignal(t *testing.T) {
	for _, n := range []string{"web", "a.b-c_d", "X1"} {
		if err := ValidateName(n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	for _, n := range []string{"", "-x", "a b", "a/b", ".x"} {
		if ValidateName(n) == nil {
			t.Errorf("%q accepted", n)
		}
	}
	sigs := map[string]unix.Signal{"": unix.SIGTERM, "SIGQUIT": unix.SIGQUIT, "int": unix.SIGINT, "9": unix.SIGKILL, "SIGUSR1": unix.SIGUSR1}
	for s, want := range sigs {
		if got, err := ParseSignal(s); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseSignal("SIGNOPE"); err == nil {
		t.Error("SIGNOPE accepted")
	}
}

func TestAliveTellsRecycledPids(t *testing.T) {
	_, start, err := pidStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !alive(os.Getpid(), start) {
		t.Error("this process is not alive")
	}
	if alive(os.Getpid(), start+1) {
		t.Error("another start time must mean another process")
	}
	if alive(0, 0) || alive(1<<30, 0) {
		t.Error("no such pid")
	}
}

func TestUnescapeOctal(t *testing.T) {
	if got := unescapeOctal(`/a\040b\134c`); got != `/a b\c` {
		t.Errorf("got %q", got)
	}
}
