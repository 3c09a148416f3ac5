package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	Init()
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain(os.Getenv(helperEnv), os.Args[1:]))
	}
	os.Exit(m.Run())
}

// helperEnv makes the test binary, copied into a rootfs, act as a tool inside the sandbox.
const helperEnv = "SANDBOX_TEST_HELPER"

func helperMain(mode string, args []string) int {
	switch mode {
	case "chroot-escape":
		// The classic escape with CAP_SYS_CHROOT (docker's default set has it): chroot into a
		// subdirectory without entering it, walk up from the cwd left outside, read a host file.
		if err := os.Mkdir("/x", 0o755); err != nil {
			fmt.Println(err)
			return 1
		}
		if err := syscall.Chroot("/x"); err != nil {
			fmt.Println(err)
			return 1
		}
		if b, err := os.ReadFile(strings.Repeat("../", 64) + args[0]); err == nil {
			fmt.Printf("REACHED %s\n", b)
		} else {
			fmt.Println(err)
		}
		return 0
	}
	return 2
}

const busybox = "/bin/busybox"

const testPasswd = `root:x:0:0:root:/root:/bin/sh
alice:x:1000:1000:Alice:/home/alice:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
`

const testGroup = `root:x:0:
wheel:x:10:alice
alice:x:1000:
users:x:100:alice,bob
nogroup:x:65534:
`

// testApplets are the busybox applets the tests use (symlinking all of them is slow on some disks).
var testApplets = strings.Fields(`awk cat chmod cut echo env false grep head hostname id kill ln ls mkdir
	mknod mv ps pwd readlink rm setsid sh sleep sort stat tail test touch tr true wc`)

// newRootfs builds a busybox rootfs in a temp dir: /bin/busybox (a copy, never a link to the host's) and
// the applets the tests use, /etc/passwd and /etc/group. No /proc, /dev, /sys or /etc/hosts.
func newRootfs(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("sandbox tests need root")
	}
	if _, err := os.Stat(busybox); err != nil {
		t.Skip("needs a static " + busybox)
	}
	root := t.TempDir()
	mustMkdir(t, filepath.Join(root, "bin"))
	mustMkdir(t, filepath.Join(root, "etc"))
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(root, "bin/busybox"), string(data), 0o755)
	for _, a := range testApplets {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite(t, filepath.Join(root, "etc/passwd"), testPasswd, 0o644)
	mustWrite(t, filepath.Join(root, "etc/group"), testGroup, 0o644)
	return root
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

type result struct {
	code   int
	err    error
	stdout string
	stderr string
}

// runBox runs spec (Rootfs filled in when empty) with a time limit and captures its output.
func runBox(t *testing.T, spec Spec) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if spec.Rootfs == "" {
		spec.Rootfs = newRootfs(t)
	}
	spec.Stdout, spec.Stderr = &stdout, &stderr
	code, err := Run(ctx, spec)
	return result{code: code, err: err, stdout: stdout.String(), stderr: stderr.String()}
}

// sh runs a busybox shell script.
func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

// ok fails unless r is a clean run with exit code 0.
func (r result) ok(t *testing.T) result {
	t.Helper()
	if r.err != nil || r.code != 0 {
		t.Fatalf("code %d, err %v\nstdout: %s\nstderr: %s", r.code, r.err, r.stdout, r.stderr)
	}
	return r
}
