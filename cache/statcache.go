package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// StatCache remembers the content hash of a build context's files by their stat, as git's index does, so that
// hashing an unchanged context costs one lstat per file and no read. An entry is trusted only while the
// file's size, mtime, ctime, inode, device and mode are all exactly what they were when it was hashed; a write
// changes ctime even when the writer restores mtime, and a replacement by rename changes the inode.
//
// Racily clean files: a file written in the same timestamp tick in which it was hashed can change without
// any stat field changing. A file whose mtime or ctime is within RacyWindow of the moment it was hashed (or of
// the moment the cache is saved) is therefore never trusted later: it is hashed again on every use until it
// has been quiet for longer than the window.
//
// The cache lives in one file per context directory (DIR/stat/<sha256 of the context's absolute path>),
// rewritten atomically by Save. A missing, torn or foreign file reads as empty. Concurrent builds on one
// context each write a whole file: the last writer wins, which only costs the loser some re-hashing.
//
// A StatCache is safe for concurrent use.
type StatCache struct {
	file string // the cache file
	root string // the context directory (absolute, clean), stripped from paths to make keys

	now func() time.Time // the clock (tests move it)

	mu          sync.Mutex
	idx         map[string]int32 // key -> index in ents
	ents        []statEntry
	dirty       bool
	hits, reads int    // Hash calls answered from the cache / that read the file
	buf         []byte // the loaded file: keys of loaded entries point into it and it is never written to
}

// RacyWindow is how long after its last change a file's stat is not trusted to identify its content. It
// covers coarse file system timestamps (a jiffy; 2 s on FAT) and a little clock skew between the kernel's
// timestamps and time.Now.
const RacyWindow = 2 * time.Second

// keepUnseen is how long an entry survives in the file when no build looks at its file (another Dockerfile or
// --target on the same context still finds its entries); maxUnseen caps how many such entries are kept.
const (
	keepUnseen = 7 * 24 * time.Hour
	maxUnseen  = 1 << 17
)

const (
	flagSeen = 1 << iota // looked up or hashed by this process
	flagRacy             // hashed too close to the file's last change (or changed while read): never trusted
)

type statEntry struct {
	key   string
	size  int64
	mtime int64 // ns
	ctime int64 // ns
	ino   uint64
	dev   uint64
	mode  uint32 // st_mode: type and permission bits
	flags uint32
	used  int64 // unix seconds of the last build that used the entry
	sum   [32]byte
}

// File format: magic, entry count (u32), entries, CRC-32C of everything before it (u32). Each entry:
// key length (uvarint), key, then size, mtime, ctime, ino, dev (i64/u64), mode (u32), used (i64), sha256.
// Little endian throughout.
const (
	statMagic     = "LBSTAT\x00\x01"
	statFixedSize = 8*5 + 4 + 8 + 32
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// OpenStatCache loads the stat cache of contextDir from cacheDir/stat (the directory is created when missing).
// A missing, unreadable, torn or garbage cache file is an empty cache, not an error.
func OpenStatCache(cacheDir, contextDir string) (*StatCache, error) {
	root, err := filepath.Abs(contextDir)
	if err != nil {
		return nil, fmt.Errorf("stat cache: %w", err)
	}
	dir := filepath.Join(cacheDir, "stat")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("stat cache: %w", err)
	}
	name := sha256.Sum256([]byte(root))
	c := &StatCache{
		file: filepath.Join(dir, hex.EncodeToString(name[:])),
		root: root,
		now:  time.Now,
	}
	if !c.decode(c.read()) {
		c.idx, c.ents, c.buf = nil, nil, nil
	}
	if c.idx == nil {
		c.idx = map[string]int32{}
	}
	return c, nil
}

// read reads the cache file (nil when there is none or it cannot be read: the cache starts empty, the build
// goes on) and, when it was last written more than a day ago, touches it: a context's file is forgotten after
// a week in which no build opened it (see pruneDir).
func (c *StatCache) read() []byte {
	f, err := os.Open(c.file)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil
	}
	if now := time.Now(); now.Sub(fi.ModTime()) > 24*time.Hour {
		_ = os.Chtimes(c.file, now, now)
	}
	return data
}

// decode parses a cache file; false means it is not one (the cache starts empty).
func (c *StatCache) decode(data []byte) bool {
	if len(data) < len(statMagic)+8 || string(data[:len(statMagic)]) != statMagic {
		return false
	}
	body, tail := data[:len(data)-4], data[len(data)-4:]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(tail) {
		return false
	}
	p := body[len(statMagic):]
	n := binary.LittleEndian.Uint32(p)
	p = p[4:]
	if uint64(n) > uint64(len(p))/(statFixedSize+1) {
		return false
	}
	c.buf = data
	c.ents = make([]statEntry, n)
	c.idx = make(map[string]int32, n)
	le := binary.LittleEndian
	for i := range c.ents {
		kl, w := binary.Uvarint(p)
		if w <= 0 || kl == 0 || kl > uint64(len(p)-w) || uint64(len(p)-w)-kl < statFixedSize {
			return false
		}
		p = p[w:]
		// The key aliases the file's bytes: one allocation for the whole file instead of one per entry.
		e := &c.ents[i]
		e.key = unsafe.String(&p[0], int(kl))
		p = p[kl:]
		e.size = int64(le.Uint64(p[0:]))
		e.mtime = int64(le.Uint64(p[8:]))
		e.ctime = int64(le.Uint64(p[16:]))
		e.ino = le.Uint64(p[24:])
		e.dev = le.Uint64(p[32:])
		e.mode = le.Uint32(p[40:])
		e.used = int64(le.Uint64(p[44:]))
		copy(e.sum[:], p[52:84])
		p = p[statFixedSize:]
		c.idx[e.key] = int32(i)
	}
	return len(p) == 0
}

