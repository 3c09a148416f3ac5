package snapshot

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicBzip2 = []byte("BZh")
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
)

// decompress detects the compression of r from its first bytes and returns the uncompressed stream (r itself,
// buffered, when it is not compressed) and a function releasing the decoder.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 256<<10)
	magic, _ := br.Peek(6) // shorter at the end of a tiny stream
	noop := func() {}
	switch {
	case bytes.HasPrefix(magic, magicGzip):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, noop, errors.Join(ErrNotArchive, err)
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(magic, magicBzip2) && len(magic) > 3 && magic[3] >= '1' && magic[3] <= '9':
		return bzip2.NewReader(br), noop, nil
	case bytes.HasPrefix(magic, magicZstd):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, noop, errors.Join(ErrNotArchive, err)
		}
		return zr, zr.Close, nil
	case bytes.HasPrefix(magic, magicXz):
		return nil, noop, errors.New("xz-compressed archives are not supported")
	}
	return br, noop, nil
}

// Decompress returns the uncompressed stream of r, whose compression (none, gzip, bzip2 or zstd) is detected
// from its first bytes; xz is reported as unsupported. Close releases the decoder.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	dr, release, err := decompress(r)
	if err != nil {
		return nil, err
	}
	return readCloser{dr, release}, nil
}

type readCloser struct {
	io.Reader
	release func()
}

func (rc readCloser) Close() error {
	rc.release()
	return nil
}
