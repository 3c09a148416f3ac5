package sandbox

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Limits are a container's resource limits (`run --memory/--cpus/--pids-limit`), enforced with a cgroup of
// its own. Zero means unlimited.
type Limits struct {
	Memory    int64 `json:"memory,omitempty"`     // bytes; swap cannot dodge it (memsw / memory.swap.max)
	NanoCPUs  int64 `json:"nano_cpus,omitempty"`  // CPUs x 1e9 (docker's NanoCPUs): --cpus 0.5 is 5e8
	PidsLimit int64 `json:"pids_limit,omitempty"` // processes and threads
}

// Any reports whether a limit is set (a container without limits gets no cgroup of its own).
func (l Limits) Any() bool { return l.Memory > 0 || l.NanoCPUs > 0 || l.PidsLimit > 0 }

// MinMemory is docker's smallest --memory.
const MinMemory = 6 << 20

// cfsPeriod is the CFS period used for --cpus, in microseconds (docker's).
const cfsPeriod = 100000

// cpuQuota is the CFS quota in microseconds per cfsPeriod for l.NanoCPUs (0: unlimited).
func (l Limits) cpuQuota() int64 {
	if l.NanoCPUs <= 0 {
		return 0
	}
	q := l.NanoCPUs * cfsPeriod / 1e9
	if q < 1000 { // the kernel's minimum quota
		q = 1000
	}
	return q
}

var memSizeRe = regexp.MustCompile(`^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$`)

// ParseMemory parses a memory size as docker does (go-units RAMInBytes): a number with an optional binary
// unit b, k, m, g, t or p (case-insensitive, optionally followed by "b" or "ib"): "64m", "1g", "512k", "1.5g".
func ParseMemory(s string) (int64, error) {
	m := memSizeRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional unit b, k, m or g (e.g. 64m)", s)
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %w", s, err)
	}
	mult := float64(1)
	switch strings.ToLower(m[2]) {
	case "k":
		mult = 1 << 10
	case "m":
		mult = 1 << 20
	case "g":
		mult = 1 << 30
	case "t":
		mult = 1 << 40
	case "p":
		mult = 1 << 50
	}
	v := f * mult
	if v >= 1<<62 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return int64(v), nil
}

// FormatMemory shows a size the way it was most likely given: 64MB for 64m, 1GB, 512KB, else bytes.
func FormatMemory(n int64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{40, "TB"}, {30, "GB"}, {20, "MB"}, {10, "KB"}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", n>>u.shift, u.name)
		}
	}
	if n >= 1<<20 {
		return fmt.Sprintf("%.1fMB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%dB", n)
}

// ParseCPUs parses --cpus (a decimal number of CPUs, e.g. 0.5) into NanoCPUs.
func ParseCPUs(s string, ncpu int) (int64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("invalid --cpus %q: want a decimal number of CPUs such as 0.5", s)
	}
	if f == 0 {
		return 0, nil
	}
	if f < 0.01 || f > float64(ncpu) {
		return 0, fmt.Errorf("range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", ncpu, ncpu)
	}
	return int64(f*1e9 + 0.5), nil
}
