package snapshot

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

const (
	tmpDirName = "tmp"
	gateName   = ".lock"
	diffName   = "diff"
	tarName    = "layer.tar"
	metaName   = "meta.json"
)

type layerMeta struct {
	Size  int64 `json:"size"`
	Empty bool  `json:"empty"`
}

// newSnapshotter creates root and root/tmp, removes work left behind by dead processes and takes a private,
// flock'd work dir. The gate lock (root/tmp/.lock) makes "create my dir and lock it" and "remove unlocked dirs"
// mutually exclusive, so a concurrent New never removes a dir that is about to be locked.
func newSnapshotter(root string) (*Snapshotter, error) {
	if root == "" {
		return nil, errors.New("snapshot: empty root")
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	tmp := filepath.Join(root, tmpDirName)
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	gate, err := os.OpenFile(filepath.Join(tmp, gateName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	defer gate.Close() // releases the gate lock
	if err := flock(gate, unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("snapshot: lock %s: %w", gate.Name(), err)
	}
	cleanStale(tmp)
	dir, err := os.MkdirTemp(tmp, "p")
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	lock, err := os.Open(dir)
	if err == nil {
		if err = flock(lock, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			lock.Close()
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("snapshot: lock %s: %w", dir, err)
	}
	return &Snapshotter{root: root, tmp: dir, lock: lock}, nil
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// cleanStale removes the work dirs of processes that are gone (their flock is free), unmounting what they
// left mounted first. Errors are ignored: leftovers are harmless and retried by the next New.
func cleanStale(tmp string) {
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range ents {
		p := filepath.Join(tmp, e.Name())
		if e.Name() == gateName {
			continue
		}
		if !e.IsDir() {
			os.Remove(p)
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if flock(f, unix.LOCK_EX|unix.LOCK_NB) == nil {
			unmountUnder(p)
			os.RemoveAll(p)
		}
		f.Close()
	}
}

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(dir string) {
	var mps []string
	for _, mp := range mountPoints() {
		if strings.HasPrefix(mp, dir+"/") {
			mps = append(mps, mp)
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	for _, mp := range mps {
		unix.Unmount(mp, unix.MNT_DETACH)
	}
}

// mountPoints lists the mount points of this mount namespace (field 5 of /proc/self/mountinfo, unescaped).
func mountPoints() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 {
			out = append(out, unescapeMountinfo(f[4]))
		}
	}
	return out
}

// unescapeMountinfo decodes the \ooo octal escapes the kernel uses for space, tab, newline and backslash.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// layerHex validates diffID (it becomes a path component) and returns its hex.
func layerHex(diffID v1.Hash) (string, error) {
	if diffID.Algorithm != "sha256" || len(diffID.Hex) != 64 {
		return "", fmt.Errorf("snapshot: invalid diffID %q", diffID.String())
	}
	for _, c := range []byte(diffID.Hex) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", fmt.Errorf("snapshot: invalid diffID %q", diffID.String())
		}
	}
	return diffID.Hex, nil
}

func (s *Snapshotter) get(diffID v1.Hash) (*Layer, error) {
	hx, err := layerHex(diffID)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(s.root, hx)
	b, err := os.ReadFile(filepath.Join(dir, metaName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("snapshot: layer %s: %w", diffID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: layer %s: %w", diffID, err)
	}
	var m layerMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("snapshot: layer %s: metadata: %w", diffID, err)
	}
	return &Layer{
		DiffID:  diffID,
		Size:    m.Size,
		Dir:     filepath.Join(dir, diffName),
		TarPath: filepath.Join(dir, tarName),
		Empty:   m.Empty,
	}, nil
}

// publish makes the complete temp layer dir tmpDir (holding diff/ and layer.tar) visible as the layer whose tar
// hashed to sum. When the layer exists already (another process or an earlier build made it), the same content
// won: tmpDir is dropped.
func (s *Snapshotter) publish(tmpDir string, sum hash.Hash, size int64, empty bool) (*Layer, error) {
	diffID := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum.Sum(nil))}
	b, _ := json.Marshal(layerMeta{Size: size, Empty: empty})
	if err := os.WriteFile(filepath.Join(tmpDir, metaName), b, 0o600); err != nil {
		os.RemoveAll(tmpDir)
		return nil, fmt.Errorf("snapshot: layer %s: %w", diffID, err)
	}
	final := filepath.Join(s.root, diffID.Hex)
	err := unix.Renameat2(unix.AT_FDCWD, tmpDir, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE)
	if err != nil {
		os.RemoveAll(tmpDir)
		if err != unix.EEXIST && err != unix.ENOTEMPTY {
			return nil, fmt.Errorf("snapshot: layer %s: rename: %w", diffID, err)
		}
	}
	return s.get(diffID)
}

// hashFile writes to fd and hashes what it writes (sha256): the one pass that stores a tar and gives its diffID.
type hashFile struct {
	fd   int
	sum  hash.Hash
	size int64
}

func newHashFile(path string) (*hashFile, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, err
	}
	return &hashFile{fd: fd, sum: sha256.New()}, nil
}

func (h *hashFile) Write(p []byte) (int, error) {
	h.sum.Write(p)
	if err := writeFull(h.fd, p); err != nil {
		return 0, err
	}
	h.size += int64(len(p))
	return len(p), nil
}

// Close is idempotent: a raw fd closed twice could be another goroutine's by then.
func (h *hashFile) Close() error {
	if h.fd < 0 {
		return nil
	}
	err := unix.Close(h.fd)
	h.fd = -1
	return err
}
