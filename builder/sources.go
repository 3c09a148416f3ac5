package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/layerbuild/layerbuild/parser"
)

// srcFile is one file system entry a COPY reads.
type srcFile struct {
	host string      // path on the host, inside the source root
	rel  string      // slash path below the match ("" is the match itself)
	fi   fs.FileInfo // lstat result (the match itself is followed when it is a symlink)
	link string      // symlink target
}

// match is one source path (after wildcard expansion) of a COPY.
type match struct {
	name  string // cleaned path inside the source root, "" for the root itself
	dir   bool
	files []srcFile // a directory's entries in walk order (the directory itself first), or the file
}

// sourceRoot is where a COPY reads: the build context (with .dockerignore) or a stage's or image's rootfs.
type sourceRoot struct {
	dir       string
	ignore    *parser.Ignore // context only
	keepOwner bool           // stage/image sources keep their uid/gid
}

func hasMeta(p string) bool { return strings.ContainsAny(p, "*?[") }

// expand resolves the COPY source arguments to matches. A source that matches nothing is an error.
func (sr *sourceRoot) expand(srcs []string) ([]match, error) {
	var out []match
	for _, src := range srcs {
		rel := strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(src)), "/")
		var names []string
		if hasMeta(rel) {
			var err error
			if names, err = sr.glob(rel); err != nil {
				return nil, err
			}
			if len(names) == 0 {
				return nil, fmt.Errorf("no source files were specified: %q matches nothing in the %s", src, sr.what())
			}
		} else {
			names = []string{rel}
		}
		for _, name := range names {
			m, err := sr.load(name)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil, fmt.Errorf("%q not found in the %s", src, sr.what())
				}
				return nil, err
			}
			out = append(out, m)
		}
	}
	return out, nil
}

func (sr *sourceRoot) what() string {
	if sr.ignore != nil {
		return "build context (or excluded by .dockerignore)"
	}
	return "source stage"
}

func (sr *sourceRoot) excluded(rel string) bool {
	return sr.ignore != nil && rel != "" && sr.ignore.Excluded(rel)
}

// glob matches a slash pattern component by component inside the root.
func (sr *sourceRoot) glob(pattern string) ([]string, error) {
	paths := []string{""}
	for _, comp := range strings.Split(pattern, "/") {
		var next []string
		for _, p := range paths {
			if !hasMeta(comp) {
				next = append(next, path.Join(p, comp))
				continue
			}
			host, err := securejoin.SecureJoin(sr.dir, p)
			if err != nil {
				return nil, err
			}
			entries, err := os.ReadDir(host)
			if err != nil {
				continue
			}
			for _, e := range entries {
				ok, err := path.Match(comp, e.Name())
				if err != nil {
					return nil, fmt.Errorf("bad pattern %q: %w", pattern, err)
				}
				if ok && !sr.excluded(path.Join(p, e.Name())) {
					next = append(next, path.Join(p, e.Name()))
				}
			}
		}
		paths = next
	}
	sort.Strings(paths)
	return paths, nil
}

// load reads a match: the path is resolved inside the root (symlinks cannot lead out), a directory is walked.
func (sr *sourceRoot) load(name string) (match, error) {
	m := match{name: name}
	if sr.excluded(name) && !sr.ignore.MayContainIncluded() {
		return m, fs.ErrNotExist
	}
	host, err := securejoin.SecureJoin(sr.dir, name)
	if err != nil {
		return m, err
	}
	fi, err := os.Lstat(host)
	if err != nil {
		return m, err
	}
	if !fi.IsDir() {
		if sr.excluded(name) {
			return m, fs.ErrNotExist
		}
		f := srcFile{host: host, fi: fi}
		if fi.Mode()&fs.ModeSymlink != 0 {
			f.link, _ = os.Readlink(host)
		}
		m.files = []srcFile{f}
		return m, nil
	}
	m.dir = true
	err = filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(host, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			rel = ""
		}
		if rel != "" && sr.excluded(path.Join(name, rel)) {
			if d.IsDir() && !sr.ignore.MayContainIncluded() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		f := srcFile{host: p, rel: rel, fi: fi}
		if fi.Mode()&fs.ModeSymlink != 0 {
			f.link, _ = os.Readlink(p)
		}
		m.files = append(m.files, f)
		return nil
	})
	return m, err
}

// digest hashes what the matches would copy: names, types, modes, owners (when kept), sizes, link targets and
// contents; never times.
func (sr *sourceRoot) digest(ms []match) (string, error) {
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for _, m := range ms {
		fmt.Fprintf(h, "match %q dir=%v\n", m.name, m.dir)
		for _, f := range m.files {
			uid, gid := fileOwner(f.fi)
			if !sr.keepOwner {
				uid, gid = 0, 0
			}
			fmt.Fprintf(h, "%q %o %d:%d %d %q", f.rel, uint32(f.fi.Mode()), uid, gid, f.fi.Size(), f.link)
			if f.fi.Mode().IsRegular() {
				if err := hashFile(h, f.host, buf); err != nil {
					return "", err
				}
			}
			h.Write([]byte{'\n'})
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(w io.Writer, name string, buf []byte) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	fh := sha256.New()
	if _, err := io.CopyBuffer(fh, struct{ io.Reader }{f}, buf); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	_, err = w.Write(fh.Sum(nil))
	return err
}

func fileOwner(fi fs.FileInfo) (int, int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return 0, 0
}
