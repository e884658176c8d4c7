package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

var decoder = sync.OnceValue(func() *zstd.Decoder {
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(4),
		zstd.WithDecoderMaxMemory(MaxFrame),
		zstd.WithDecoderMaxWindow(MaxFrame),
		zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		panic(err) // only bad options fail, and these are constant
	}
	return dec
})

// frameHeader is a frame's fixed part, as stored.
type frameHeader struct {
	method  int
	stored  int
	raw     int
	start   int // -1: no record begins in the frame
	records int
	crc     uint32
}

// parseFrameHeader checks a frame header's fields, before its payload is
// read, so that a bad length is refused before anything is allocated.
func parseFrameHeader(h []byte) (frameHeader, error) {
	fh := frameHeader{
		method:  int(h[1]),
		stored:  int(binary.LittleEndian.Uint32(h[4:])),
		raw:     int(binary.LittleEndian.Uint32(h[8:])),
		start:   int(binary.LittleEndian.Uint32(h[12:])),
		records: int(binary.LittleEndian.Uint32(h[16:])),
		crc:     binary.LittleEndian.Uint32(h[20:]),
	}
	if binary.LittleEndian.Uint32(h[12:]) == noStart {
		fh.start = -1
	}
	switch {
	case h[0] != tagFrame:
		return fh, fmt.Errorf("bad frame tag %#x", h[0])
	case h[2] != 0 || h[3] != 0:
		return fh, errors.New("reserved frame header bytes are not zero")
	case fh.raw == 0 || fh.raw > MaxFrame:
		return fh, fmt.Errorf("frame of %d bytes (limit %d)", fh.raw, MaxFrame)
	case fh.method == MethodRaw && fh.stored != fh.raw:
		return fh, fmt.Errorf("raw frame stores %d bytes for %d", fh.stored, fh.raw)
	case fh.method == MethodZstd && (fh.stored == 0 || fh.stored >= fh.raw):
		return fh, fmt.Errorf("zstd frame stores %d bytes for %d", fh.stored, fh.raw)
	case fh.method != MethodRaw && fh.method != MethodZstd:
		return fh, fmt.Errorf("unknown frame method %d", fh.method)
	case fh.start >= fh.raw || fh.records > fh.raw:
		return fh, fmt.Errorf("frame of %d bytes says %d records begin at %d",
			fh.raw, fh.records, fh.start)
	}
	return fh, nil
}

// decodeFrame checks the payload against the header's CRC and returns the
// frame's raw bytes, decoded into dst when compressed. A raw frame's bytes
// are payload itself.
func decodeFrame(fh frameHeader, h, payload, dst []byte) ([]byte, error) {
	crc := crc32.Update(crc32.Checksum(h[:20], castagnoli), castagnoli, payload)
	if crc != fh.crc {
		return nil, fmt.Errorf("frame %w", ErrChecksum)
	}
	if fh.method == MethodRaw {
		return payload, nil
	}
	if cap(dst) < fh.raw {
		dst = make([]byte, 0, fh.raw)
	}
	out, err := decoder().DecodeAll(payload, dst[:0:fh.raw])
	if err != nil {
		return nil, fmt.Errorf("decompress frame: %w", err)
	}
	if len(out) != fh.raw {
		return nil, fmt.Errorf("frame decompresses to %d bytes, header says %d", len(out), fh.raw)
	}
	return out, nil
}

// ReadIndex reads the index of a whole archive held by ra (a file) of
// the given size, for a reader that wants to seek to a task's frames. It
// checks the trailer and the index's own checksum but not the frames; use
// Verify, or a Reader to the end, for that.
func ReadIndex(ra io.ReaderAt, size int64) (*Index, error) {
	t := make([]byte, trailerSize)
	tat := size - trailerSize
	if tat < headerSize+indexHeaderSize {
		return nil, &Error{"trailer", max(tat, 0), ErrTruncated}
	}
	if _, err := ra.ReadAt(t, tat); err != nil {
		return nil, &Error{"trailer", tat, err}
	}
	at, err := parseTrailer(t)
	if err != nil {
		return nil, &Error{"trailer", tat, err}
	}
	if at < headerSize || at > tat-indexHeaderSize {
		return nil, &Error{"trailer", tat, fmt.Errorf("index offset %d out of range", at)}
	}
	sec := make([]byte, tat-at)
	if int64(len(sec)) > indexHeaderSize+MaxIndex {
		return nil, &Error{"index", at, fmt.Errorf("index of %d bytes (limit %d)", len(sec), MaxIndex)}
	}
	if _, err := ra.ReadAt(sec, at); err != nil {
		return nil, &Error{"index", at, err}
	}
	n, err := parseIndexHeader(sec[:indexHeaderSize])
	if err == nil && n != len(sec)-indexHeaderSize {
		err = fmt.Errorf("index of %d bytes, %d lie before the trailer", n, len(sec)-indexHeaderSize)
	}
	if err != nil {
		return nil, &Error{"index", at, err}
	}
	ix, err := decodeIndex(sec[:indexHeaderSize], sec[indexHeaderSize:])
	if err != nil {
		return nil, &Error{"index", at, err}
	}
	return ix, nil
}

// ReadFrame reads and checks one frame of an archive held by ra, and
// returns its raw bytes: records cut as f.Start says.
func ReadFrame(ra io.ReaderAt, f Frame) ([]byte, error) {
	h := make([]byte, frameHeaderSize)
	if _, err := ra.ReadAt(h, f.Offset); err != nil {
		return nil, &Error{"frame", f.Offset, err}
	}
	fh, err := parseFrameHeader(h)
	if err != nil {
		return nil, &Error{"frame", f.Offset, err}
	}
	payload := make([]byte, fh.stored)
	if _, err := ra.ReadAt(payload, f.Offset+frameHeaderSize); err != nil {
		return nil, &Error{"frame", f.Offset, err}
	}
	raw, err := decodeFrame(fh, h, payload, nil)
	if err != nil {
		return nil, &Error{"frame", f.Offset, err}
	}
	return raw, nil
}

// parseTrailer checks a trailer, all but its whole-archive checksum, and
// returns the index offset.
func parseTrailer(t []byte) (int64, error) {
	switch {
	case t[0] != tagTrailer:
		return 0, fmt.Errorf("bad trailer tag %#x", t[0])
	case t[1] != 0 || t[2] != 0 || t[3] != 0:
		return 0, errors.New("reserved trailer bytes are not zero")
	case !bytes.Equal(t[16:], []byte(EndMagic)):
		return 0, fmt.Errorf("bad end magic %q", t[16:])
	}
	return int64(binary.LittleEndian.Uint64(t[4:])), nil
}

// parseIndexHeader checks an index section's header and returns the
// length of its body.
func parseIndexHeader(h []byte) (int, error) {
	n := int(binary.LittleEndian.Uint32(h[4:]))
	switch {
	case h[0] != tagIndex:
		return 0, fmt.Errorf("bad index tag %#x", h[0])
	case h[1] != 0 || h[2] != 0 || h[3] != 0:
		return 0, errors.New("reserved index header bytes are not zero")
	case n > MaxIndex:
		return 0, fmt.Errorf("index of %d bytes (limit %d)", n, MaxIndex)
	}
	return n, nil
}
