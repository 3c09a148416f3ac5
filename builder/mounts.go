package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/sys/unix"

	"github.com/layerbuild/layerbuild/sandbox"
	"github.com/layerbuild/layerbuild/snapshot"
)

// runMounts are the --mount flags of one RUN: key is what they add to the step's cache key; setup, called
// only when the step really runs, makes them ready and returns the sandbox mounts and a cleanup.
type runMounts struct {
	key   string
	setup []func() (sandbox.Mount, func(), error)
}

func (rm *runMounts) prepare() ([]sandbox.Mount, func(), error) {
	var out []sandbox.Mount
	var cleanups []func()
	done := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	for _, f := range rm.setup {
		m, cleanup, err := f()
		if err != nil {
			done()
			return nil, nil, err
		}
		out = append(out, m)
		if cleanup != nil {
			cleanups = append(cleanups, cleanup)
		}
	}
	return out, done, nil
}

// cacheMountsDir holds the persistent directories of RUN --mount=type=cache, one per cache id.
func (r *buildRun) cacheMountsDir() string {
	return filepath.Join(r.b.Store.Root(), "cache", "mounts")
}

// CheckRunMount validates one parsed mount the way the build will use it (shared with the plan check).
func checkRunMount(m *instructions.Mount) error {
	switch m.Type {
	case instructions.MountTypeSecret, instructions.MountTypeSSH:
		return fmt.Errorf("RUN --mount=type=%s is not supported yet", m.Type)
	case instructions.MountTypeCache, instructions.MountTypeTmpfs, instructions.MountTypeBind:
	default:
		return fmt.Errorf("RUN --mount: unknown type %q", m.Type)
	}
	if m.Target == "" {
		return fmt.Errorf("RUN --mount=type=%s: a target is required (target=/path)", m.Type)
	}
	if m.Type == instructions.MountTypeCache && m.From != "" {
		return fmt.Errorf("RUN --mount=type=cache,from=%s is not supported yet", m.From)
	}
	return nil
}

// runMounts resolves the RUN's mounts (already expanded by dispatch).
func (r *buildRun) runMounts(s *stageState, c *instructions.RunCommand) (*runMounts, error) {
	rm := &runMounts{}
	var key strings.Builder
	wd := s.cfg.Config.WorkingDir
	if wd == "" {
		wd = "/"
	}
	// Parents before children (BuildKit sorts mounts by target), so /a/b lands inside a mount at /a.
	ms := append([]*instructions.Mount{}, instructions.GetMounts(c)...)
	resolve := func(t string) string {
		if !path.IsAbs(t) {
			t = path.Join(wd, t)
		}
		return path.Clean(t)
	}
	depth := func(t string) int { return strings.Count(resolve(t), "/") }
	sort.SliceStable(ms, func(i, j int) bool { return depth(ms[i].Target) < depth(ms[j].Target) })
	for _, m := range ms {
		if err := checkRunMount(m); err != nil {
			return nil, err
		}
		m := *m
		target := resolve(m.Target)
		if target == "/" {
			return nil, fmt.Errorf("RUN --mount=type=%s: the target cannot be /", m.Type)
		}
		switch m.Type {
		case instructions.MountTypeTmpfs:
			fmt.Fprintf(&key, "|tmpfs %q size=%d", target, m.SizeLimit)
			data := ""
			if m.SizeLimit > 0 {
				data = fmt.Sprintf("size=%d", m.SizeLimit)
			}
			rm.setup = append(rm.setup, func() (sandbox.Mount, func(), error) {
				return sandbox.Mount{Type: sandbox.MountTmpfs, Target: target, Data: data, ReadOnly: m.ReadOnly}, nil, nil
			})
		case instructions.MountTypeCache:
			id := m.CacheID
			if id == "" {
				id = target
			}
			sharing := m.CacheSharing
			if sharing == "" {
				sharing = instructions.MountSharingShared
			}
			mode, uid, gid := uint64(0o755), uint64(0), uint64(0)
			if m.Mode != nil {
				mode = *m.Mode
			}
			if m.UID != nil {
				uid = *m.UID
			}
			if m.GID != nil {
				gid = *m.GID
			}
			// The cache's content never counts: only how it is mounted (BuildKit's rule).
			fmt.Fprintf(&key, "|cache %q id=%q sharing=%s mode=%o uid=%d gid=%d ro=%v", target, id, sharing, mode, uid, gid, m.ReadOnly)
			sum := sha256.Sum256([]byte(id))
			dir := filepath.Join(r.cacheMountsDir(), hex.EncodeToString(sum[:16]))
			ro := m.ReadOnly
			rm.setup = append(rm.setup, func() (sandbox.Mount, func(), error) {
				src, cleanup, err := openCacheMount(dir, sharing, uint32(mode), int(uid), int(gid))
				if err != nil {
					return sandbox.Mount{}, nil, fmt.Errorf("RUN --mount=type=cache,target=%s: %w", m.Target, err)
				}
				return sandbox.Mount{Type: sandbox.MountBind, Source: src, Target: target, ReadOnly: ro}, cleanup, nil
			})
		case instructions.MountTypeBind:
			f, k, err := r.bindMount(m, target)
			if err != nil {
				return nil, err
			}
			key.WriteString(k)
			rm.setup = append(rm.setup, f)
		}
	}
	rm.key = key.String()
	return rm, nil
}