// Len is the number of entries (loaded and added).
func (c *StatCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ents)
}

// Stats says how many Hash calls were answered from the cache and how many read the file.
func (c *StatCache) Stats() (hits, reads int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.reads
}

func (c *StatCache) key(path string) string {
	if len(path) > len(c.root) && path[len(c.root)] == filepath.Separator && strings.HasPrefix(path, c.root) {
		return path[len(c.root)+1:]
	}
	return path
}

func tsNano(ts syscall.Timespec) int64 { return ts.Sec*1e9 + ts.Nsec }

func (e *statEntry) matches(st *syscall.Stat_t) bool {
	return e.size == st.Size && e.mtime == tsNano(st.Mtim) && e.ctime == tsNano(st.Ctim) &&
		e.ino == st.Ino && e.dev == st.Dev && e.mode == st.Mode
}

// Hash returns the sha256 of the content of the regular file at path, whose lstat is fi: from the cache when
// the file's stat is exactly the one recorded, else by reading the file (and recording the result). path
// is a host path, normally inside the context directory.
func (c *StatCache) Hash(path string, fi fs.FileInfo) ([32]byte, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		sum, _, err := hashContent(path)
		return sum, err
	}
	key := c.key(path)
	c.mu.Lock()
	if i, ok := c.idx[key]; ok {
		e := &c.ents[i]
		if e.flags&flagRacy == 0 && e.matches(st) {
			e.flags |= flagSeen
			sum := e.sum
			c.hits++
			c.mu.Unlock()
			return sum, nil
		}
	}
	c.reads++
	c.mu.Unlock()

	start := c.now().UnixNano()
	sum, after, err := hashContent(path)
	if err != nil {
		return sum, err
	}
	e := statEntry{key: key, size: st.Size, mtime: tsNano(st.Mtim), ctime: tsNano(st.Ctim), ino: st.Ino,
		dev: st.Dev, mode: st.Mode, flags: flagSeen, sum: sum}
	// What was read must be what fi describes: a file that changed between the walk's lstat and the read is
	// not recorded (the next build hashes it again).
	if !e.matches(&after) || max(e.mtime, e.ctime) >= start-int64(RacyWindow) {
		e.flags |= flagRacy
	}
	c.mu.Lock()
	if i, ok := c.idx[key]; ok {
		c.ents[i] = e
	} else {
		c.idx[key] = int32(len(c.ents))
		c.ents = append(c.ents, e)
	}
	if e.flags&flagRacy == 0 {
		c.dirty = true
	}
	c.mu.Unlock()
	return sum, nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// hashContent reads a file (not following a final symlink) and returns its sha256 and its fstat after the read.
func hashContent(path string) (sum [32]byte, st syscall.Stat_t, err error) {
	var fd int
	for {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return sum, st, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	h := sha256.New()
	for {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return sum, st, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n <= 0 {
			break
		}
		h.Write(buf[:n])
	}
	if err := syscall.Fstat(fd, &st); err != nil {
		return sum, st, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	h.Sum(sum[:0])
	return sum, st, nil
}

// Save writes the cache back (temp file, fsync, rename) when this process hashed something new. Entries of
// files hashed within RacyWindow of their last change (or of now) are left out; entries no build has used
// for a week are dropped, and at most maxUnseen entries this process did not look at are kept.
func (c *StatCache) Save() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty {
		return nil
	}
	now := c.now()
	racy := now.UnixNano() - int64(RacyWindow)
	stale := now.Add(-keepUnseen).Unix()
	size := len(statMagic) + 8
	keep := make([]int32, 0, len(c.ents))
	unseen := 0
	for i := range c.ents {
		e := &c.ents[i]
		if e.flags&flagRacy != 0 || max(e.mtime, e.ctime) >= racy {
			continue
		}
		if e.flags&flagSeen != 0 {
			e.used = now.Unix()
		} else if e.used < stale || unseen >= maxUnseen {
			continue
		} else {
			unseen++
		}
		keep = append(keep, int32(i))
		size += binary.MaxVarintLen64 + len(e.key) + statFixedSize
	}
	out := make([]byte, 0, size)
	out = append(out, statMagic...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(keep)))
	le := binary.LittleEndian
	for _, i := range keep {
		e := &c.ents[i]
		out = binary.AppendUvarint(out, uint64(len(e.key)))
		out = append(out, e.key...)
		out = le.AppendUint64(out, uint64(e.size))
		out = le.AppendUint64(out, uint64(e.mtime))
		out = le.AppendUint64(out, uint64(e.ctime))
		out = le.AppendUint64(out, e.ino)
		out = le.AppendUint64(out, e.dev)
		out = le.AppendUint32(out, e.mode)
		out = le.AppendUint64(out, uint64(e.used))
		out = append(out, e.sum[:]...)
	}
	out = le.AppendUint32(out, crc32.Checksum(out, crcTable))
	if err := writeAtomic(c.file, out); err != nil {
		return fmt.Errorf("stat cache: %w", err)
	}
	c.dirty = false
	pruneDir(filepath.Dir(c.file), time.Now())
	return nil
}

// pruneDir removes the cache files of contexts that no build opened for keepUnseen (one file per context
// directory ever built would otherwise pile up: think of temporary contexts) and temp files that a killed
// Save left behind.
func pruneDir(dir string, now time.Time) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, de := range des {
		fi, err := de.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		age := now.Sub(fi.ModTime())
		if age > keepUnseen || (strings.HasPrefix(de.Name(), ".tmp-") && age > time.Hour) {
			_ = os.Remove(filepath.Join(dir, de.Name()))
		}
	}
}
