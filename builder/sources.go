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
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/layerbuild/layerbuild/cache"
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
	ignore    *parser.Ignore   // context only
	keepOwner bool             // stage/image sources keep their uid/gid
	stat      *cache.StatCache // context only, optional: content hashes of unchanged files without reading them
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
		m.files = append(m.files, srcFile{host: p, rel: rel}) // lstat by statFiles
		return nil
	})
	if err != nil {
		return m, err
	}
	return m, statFiles(m.files)
}

// statFiles fills in the lstat result (and link target) of files, on up to 4 goroutines: on a large context the
// lstat calls are most of the walk's time. The order of files does not change.
func statFiles(files []srcFile) error {
	const batch = 128
	workers := min(runtime.GOMAXPROCS(0), 4, (len(files)+batch-1)/batch)
	if workers <= 1 {
		return statRange(files)
	}
	var next atomic.Int64
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				start := int(next.Add(batch)) - batch
				if start >= len(files) {
					return
				}
				if errs[w] = statRange(files[start:min(start+batch, len(files))]); errs[w] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func statRange(files []srcFile) error {
	for i := range files {
		f := &files[i]
		fi, err := os.Lstat(f.host)
		if err != nil {
			return err
		}
		f.fi = fi
		if fi.Mode()&fs.ModeSymlink != 0 {
			f.link, _ = os.Readlink(f.host)
		}
	}
	return nil
}

// digest hashes what the matches would copy: names, types, modes, owners (when kept), sizes, link targets and
// contents; never times. files maps each copied path (relative to the source root) to the digest of its entry,
// for the cache report.
func (sr *sourceRoot) digest(ms []match) (string, map[string]string, error) {
	h := sha256.New()
	files := map[string]string{}
	buf := make([]byte, 64<<10)
	for _, m := range ms {
		fmt.Fprintf(h, "match %q dir=%v\n", m.name, m.dir)
		for _, f := range m.files {
			eh := sha256.New()
			uid, gid := fileOwner(f.fi)
			if !sr.keepOwner {
				uid, gid = 0, 0
			}
			fmt.Fprintf(eh, "%o %d:%d %d %q", uint32(f.fi.Mode()), uid, gid, f.fi.Size(), f.link)
			if f.fi.Mode().IsRegular() {
				if sr.ignore != nil && sr.stat != nil {
					sum, err := sr.stat.Hash(f.host, f.fi)
					if err != nil {
						return "", nil, err
					}
					eh.Write(sum[:])
				} else if err := hashFile(eh, f.host, buf); err != nil {
					return "", nil, err
				}
			}
			sum := eh.Sum(nil)
			fmt.Fprintf(h, "%q %x\n", f.rel, sum)
			if !f.fi.IsDir() {
				files[path.Join(m.name, f.rel)] = hex.EncodeToString(sum[:8])
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), files, nil
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
