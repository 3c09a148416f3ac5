package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/user"
	"golang.org/x/sys/unix"
)

// maxUserFile bounds what we read of /etc/passwd and /etc/group (a hostile image may point them at
// something endless).
const maxUserFile = 16 << 20

// resolveUser resolves a Dockerfile USER value against the container's /etc/passwd and /etc/group
// (called after pivot_root, so every path is the container's).
func resolveUser(spec string) (*user.ExecUser, error) {
	passwd, err := openUserFile("/etc/passwd")
	if err != nil {
		return nil, err
	}
	if passwd != nil {
		defer passwd.Close()
	}
	group, err := openUserFile("/etc/group")
	if err != nil {
		return nil, err
	}
	if group != nil {
		defer group.Close()
	}
	var pr, gr io.Reader
	if passwd != nil {
		pr = io.LimitReader(passwd, maxUserFile)
	}
	if group != nil {
		gr = io.LimitReader(group, maxUserFile)
	}
	u, err := user.GetExecUser(spec, &user.ExecUser{}, pr, gr)
	if err != nil {
		return nil, err // already "unable to find user nobody2: no matching entries in passwd file"
	}
	if u.Home == "" {
		u.Home = "/"
		if u.Uid == 0 {
			u.Home = "/root"
		}
	}
	return u, nil
}

// openUserFile opens a regular file without blocking on a FIFO; a missing file is (nil, nil).
func openUserFile(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// withDefaultEnv adds PATH and HOME when env lacks them, as docker does.
func withDefaultEnv(env []string, u *user.ExecUser) []string {
	out := append([]string(nil), env...)
	if !hasenv(out, "PATH") {
		out = append(out, "PATH="+DefaultPath)
	}
	if !hasenv(out, "HOME") {
		out = append(out, "HOME="+u.Home)
	}
	return out
}

// makeCwd creates the working directory when missing (as docker does for WORKDIR); directories it
// creates belong to the user. It returns the clean absolute path.
func makeCwd(cwd string, uid, gid int) (string, error) {
	cwd = filepath.Join("/", cwd)
	cur := "/"
	for _, part := range strings.Split(cwd, "/") {
		if part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		fi, err := os.Stat(cur)
		if err == nil {
			if !fi.IsDir() {
				return "", fmt.Errorf("working directory %s: %s is not a directory", cwd, cur)
			}
			continue
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("working directory %s: %w", cwd, err)
		}
		if err := os.Mkdir(cur, 0o755); err != nil {
			return "", fmt.Errorf("working directory %s: %w", cwd, err)
		}
		if err := os.Lchown(cur, uid, gid); err != nil {
			return "", fmt.Errorf("working directory %s: %w", cwd, err)
		}
	}
	return cwd, nil
}
