package sandbox

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// treeState lists every entry under root with what a layer diff would see (not atime).
func treeState(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		line := fmt.Sprintf("%s mode=%o uid=%d size=%d mtime=%d.%09d", rel, st.Mode, st.Uid, st.Size, st.Mtim.Sec, st.Mtim.Nsec)
		if d.Type()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			line += " -> " + target
		} else if d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			line += fmt.Sprintf(" content=%q", b)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func diffStates(before, after []string) string {
	b, a := map[string]bool{}, map[string]bool{}
	for _, l := range before {
		b[l] = true
	}
	for _, l := range after {
		a[l] = true
	}
	var d []string
	for _, l := range before {
		if !a[l] {
			d = append(d, "- "+l)
		}
	}
	for _, l := range after {
		if !b[l] {
			d = append(d, "+ "+l)
		}
	}
	return strings.Join(d, "\n")
}

func TestRootfsLeftAsTheCommandLeftIt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		setup  func(t *testing.T, root string) // before the run
		script string
		// changes the command made on purpose (paths relative to the rootfs); everything else must be
		// exactly as before, mtimes of the parents of our mountpoints included
		changed []string
	}{
		{"busybox rootfs, nothing there", nil, "cat /etc/hosts /etc/resolv.conf /etc/hostname >/dev/null; ls /proc/1 /dev/null /sys >/dev/null", nil},
		{"no /etc at all", func(t *testing.T, root string) {
			os.RemoveAll(filepath.Join(root, "etc"))
		}, "cat /etc/hosts >/dev/null", nil},
		{"all mountpoints exist", func(t *testing.T, root string) {
			for _, d := range []string{"proc", "dev", "sys"} {
				mustMkdir(t, filepath.Join(root, d))
			}
			for _, f := range []string{"hosts", "resolv.conf", "hostname"} {
				mustWrite(t, filepath.Join(root, "etc", f), "original "+f+"\n", 0o644)
			}
		}, "echo hacked > /etc/hosts && echo hacked > /etc/resolv.conf && echo hacked > /etc/hostname && grep -q hacked /etc/hosts", nil},
		{"dangling resolv.conf symlink", func(t *testing.T, root string) {
			if err := os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(root, "etc/resolv.conf")); err != nil {
				t.Fatal(err)
			}
		}, "grep -q nameserver-test /etc/resolv.conf", nil},
		{"absolute symlink to a host path", func(t *testing.T, root string) {
			if err := os.Symlink(filepath.Join(root, "..", "outside-hosts"), filepath.Join(root, "etc/hosts")); err != nil {
				t.Fatal(err)
			}
		}, "grep -q custom-hosts /etc/hosts", nil},
		{"command writes next to a stub", func(t *testing.T, root string) {
			os.RemoveAll(filepath.Join(root, "etc"))
		}, "echo mine > /etc/mine", []string{"etc", "etc/mine"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parent := t.TempDir()
			root := filepath.Join(parent, "rootfs")
			if err := os.Rename(newRootfs(t), root); err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup(t, root)
			}
			before := treeState(t, root)
			r := runBox(t, Spec{Rootfs: root, Args: sh(tc.script), Hosts: []byte("10.0.0.1 custom-hosts\n"),
				Resolv: []byte("nameserver 127.0.0.1 # nameserver-test\n")}).ok(t)
			_ = r
			after := treeState(t, root)
			var unexpected []string
			for _, l := range strings.Split(diffStates(before, after), "\n") {
				if l == "" {
					continue
				}
				rel := strings.Fields(l[2:])[0]
				expected := false
				for _, c := range tc.changed {
					expected = expected || rel == c
				}
				if !expected {
					unexpected = append(unexpected, l)
				}
			}
			if len(unexpected) > 0 {
				t.Errorf("the rootfs changed:\n%s", strings.Join(unexpected, "\n"))
			}
			for _, c := range tc.changed {
				if _, err := os.Lstat(filepath.Join(root, c)); err != nil {
					t.Errorf("the command's change is gone: %v", err)
				}
			}
			if _, err := os.Lstat(filepath.Join(parent, "outside-hosts")); err == nil {
				t.Errorf("a file was created outside the rootfs")
			}
		})
	}
}

// A hostile command swaps /etc (holding our stub mountpoints) for a symlink to a host directory whose
// files look like our stubs: cleanup must not follow it.
func TestCleanupDoesNotFollowSwappedSymlinks(t *testing.T) {
	t.Parallel()
	victim := t.TempDir()
	for _, f := range []string{"hosts", "resolv.conf", "hostname"} {
		mustWrite(t, filepath.Join(victim, f), "", 0o644)
	}
	root := newRootfs(t)
	os.RemoveAll(filepath.Join(root, "etc")) // /etc and everything in it become our stubs
	r := runBox(t, Spec{Rootfs: root, Args: sh("mv /etc /etc.old && ln -s " + victim + " /etc && echo swapped")}).ok(t)
	if strings.TrimSpace(r.stdout) != "swapped" {
		t.Fatalf("the swap did not happen: %q", r.stdout)
	}
	for _, f := range []string{"hosts", "resolv.conf", "hostname"} {
		if _, err := os.Stat(filepath.Join(victim, f)); err != nil {
			t.Errorf("host file removed: %v", err)
		}
	}
	if target, err := os.Readlink(filepath.Join(root, "etc")); err != nil || target != victim {
		t.Errorf("the command's symlink is gone: %q %v", target, err)
	}
}

// The real setting: the rootfs is an overlay whose upper dir becomes the layer. After a run that
// changes nothing, the upper dir holds no file, and a directory only where our mountpoints forced a
// copy-up, with the lower dir's mtime.
func TestOverlayUpperStaysClean(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	lower := newRootfs(t)
	upper, work, merged := filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{upper, work, merged} {
		mustMkdir(t, d)
	}
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", merged, "overlay", unix.MS_NODEV, opts); err != nil {
		t.Skipf("overlayfs: %v", err)
	}
	mounted := true
	unmount := func() {
		if mounted {
			mounted = false
			if err := unix.Unmount(merged, 0); err != nil {
				t.Errorf("unmount: %v", err)
			}
		}
	}
	defer unmount()
	runBox(t, Spec{Rootfs: merged, Args: sh("cat /etc/hosts /proc/self/status >/dev/null")}).ok(t)
	unmount()
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == upper {
			return err
		}
		rel, _ := filepath.Rel(upper, p)
		if !d.IsDir() {
			t.Errorf("upper dir has %s (%v)", rel, d.Type())
			return nil
		}
		lo, err1 := os.Stat(filepath.Join(lower, rel))
		up, err2 := os.Stat(p)
		if err1 != nil || err2 != nil || !lo.ModTime().Equal(up.ModTime()) {
			t.Errorf("upper dir %s differs from lower: %v %v", rel, err1, err2)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ls", "-laR", upper).CombinedOutput(); err == nil {
		t.Logf("upper after the run:\n%s", out)
	}
}
