package sandbox

import (
	"fmt"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// extraMount is a Mount with its mountpoint resolved inside the rootfs.
type extraMount struct {
	Mount
	Resolved string
}

// prepareExtraMounts creates the missing mountpoints of spec.Mounts (recorded as stubs, so removed after).
func prepareExtraMounts(spec Spec, st *stubs, cfg *initConfig) ([]extraMount, error) {
	var out []extraMount
	for _, m := range spec.Mounts {
		if !path.IsAbs(m.Target) || path.Clean(m.Target) == "/" {
			return nil, fmt.Errorf("sandbox: mount target %q must be an absolute path below /", m.Target)
		}
		dir := true
		switch m.Type {
		case MountBind:
			fi, err := os.Stat(m.Source)
			if err != nil {
				return nil, fmt.Errorf("sandbox: mount source: %w", err)
			}
			dir = fi.IsDir()
		case MountTmpfs:
		default:
			return nil, fmt.Errorf("sandbox: unknown mount type %q", m.Type)
		}
		target, err := st.ensure(m.Target, dir)
		if err != nil {
			return nil, err
		}
		for _, special := range []string{cfg.Proc, cfg.Dev, cfg.Sys} {
			if target == special || hasPathPrefix(target, special) {
				return nil, fmt.Errorf("sandbox: mount target %s resolves to %s, inside %s", m.Target, target, special)
			}
		}
		out = append(out, extraMount{Mount: m, Resolved: target})
	}
	return out, nil
}

// setupExtraMounts mounts them in the init's mount namespace, before pivot_root.
func setupExtraMounts(root string, ms []extraMount) error {
	for _, m := range ms {
		target := root + m.Resolved
		// A target inside an earlier mount (a bind at /a/b under a cache at /a) is created in that mount.
		if _, err := os.Lstat(target); os.IsNotExist(err) {
			if err := createMountpoint(m, target); err != nil {
				return err
			}
		}
		switch m.Type {
		case MountBind:
			if err := mount(m.Source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				return fmt.Errorf("bind %s: %w", m.Target, err)
			}
			if m.ReadOnly {
				attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
				if err := unix.MountSetattr(-1, target, unix.AT_RECURSIVE, attr); err != nil {
					return fmt.Errorf("make %s read-only: %w", m.Target, err)
				}
			}
		case MountTmpfs:
			flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
			if m.ReadOnly {
				flags |= unix.MS_RDONLY
			}
			if err := mount("tmpfs", target, "tmpfs", flags, m.Data); err != nil {
				return fmt.Errorf("tmpfs %s: %w", m.Target, err)
			}
		}
	}
	return nil
}

func createMountpoint(m extraMount, target string) error {
	dir := true
	if m.Type == MountBind {
		if fi, err := os.Stat(m.Source); err == nil && !fi.IsDir() {
			dir = false
		}
	}
	if dir {
		return os.MkdirAll(target, 0o755)
	}
	if err := os.MkdirAll(path.Dir(target), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}
