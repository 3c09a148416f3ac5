package builder

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestExpandPorts(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		bad  bool
	}{
		{in: "80", want: []string{"80/tcp"}},
		{in: "53/UDP", want: []string{"53/udp"}},
		{in: "8000-8002/tcp", want: []string{"8000/tcp", "8001/tcp", "8002/tcp"}},
		{in: "80/icmp", bad: true},
		{in: "http", bad: true},
		{in: "9-3", bad: true},
		{in: "70000", bad: true},
	}
	for _, tc := range tests {
		got, err := expandPorts(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && !slices.Equal(got, tc.want)) {
			t.Errorf("expandPorts(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestCheckSignal(t *testing.T) {
	for _, ok := range []string{"SIGTERM", "TERM", "sigquit", "9", "SIGRTMIN+3"} {
		if err := checkSignal(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"SIGNOPE", "0", "65", ""} {
		if checkSignal(bad) == nil {
			t.Errorf("%q should be invalid", bad)
		}
	}
}

func TestResolveOwner(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "group"), []byte("root:x:0:\nstaff:x:50:\n"), 0o644)
	tests := []struct {
		spec     string
		uid, gid int
		bad      bool
	}{
		{spec: "app", uid: 1000, gid: 1001},
		{spec: "app:staff", uid: 1000, gid: 50},
		{spec: "42", uid: 42, gid: 42},
		{spec: "42:7", uid: 42, gid: 7},
		{spec: "0:staff", uid: 0, gid: 50},
		{spec: "ghost", bad: true},
		{spec: "app:nogroup", bad: true},
	}
	for _, tc := range tests {
		o, err := resolveOwner(root, tc.spec)
		if tc.bad {
			if err == nil || !strings.Contains(err.Error(), "unable to find") {
				t.Errorf("%s: want a lookup error, got %v", tc.spec, err)
			}
			continue
		}
		if err != nil || o.uid != tc.uid || o.gid != tc.gid {
			t.Errorf("%s = %+v, %v; want %d:%d", tc.spec, o, err, tc.uid, tc.gid)
		}
	}
	// /etc/passwd is read inside the rootfs even through an absolute symlink.
	evil := t.TempDir()
	os.Symlink("/etc", filepath.Join(evil, "etc"))
	if _, err := resolveOwner(evil, "root"); err == nil {
		t.Error("a symlinked /etc must not reach the host's passwd")
	}
}

func TestTailBuffer(t *testing.T) {
	tb := &tailBuffer{max: 64}
	for i := 0; i < 100; i++ {
		tb.Write([]byte("line " + strings.Repeat("x", i%5) + "\n"))
	}
	ls := tb.lines(3)
	if len(ls) != 3 || len(tb.buf) > 64 {
		t.Errorf("tail keeps the last lines within its limit: %q (%d bytes)", ls, len(tb.buf))
	}
	e := &RunError{Argv: []string{"/bin/sh", "-c", "exit 3"}, ExitCode: 3, Tail: []string{"boom"}}
	if msg := e.Error(); !strings.Contains(msg, "exit code: 3") || !strings.Contains(msg, "| boom") {
		t.Errorf("RunError: %q", msg)
	}
}
