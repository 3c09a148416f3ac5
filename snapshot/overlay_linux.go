package snapshot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// Overlay options that keep the upper dir a plain diff (no redirects, no metacopy-only inodes, no index), and
// "volatile": a step's upper dir is never mounted again, so the fsyncs of the step (dpkg does many) need not
// reach the disk. Each is skipped when the kernel does not know it.
var overlayOptions = [][2]string{
	{"redirect_dir", "off"},
	{"metacopy", "off"},
	{"index", "off"},
	{"xino", "off"},
}

func (s *Snapshotter) prepare(parents []v1.Hash, mountpoints bool) (*Active, error) {
	var lowers []string // topmost first, as overlayfs wants them
	for i := len(parents) - 1; i >= 0; i-- {
		l, err := s.get(parents[i])
		if err != nil {
			return nil, fmt.Errorf("snapshot: prepare: %w", err)
		}
		if !l.Empty {
			lowers = append(lowers, l.Dir)
		}
	}
	if mountpoints {
		mp, err := s.mountpointsLayer()
		if err != nil {
			return nil, fmt.Errorf("snapshot: prepare: %w", err)
		}
		lowers = append(lowers, mp)
	}
	dir, err := os.MkdirTemp(s.tmp, "active")
	if err != nil {
		return nil, fmt.Errorf("snapshot: prepare: %w", err)
	}
	a := &Active{Rootfs: filepath.Join(dir, "merged"), s: s, dir: dir}
	names := []string{"upper", "work", "merged"}
	if len(lowers) == 0 {
		names = append(names, "lower") // scratch: overlayfs needs a lower dir; an empty one
		lowers = []string{filepath.Join(dir, "lower")}
	}
	for _, n := range names {
		if err = os.Mkdir(filepath.Join(dir, n), 0o755); err != nil {
			break
		}
	}
	if err == nil {
		err = mountOverlay(lowers, a.upper(), filepath.Join(dir, "work"), a.Rootfs)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("snapshot: prepare: %w", err)
	}
	a.mounted = true
	return a, nil
}

func (a *Active) upper() string { return filepath.Join(a.dir, "upper") }

// mountOverlay mounts with the new mount API: one fsconfig call per lower layer ("lowerdir+", passed as an fd,
// so neither the page-size limit of mount(2) options nor fsconfig's 256-byte string limit applies), nodev.
func mountOverlay(lowers []string, upper, work, target string) error {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return mountLegacy(lowers, upper, work, target, fmt.Errorf("fsopen overlay: %w", err))
	}
	defer unix.Close(fsfd)
	unix.FsconfigSetString(fsfd, "source", "layerbuild")
	for i, l := range lowers {
		if err := setDir(fsfd, "lowerdir+", l); err != nil {
			if i == 0 && err == unix.EINVAL { // a kernel before 6.8
				return mountLegacy(lowers, upper, work, target, fsError(fsfd, "lowerdir+", err))
			}
			return fsError(fsfd, "lowerdir+ "+l, err)
		}
	}
	if err := setDir(fsfd, "upperdir", upper); err != nil {
		return fsError(fsfd, "upperdir", err)
	}
	if err := setDir(fsfd, "workdir", work); err != nil {
		return fsError(fsfd, "workdir", err)
	}
	for _, o := range overlayOptions {
		if err := unix.FsconfigSetString(fsfd, o[0], o[1]); err != nil && err != unix.EINVAL {
			return fsError(fsfd, o[0], err)
		}
	}
	if err := unix.FsconfigSetFlag(fsfd, "volatile"); err != nil && err != unix.EINVAL {
		return fsError(fsfd, "volatile", err)
	}
	drainFsMessages(fsfd)
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fsError(fsfd, "create", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return fsError(fsfd, "fsmount", err)
	}
	err = unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH)
	unix.Close(mfd) // an open mount fd would make the unmount fail with EBUSY
	if err != nil {
		return fmt.Errorf("move_mount %s: %w", target, err)
	}
	return nil
}

