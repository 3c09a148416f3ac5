package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// maskedPaths are hidden as docker hides them: files get /dev/null bound over them, directories an empty
// read-only tmpfs.
var maskedPaths = []string{
	"/proc/acpi",
	"/proc/asound",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/sys/devices/virtual/powercap",
	"/sys/firmware",
}

// readonlyPaths are re-mounted read-only.
var readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}

func mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return &os.PathError{Op: "mount " + fstype, Path: target, Err: err}
	}
	return nil
}

// setupMounts builds the container's mount tree in our private mount namespace and pivots into it.
// Mountpoints inside the rootfs were resolved and created by the parent (cfg); nothing runs in the
// rootfs yet, so they are still what the parent saw.
func setupMounts(cfg *initConfig) error {
	root := cfg.Rootfs
	// Nothing we mount may propagate back to the host.
	if err := mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	// pivot_root needs the new root to be a mount point.
	if err := mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs: %w", err)
	}
	proc := root + cfg.Proc
	if err := mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if err := setupDev(root + cfg.Dev); err != nil {
		return err
	}
	sys := root + cfg.Sys
	if err := setupSys(sys); err != nil {
		return err
	}
	for _, f := range cfg.Files {
		if err := mount(f.Source, root+f.Target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", f.Target, err)
		}
	}
	if err := setupExtraMounts(root, cfg.Mounts); err != nil {
		return err
	}
	for _, p := range maskedPaths {
		if err := maskPath(mapSpecial(p, proc, sys)); err != nil {
			return err
		}
	}
	for _, p := range readonlyPaths {
		if err := readonlyPath(mapSpecial(p, proc, sys)); err != nil {
			return err
		}
	}
	return pivotRoot(root)
}

// mapSpecial turns /proc/x or /sys/x into the host path under the container's proc or sys mount.
func mapSpecial(p, proc, sys string) string {
	if hasPathPrefix(p, "/proc") {
		return proc + p[len("/proc"):]
	}
	return sys + p[len("/sys"):]
}

// setupSys mounts a fresh read-only sysfs, or binds the host's read-only when sysfs cannot be mounted.
func setupSys(sys string) error {
	err := mount("sysfs", sys, "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	if err == nil {
		return nil
	}
	if err := mount("/sys", sys, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("mount /sys: %w", err)
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC}
	if err := unix.MountSetattr(-1, sys, unix.AT_RECURSIVE, attr); err != nil {
		return fmt.Errorf("make /sys read-only: %w", err)
	}
	return nil
}

func maskPath(p string) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mask %s: %w", p, err)
	}
	if fi.IsDir() {
		err = mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0,mode=555")
	} else {
		err = mount("/dev/null", p, "", unix.MS_BIND, "")
	}
	if err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	return nil
}

func readonlyPath(p string) error {
	if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("read-only: %w", err)
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := mount(p, p, "", flags, ""); err != nil {
		return fmt.Errorf("read-only: %w", err)
	}
	return nil
}

// pivotRoot makes root the root of our mount namespace and detaches the host's tree entirely.
func pivotRoot(root string) error {
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("pivot_root: open /: %w", err)
	}
	defer unix.Close(oldRoot)
	newRoot, err := unix.Open(root, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("pivot_root: open rootfs: %w", err)
	}
	defer unix.Close(newRoot)
	if err := unix.Fchdir(newRoot); err != nil {
		return fmt.Errorf("pivot_root: chdir rootfs: %w", err)
	}
	// With new_root == put_old the old root ends up stacked on top of the new one; detach it from there.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Fchdir(oldRoot); err != nil {
		return fmt.Errorf("pivot_root: chdir old root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("pivot_root: detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("pivot_root: chdir /: %w", err)
	}
	return nil
}

// devNodes are bound from the host's /dev; the numbers serve when the host lacks one.
var devNodes = []struct {
	name         string
	major, minor uint32
}{
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
}

// setupDev mounts a minimal /dev: a tmpfs (device nodes allowed, nosuid) with the usual nodes, a
// private devpts, shm, mqueue and the standard symlinks.
func setupDev(dev string) error {
	if err := mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, n := range devNodes {
		if err := devNode(dev, n.name, n.major, n.minor); err != nil {
			return err
		}
	}
	for _, d := range []string{"pts", "shm", "mqueue"} {
		if err := os.Mkdir(filepath.Join(dev, d), 0o755); err != nil {
			return fmt.Errorf("/dev: %w", err)
		}
	}
	if err := mount("devpts", filepath.Join(dev, "pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC,
		"newinstance,ptmxmode=0666,mode=0620,gid=5"); err != nil {
		return fmt.Errorf("mount /dev/pts: %w", err)
	}
	if err := mount("shm", filepath.Join(dev, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC,
		"mode=1777,size=65536k"); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	// mqueue belongs to our new IPC namespace; optional (some kernels lack it).
	if mount("mqueue", filepath.Join(dev, "mqueue"), "mqueue", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "") != nil {
		_ = os.Remove(filepath.Join(dev, "mqueue"))
	}
	links := [][2]string{
		{"pts/ptmx", "ptmx"},
		{"/proc/self/fd", "fd"},
		{"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"},
	}
	for _, l := range links {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil {
			return fmt.Errorf("/dev: %w", err)
		}
	}
	return nil
}

func devNode(dev, name string, major, minor uint32) error {
	target := filepath.Join(dev, name)
	host := "/dev/" + name
	var st unix.Stat_t
	if err := unix.Stat(host, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR &&
		unix.Major(st.Rdev) == major && unix.Minor(st.Rdev) == minor {
		f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666)
		if err != nil {
			return fmt.Errorf("/dev: %w", err)
		}
		f.Close()
		if err := mount(host, target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("/dev: bind %s: %w", name, err)
		}
		return nil
	}
	if err := unix.Mknod(target, unix.S_IFCHR|0o666, int(unix.Mkdev(major, minor))); err != nil {
		return fmt.Errorf("/dev: mknod %s: %w", name, err)
	}
	return unix.Chmod(target, 0o666) // whatever the umask
}
