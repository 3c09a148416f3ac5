package sandbox

import (
	"fmt"

	"github.com/moby/sys/capability"
	"golang.org/x/sys/unix"
)

// defaultCaps is docker's default capability set; it becomes the bounding set, so a root command gets
// exactly these and nothing can ever gain more.
var defaultCaps = []capability.Cap{
	capability.CAP_CHOWN,
	capability.CAP_DAC_OVERRIDE,
	capability.CAP_FSETID,
	capability.CAP_FOWNER,
	capability.CAP_MKNOD,
	capability.CAP_NET_RAW,
	capability.CAP_SETGID,
	capability.CAP_SETUID,
	capability.CAP_SETFCAP,
	capability.CAP_SETPCAP,
	capability.CAP_NET_BIND_SERVICE,
	capability.CAP_SYS_CHROOT,
	capability.CAP_KILL,
	capability.CAP_AUDIT_WRITE,
}

// restrictThread prepares the calling thread (the one that forks the command; it must be locked):
// bounding set reduced to defaultCaps, no inheritable or ambient capabilities, no_new_privs. The
// effective set stays as it is until the command's execve (the fork still needs CAP_SETUID/SETGID to
// switch users).
func restrictThread() error {
	last, err := capability.LastCap()
	if err != nil {
		return fmt.Errorf("capabilities: %w", err)
	}
	keep := map[capability.Cap]bool{}
	for _, c := range defaultCaps {
		keep[c] = true
	}
	for c := capability.Cap(0); c <= last; c++ {
		if keep[c] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("capabilities: drop %s from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("capabilities: clear ambient: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capabilities: get: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capabilities: clear inheritable: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	return nil
}
