package sandbox

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestParseCgroupLayout(t *testing.T) {
	mountinfo := `25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
31 25 0:28 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
32 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
33 25 0:30 /outer /sys/fs/cgroup/freezer rw,nosuid - cgroup cgroup rw,freezer`
	self := `9:name=systemd:/
8:pids:/
4:memory:/app/x
1:cpu,cpuacct:/user.slice
0::/`
	l := parseCgroupLayout(mountinfo, self)
	want := map[string]string{
		"memory": "/sys/fs/cgroup/memory/app/x",
		"pids":   "/sys/fs/cgroup/pids",
		"cpu":    "/sys/fs/cgroup/cpu,cpuacct/user.slice",
	}
	for c, w := range want {
		if l.v1[c] != w {
			t.Errorf("%s: %q, want %q", c, l.v1[c], w)
		}
	}
	if l.v2 {
		t.Error("hybrid mode taken for cgroup v2")
	}
	dirs, err := l.cgroupDirs("abc", Limits{Memory: 1 << 26})
	if err != nil || len(dirs) != 1 || dirs["memory"] != "/sys/fs/cgroup/memory/app/x/layerbuild-abc" {
		t.Errorf("cgroupDirs(memory only) = %v, %v", dirs, err)
	}
	if _, err := (&cgroupLayout{v1: map[string]string{}}).cgroupDirs("abc", Limits{PidsLimit: 3}); err == nil {
		t.Error("a missing controller gave no error")
	}
}

func readTrim(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func readAll(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// The writes go to a temporary directory standing in for the cgroup filesystems.
func TestCreateCgroupV1(t *testing.T) {
	root := t.TempDir()
	l := &cgroupLayout{v1: map[string]string{}}
	for _, c := range cgroupV1Controllers {
		l.v1[c] = filepath.Join(root, c, "parent")
		if err := os.MkdirAll(l.v1[c], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	lim := Limits{Memory: 64 << 20, NanoCPUs: 5e8, PidsLimit: 20}
	dirs, err := l.cgroupDirs("id1", lim)
	if err != nil {
		t.Fatal(err)
	}
	// A directory that exists already (another container's?) is an error, and what was made is undone.
	if err := os.Mkdir(dirs["cpu"], 0o755); err != nil {
		t.Fatal(err)
	}
	if err := createCgroup(dirs, false, lim); err == nil {
		t.Fatal("createCgroup over an existing directory succeeded")
	}
	for _, c := range []string{"memory", "pids"} {
		if _, err := os.Stat(dirs[c]); !os.IsNotExist(err) {
			t.Errorf("%s left after a failed create: %v", dirs[c], err)
		}
	}
	os.Remove(dirs["cpu"])

	// Without swap accounting (no memsw file), memsw is not written.
	if err := createCgroup(dirs, false, lim); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, dirs["memory"]); len(got) != 1 || got["memory.limit_in_bytes"] != "67108864" {
		t.Errorf("memory files: %v", got)
	}
	if got := readAll(t, dirs["pids"]); len(got) != 1 || got["pids.max"] != strconv.FormatInt(20+pidsSlack(), 10) {
		t.Errorf("pids files: %v", got)
	}
	// Once the command runs: the init leaves for the parent pids cgroup, and the limit is the one asked for.
	if err := settlePids(dirs, false, lim, 4321); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, dirs["pids"]); got["pids.max"] != "20" {
		t.Errorf("pids.max after settlePids: %v", got)
	}
	if got := readTrim(t, filepath.Join(filepath.Dir(dirs["pids"]), "cgroup.procs")); got != "4321" {
		t.Errorf("the init was not moved to the parent pids cgroup: %q", got)
	}
	if got := readAll(t, dirs["cpu"]); len(got) != 2 || got["cpu.cfs_quota_us"] != "50000" || got["cpu.cfs_period_us"] != "100000" {
		t.Errorf("cpu files: %v", got)
	}
	if err := enterCgroup(sortedDirs(dirs), 1234); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, dirs["cpu"])["cgroup.procs"]; got != "1234" {
		t.Errorf("cgroup.procs = %q", got)
	}
	os.WriteFile(filepath.Join(dirs["memory"], "memory.oom_control"), []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"), 0o644)
	if n := oomKills(sortedDirs(dirs)); n != 2 {
		t.Errorf("oomKills = %d, want 2", n)
	}
	if err := removeCgroupDirs(sortedDirs(dirs), 0); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s not removed: %v", d, err)
		}
	}
	for _, c := range cgroupV1Controllers { // the parents stay
		if _, err := os.Stat(l.v1[c]); err != nil {
			t.Error(err)
		}
	}
}

func TestCreateCgroupMemsw(t *testing.T) {
	files := limitFiles(map[string]string{"memory": "/m"}, false, Limits{Memory: 100 << 20})
	if len(files) != 2 || files[0].name != "memory.limit_in_bytes" || files[1].name != "memory.memsw.limit_in_bytes" ||
		files[1].value != "104857600" || !files[1].optional {
		t.Errorf("memory writes: %+v (memory first, then memsw to the same value)", files)
	}
}

func TestCreateCgroupV2(t *testing.T) {
	root := t.TempDir()
	l := &cgroupLayout{v2: true, v2Root: root}
	lim := Limits{Memory: 32 << 20, NanoCPUs: 1.5e9, PidsLimit: 7}
	dirs, err := l.cgroupDirs("id2", lim)
	if err != nil || dirs[""] != filepath.Join(root, "layerbuild-id2") {
		t.Fatalf("cgroupDirs = %v, %v", dirs, err)
	}
	if err := createCgroup(dirs, true, lim); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "cgroup.subtree_control")); string(b) != "+memory +pids +cpu" {
		t.Errorf("subtree_control = %q", b)
	}
	got := readAll(t, dirs[""])
	if len(got) != 3 || got["memory.max"] != "33554432" || got["pids.max"] != strconv.FormatInt(7+pidsSlack(), 10) ||
		got["cpu.max"] != "150000 100000" {
		t.Errorf("files: %v", got)
	}
	os.WriteFile(filepath.Join(dirs[""], "memory.events"), []byte("low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n"), 0o644)
	if n := oomKills([]string{dirs[""]}); n != 1 {
		t.Errorf("oomKills = %d", n)
	}
	if n := oomKills([]string{filepath.Join(root, "nothing")}); n != -1 {
		t.Errorf("oomKills without files = %d", n)
	}
	if err := removeCgroupDirs([]string{dirs[""]}, 0); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), "cgroup.") {
		t.Errorf("left behind: %v", ents)
	}
}
