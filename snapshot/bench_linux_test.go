package snapshot

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkWriteDiff20k: the tar+sha256 pass of Commit over an upper dir of 20,000 small files (as the
// fixture's RUN step writes). LAYERBUILD_BENCH_DIR picks the filesystem (default: the test's temp dir).
func BenchmarkWriteDiff20k(b *testing.B) {
	base := os.Getenv("LAYERBUILD_BENCH_DIR")
	if base == "" {
		base = b.TempDir()
	}
	upper, err := os.MkdirTemp(base, "upper")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(upper)
	for d := 0; d < 20; d++ {
		dir := filepath.Join(upper, fmt.Sprintf("d%02d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := 0; f < 1000; f++ {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d", f)), []byte(fmt.Sprintf("file %d %d\n", d, f)), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		bw := bufio.NewWriterSize(&hashFile{fd: int(null.Fd()), sum: sha256.New()}, 1<<20)
		if _, err := writeDiff(bw, upper); err != nil {
			b.Fatal(err)
		}
		bw.Flush()
		null.Close()
	}
}