// openCacheMount creates the cache directory when missing (mode, uid, gid apply then) and takes its lock:
// shared mounts share it, locked ones wait for exclusive use, and a private one that finds the cache in use
// gets a fresh empty directory of its own (removed afterwards).
func openCacheMount(dir string, sharing instructions.ShareMode, mode uint32, uid, gid int) (string, func(), error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return "", nil, err
	}
	if err := os.Mkdir(dir, 0o700); err == nil {
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", nil, err
		}
		if err := os.Chmod(dir, os.FileMode(mode&0o777)|modeBits(mode)); err != nil {
			return "", nil, err
		}
	} else if !errors.Is(err, os.ErrExist) {
		return "", nil, err
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", nil, err
	}
	how := unix.LOCK_SH
	switch sharing {
	case instructions.MountSharingLocked:
		how = unix.LOCK_EX
	case instructions.MountSharingPrivate:
		how = unix.LOCK_EX | unix.LOCK_NB
	}
	if err := unix.Flock(int(lock.Fd()), how); err != nil {
		lock.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return "", nil, fmt.Errorf("lock the cache: %w", err)
		}
		tmp, err := os.MkdirTemp(filepath.Dir(dir), "private-")
		if err != nil {
			return "", nil, err
		}
		err = os.Chown(tmp, uid, gid)
		if err == nil {
			err = os.Chmod(tmp, os.FileMode(mode&0o777)|modeBits(mode))
		}
		if err != nil {
			os.RemoveAll(tmp)
			return "", nil, err
		}
		return tmp, func() { os.RemoveAll(tmp) }, nil
	}
	return dir, func() { lock.Close() }, nil
}

func modeBits(mode uint32) os.FileMode {
	var m os.FileMode
	if mode&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

// bindMount prepares a type=bind mount: from the build context (a private copy of the source, so
// .dockerignore applies and a rw mount never touches the context), or from a stage or an image (a
// throwaway snapshot of it). Its key part has the content digest of a context source, or the stage's key
// or the image's ID.
func (r *buildRun) bindMount(m instructions.Mount, target string) (func() (sandbox.Mount, func(), error), string, error) {
	source := strings.TrimPrefix(path.Clean("/"+m.Source), "/")
	if source == "" {
		source = "."
	}
	ro := m.ReadOnly
	if m.From == "" {
		sr := &sourceRoot{dir: r.opts.ContextDir, ignore: orEmpty(r.opts.Ignore), stat: r.opts.StatCache}
		matches, err := sr.expand([]string{source})
		if err != nil {
			return nil, "", fmt.Errorf("RUN --mount=type=bind,source=%s: %w", m.Source, err)
		}
		if len(matches) != 1 {
			return nil, "", fmt.Errorf("RUN --mount=type=bind,source=%s: matches %d paths, want one", m.Source, len(matches))
		}
		digest, files, err := sr.digest(matches)
		if err != nil {
			return nil, "", err
		}
		if r.cur != nil { // the report names the bound files that changed
			if r.cur.rec.Files == nil {
				r.cur.rec.Files = map[string]string{}
			}
			for f, d := range files {
				r.cur.rec.Files[f] = d
			}
		}
		key := fmt.Sprintf("|bind %q context %q %s ro=%v", target, source, digest, ro)
		return func() (sandbox.Mount, func(), error) {
			tmp, err := os.MkdirTemp(r.b.Store.TempDir(), "bind-")
			if err != nil {
				return sandbox.Mount{}, nil, err
			}
			cleanup := func() { os.RemoveAll(tmp) }
			dest := "/src"
			if matches[0].dir {
				dest = "/src/"
			}
			if err := copyInto(tmp, sr, matches, copyArgs{}, dest, matches[0].dir, nil); err != nil {
				cleanup()
				return sandbox.Mount{}, nil, fmt.Errorf("RUN --mount=type=bind,source=%s: %w", m.Source, err)
			}
			return sandbox.Mount{Type: sandbox.MountBind, Source: filepath.Join(tmp, "src"), Target: target, ReadOnly: ro}, cleanup, nil
		}, key, nil
	}
	from, err := r.exp.Word(m.From, nil)
	if err != nil {
		return nil, "", err
	}
	layers, fromKey, isStage := r.stageLayers(from)
	if !isStage {
		img, err := r.b.Store.Lookup(from)
		if err != nil {
			return nil, "", fmt.Errorf("RUN --mount from=%s: no such stage or image: %w", m.From, err)
		}
		if layers, err = r.b.imageLayers(img); err != nil {
			return nil, "", fmt.Errorf("RUN --mount from=%s: %w", m.From, err)
		}
		fromKey = img.ID.String()
	}
	if r.cur != nil {
		r.cur.rec.FromName, r.cur.rec.FromKey = from, fromKey
	}
	key := fmt.Sprintf("|bind %q from %s %q ro=%v", target, fromKey, source, ro)
	return func() (sandbox.Mount, func(), error) {
		return r.snapshotBind(layers, source, target, ro, m.From)
	}, key, nil
}

func (r *buildRun) snapshotBind(layers []*snapshot.Layer, source, target string, ro bool, from string) (sandbox.Mount, func(), error) {
	active, err := r.b.Snap.Prepare(hashesOf(layers))
	if err != nil {
		return sandbox.Mount{}, nil, err
	}
	cleanup := func() { _ = active.Discard() }
	src, err := securejoin.SecureJoin(active.Rootfs, source)
	if err == nil {
		_, err = os.Stat(src)
	}
	if err != nil {
		cleanup()
		return sandbox.Mount{}, nil, fmt.Errorf("RUN --mount from=%s,source=%s: %w", from, source, err)
	}
	return sandbox.Mount{Type: sandbox.MountBind, Source: src, Target: target, ReadOnly: ro}, cleanup, nil
}
