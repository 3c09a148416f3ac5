package sandbox

import (
	"debug/elf"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestHostname(t *testing.T) {
	t.Parallel()
	r := runBox(t, Spec{Args: sh("hostname; cat /etc/hostname; grep -c 'box-7' /etc/hosts"), Hostname: "box-7"}).ok(t)
	if got, want := r.stdout, "box-7\nbox-7\n1\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	host, _ := os.Hostname()
	r = runBox(t, Spec{Args: []string{"hostname"}}).ok(t)
	if got := strings.TrimSpace(r.stdout); got != DefaultHostname || got == host {
		t.Errorf("default hostname = %q, want %q", got, DefaultHostname)
	}
}

func TestPidNamespace(t *testing.T) {
	t.Parallel()
	r := runBox(t, Spec{Args: sh(`echo $$; ps -o pid | tail -n +2`)}).ok(t)
	lines := strings.Fields(r.stdout)
	if len(lines) == 0 || lines[0] != "2" {
		t.Fatalf("the command's pid is %q, want 2 (init is 1)\n%s", lines, r.stdout)
	}
	for _, p := range lines[1:] {
		n, err := strconv.Atoi(p)
		if err != nil || n > 10 {
			t.Errorf("ps shows a foreign pid %q:\n%s", p, r.stdout)
		}
	}
	if len(lines) > 5 { // pid line + init, sh, ps, tail
		t.Errorf("too many processes visible:\n%s", r.stdout)
	}
}

func TestPrivileges(t *testing.T) {
	t.Parallel()
	const docker = "00000000a80425fb"
	status := sh(`grep -E '^(NoNewPrivs|Cap(Inh|Prm|Eff|Bnd|Amb)):' /proc/self/status`)
	for _, tc := range []struct {
		user string
		want map[string]string
	}{
		{"", map[string]string{"NoNewPrivs": "1", "CapInh": "0000000000000000", "CapPrm": docker, "CapEff": docker, "CapBnd": docker, "CapAmb": "0000000000000000"}},
		{"nobody", map[string]string{"NoNewPrivs": "1", "CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000", "CapBnd": docker, "CapAmb": "0000000000000000"}},
	} {
		t.Run("user="+tc.user, func(t *testing.T) {
			t.Parallel()
			r := runBox(t, Spec{Args: status, User: tc.user}).ok(t)
			got := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
				k, v, _ := strings.Cut(line, ":")
				got[k] = strings.TrimSpace(v)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestInitIsOpaque(t *testing.T) {
	t.Parallel()
	// CVE-2019-5736: /proc/1/exe is our host binary; the command must not reach it, nor init's fds.
	// (Listing /proc/1/fd is allowed to root, as with any process; following the links is not.)
	script := `readlink /proc/1/exe && echo EXE; readlink /proc/1/fd/1 && echo FD; cat /proc/1/environ && echo ENV;` +
		`readlink /proc/1/root && echo ROOT; readlink /proc/1/cwd && echo CWD; true`
	r := runBox(t, Spec{Args: sh(script)}).ok(t)
	for _, leak := range []string{"EXE", "FD", "ENV", "ROOT", "CWD"} {
		if strings.Contains(r.stdout, leak) {
			t.Errorf("init's %s is reachable:\n%s", leak, r.stdout)
		}
	}
}

func TestNetwork(t *testing.T) {
	t.Parallel()
	hostIfs := ifaces(t, mustRead(t, "/proc/net/dev"))
	for _, tc := range []struct {
		network string
		want    []string
	}{
		{NetworkNone, []string{"lo"}},
		{NetworkHost, hostIfs},
		{"", hostIfs},
	} {
		t.Run("network="+tc.network, func(t *testing.T) {
			t.Parallel()
			r := runBox(t, Spec{Args: sh("cat /proc/net/dev; echo ==; cat /sys/class/net/lo/flags"), Network: tc.network}).ok(t)
			dev, flags, _ := strings.Cut(r.stdout, "==\n")
			if got := ifaces(t, dev); strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("interfaces %v, want %v", got, tc.want)
			}
			f, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(flags), "0x"), 16, 32)
			if err != nil || f&syscall.IFF_UP == 0 {
				t.Errorf("lo is not up: flags %q", flags)
			}
		})
	}
	if len(hostIfs) < 2 {
		t.Log("the host has only lo: NetworkHost and NetworkNone look alike here")
	}
}

func ifaces(t *testing.T, procNetDev string) []string {
	var out []string
	for _, line := range strings.Split(procNetDev, "\n") {
		if name, _, ok := strings.Cut(line, ":"); ok && !strings.Contains(name, "|") {
			out = append(out, strings.TrimSpace(name))
		}
	}
	sort.Strings(out)
	return out
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHostInvisible(t *testing.T) {
	t.Parallel()
	hostDir := t.TempDir()
	marker := filepath.Join(hostDir, "host-marker")
	mustWrite(t, marker, "secret", 0o644)
	rootfs := newRootfs(t)
	// The rootfs lives in a host temp dir as well: neither it nor its sibling may be reachable.
	script := `cat ` + marker + ` && echo REACHED; ls ` + hostDir + ` && echo REACHED;` +
		`ls -d ` + rootfs + ` && echo REACHED; grep -c . /proc/self/mountinfo >/dev/null;` +
		`grep -F ` + hostDir + ` /proc/self/mountinfo && echo REACHED; true`
	r := runBox(t, Spec{Rootfs: rootfs, Args: sh(script)}).ok(t)
	if strings.Contains(r.stdout, "REACHED") || strings.Contains(r.stdout, "secret") {
		t.Errorf("host files are reachable:\n%s", r.stdout)
	}
}

// pivot_root, not chroot: even with CAP_SYS_CHROOT the command cannot climb out of its root.
func TestChrootEscape(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "host-marker")
	mustWrite(t, marker, "secret", 0o644)
	rootfs := newRootfs(t)
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if f, err := elf.Open("/proc/self/exe"); err == nil {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Skip("the test binary is not static (-race?): it cannot serve as a helper in the rootfs")
			}
		}
		f.Close()
	}
	mustWrite(t, filepath.Join(rootfs, "helper"), string(self), 0o755)
	r := runBox(t, Spec{Rootfs: rootfs, Args: []string{"/helper", marker}, Env: []string{helperEnv + "=chroot-escape"}}).ok(t)
	if strings.Contains(r.stdout, "REACHED") || !strings.Contains(r.stdout, "no such file") {
		t.Errorf("escape: %q", r.stdout)
	}
}

