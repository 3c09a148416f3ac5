package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// lookPath finds file the way a shell would, inside the container (after pivot_root) and with the
// command's PATH, not ours. Failures carry the exit code docker reports: 127 not found, 126 not
// executable.
func lookPath(file, path, cwd string) (string, error) {
	if path == "" {
		path = DefaultPath
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(cwd, p)
	}
	if strings.Contains(file, "/") {
		p := abs(file)
		if err := executable(p); err != nil {
			code := 126
			if errors.Is(err, fs.ErrNotExist) {
				code = 127
			}
			return "", &setupError{code: code, msg: fmt.Sprintf("exec: %q: %v", file, err)}
		}
		return p, nil
	}
	denied := false
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := abs(filepath.Join(dir, file))
		err := executable(p)
		if err == nil {
			return p, nil
		}
		if errors.Is(err, fs.ErrPermission) {
			denied = true
		}
	}
	if denied {
		return "", &setupError{code: 126, msg: fmt.Sprintf("exec: %q: permission denied", file)}
	}
	return "", &setupError{code: 127, msg: fmt.Sprintf("exec: %q: executable file not found in $PATH", file)}
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if m := fi.Mode(); m.IsDir() || m&0o111 == 0 {
		return &fs.PathError{Op: "exec", Path: p, Err: fs.ErrPermission}
	}
	return nil
}