// setDir passes a directory to fsconfig as an fd (kernel 6.13+), else as a path.
func setDir(fsfd int, key, dir string) error {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	err = unix.FsconfigSetFd(fsfd, key, fd)
	unix.Close(fd)
	if err == unix.EINVAL {
		err = unix.FsconfigSetString(fsfd, key, dir)
	}
	return err
}

// fsError adds the kernel's own explanation, read from the fs context, to err.
func fsError(fsfd int, what string, err error) error {
	if msg := drainFsMessages(fsfd); msg != "" {
		return fmt.Errorf("overlay %s: %w (%s)", what, err, msg)
	}
	return fmt.Errorf("overlay %s: %w", what, err)
}

func drainFsMessages(fsfd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for {
		n, err := unix.Read(fsfd, buf)
		if err != nil || n <= 0 {
			return strings.Join(msgs, "; ")
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
}

// mountLegacy uses mount(2) for kernels without lowerdir+; its option string must fit in a page.
func mountLegacy(lowers []string, upper, work, target string, why error) error {
	for _, p := range append(append([]string{}, lowers...), upper, work) {
		if strings.ContainsAny(p, ":,") {
			return fmt.Errorf("%w; mount(2) fallback: path %q has ':' or ','", why, p)
		}
	}
	opts := "lowerdir=" + strings.Join(lowers, ":") + ",upperdir=" + upper + ",workdir=" + work
	for _, o := range overlayOptions {
		opts += "," + o[0] + "=" + o[1]
	}
	if len(opts) >= os.Getpagesize() {
		return fmt.Errorf("%w; mount(2) fallback: options for %d layers exceed a page", why, len(lowers))
	}
	if err := unix.Mount("layerbuild", target, "overlay", unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("%w; mount(2) fallback: %w", why, err)
	}
	return nil
}

// unmount unmounts the rootfs; with detach a busy mount is detached lazily instead of failing.
func (a *Active) unmount(detach bool) error {
	if !a.mounted {
		return nil
	}
	err := unix.Unmount(a.Rootfs, 0)
	if err == unix.EBUSY && detach {
		err = unix.Unmount(a.Rootfs, unix.MNT_DETACH)
	}
	if err != nil && err != unix.EINVAL && err != unix.ENOENT { // not mounted (any more)
		return fmt.Errorf("snapshot: unmount %s: %w", a.Rootfs, err)
	}
	a.mounted = false
	return nil
}

// discard is Discard; after Commit it does nothing, so `defer a.Discard()` is always safe.
func (a *Active) discard() error {
	if a.done {
		return nil
	}
	if err := a.unmount(true); err != nil {
		return err
	}
	a.done = true
	if err := os.RemoveAll(a.dir); err != nil {
		return fmt.Errorf("snapshot: discard: %w", err)
	}
	return nil
}

var errFinished = errors.New("snapshot: the rootfs was already committed or discarded")

// mountpointStubs are what a sandbox mounts over: present in a read-only bottom layer, they never have to be
// created in the upper dir, so a RUN that changes nothing gives an empty layer.
var mountpointStubs = []struct {
	name string
	dir  bool
}{
	{"dev", true}, {"proc", true}, {"sys", true}, {"etc", true},
	{"etc/hosts", false}, {"etc/resolv.conf", false}, {"etc/hostname", false},
}

// mountpointsLayer returns the stub layer, creating it once (atomically) when missing.
func (s *Snapshotter) mountpointsLayer() (string, error) {
	final := filepath.Join(s.root, "mountpoints-v1")
	if fi, err := os.Stat(final); err == nil && fi.IsDir() {
		return final, nil
	}
	tmp, err := os.MkdirTemp(s.tmp, "mountpoints")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	for _, st := range mountpointStubs {
		p := filepath.Join(tmp, st.name)
		if st.dir {
			err = os.Mkdir(p, 0o755)
		} else {
			err = os.WriteFile(p, nil, 0o644)
		}
		if err != nil {
			return "", err
		}
	}
	if err := os.Rename(tmp, final); err != nil && !errors.Is(err, fs.ErrExist) && !errors.Is(err, unix.ENOTEMPTY) {
		return "", err
	}
	return final, nil
}