func TestNoLeakedFds(t *testing.T) {
	// Not parallel: it plants a non-close-on-exec fd in the test process, as a careless caller might.
	fd, err := syscall.Open("/", syscall.O_RDONLY|syscall.O_DIRECTORY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	r := runBox(t, Spec{Args: []string{"ls", "/proc/self/fd"}}).ok(t)
	// ls's own directory fd is 3.
	if got := strings.Fields(r.stdout); strings.Join(got, " ") != "0 1 2 3" {
		t.Errorf("fds in the sandbox: %v, want 0 1 2 and ls's own 3", got)
	}
}

func TestMountsInside(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, script, want string
		user               string
	}{
		{"dev nodes", `ls /dev | tr '\n' ' '`, "fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero ", ""},
		{"dev nodes work for a user", `echo x > /dev/null && head -c 5 /dev/zero | wc -c && head -c 3 /dev/urandom | wc -c && echo ok > /dev/shm/f && cat /dev/shm/f`, "5\n3\nok", "nobody"},
		{"dev full", `echo x > /dev/full && echo WROTE; true`, "", ""},
		{"ptmx", `readlink /dev/ptmx; test -c /dev/pts/ptmx && echo pts`, "pts/ptmx\npts", ""},
		{"proc is ours", `cut -d' ' -f4 /proc/$$/stat`, "1", ""},
		{"masked files", `for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /proc/latency_stats; do test -e $f && echo $(wc -c < $f); done | sort -u`, "0", ""},
		{"masked dirs", `ls -A /sys/firmware | wc -l; touch /sys/firmware/x 2>/dev/null || echo ro`, "0\nro", ""},
		{"sys read-only", `touch /sys/x 2>/dev/null || echo ro`, "ro", ""},
		{"proc sys read-only", `echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null || echo ro; awk '$5 == "/proc/sys" {print $6}' /proc/self/mountinfo | cut -c1-2`, "ro\nro", ""},
		{"sysrq read-only", `echo h > /proc/sysrq-trigger 2>/dev/null || echo ro`, "ro", ""},
		{"root is the rootfs", `awk '$5 == "/" {print $5}' /proc/self/mountinfo; test -x /bin/busybox && echo bb`, "/\nbb", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runBox(t, Spec{Args: sh(tc.script), User: tc.user}).ok(t)
			if got := strings.TrimRight(r.stdout, "\n"); got != tc.want {
				t.Errorf("got %q, want %q (stderr %q)", got, tc.want, r.stderr)
			}
		})
	}
}

func TestZombiesReaped(t *testing.T) {
	t.Parallel()
	// The inner shell exits at once; its background sleep is re-parented to pid 1 and must be reaped
	// when it exits, or it stays a zombie.
	script := `sh -c 'sleep 0.1 & exit 0'; sleep 0.6; cat /proc/[0-9]*/stat | awk '{print $3}' | sort | tr -d '\n'`
	r := runBox(t, Spec{Args: sh(script)}).ok(t)
	if strings.Contains(r.stdout, "Z") {
		t.Errorf("zombie left: states %q", r.stdout)
	}
	if !strings.Contains(r.stdout, "R") {
		t.Errorf("unexpected states %q", r.stdout)
	}
}

func TestSignalsForwarded(t *testing.T) {
	t.Parallel()
	// pid 1 receives SIGTERM (sent from inside, the only way a test reaches it) and passes it on.
	script := `trap 'echo got TERM; exit 5' TERM; kill -TERM 1; sleep 5 & wait $!; echo not forwarded`
	r := runBox(t, Spec{Args: sh(script)})
	if r.err != nil || r.code != 5 || strings.TrimSpace(r.stdout) != "got TERM" {
		t.Errorf("code %d, err %v, stdout %q", r.code, r.err, r.stdout)
	}
}
