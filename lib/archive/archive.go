// Package archive reads and writes the ckpt archive: a record stream (see
// package stream) cut into checksummed, zstd-compressed frames, followed by
// an index of where each task's records lie and a checksum of the whole.
// It is written and read front to back, so it can go through a pipe; a
// reader that has the whole file can also seek with ReadIndex and
// ReadFrame.
//
// Layout (integers little-endian; docs/FORMAT.md has the full story):
//
//	header   16 bytes  "CKPTIMG\0" | version u16 | flags u16 | crc32c u32 of bytes 0-11
//	frame    24 bytes  'F' | method u8 | 0 u16 | stored u32 | raw u32 |
//	                   start u32 | records u32 | crc32c u32
//	         stored bytes of payload: zstd (method 1) or raw (method 0)
//	...      more frames
//	index    12 bytes  'I' | 0 0 0 | length u32 | crc32c u32
//	         length bytes: the Index, msgpack
//	trailer  24 bytes  'T' | 0 0 0 | index offset u64 | crc32c u32 | "CKPTEND\0"
//
// A frame's crc32c covers its first 20 header bytes and its payload; the
// index's covers its first 8 bytes and its payload; the trailer's covers
// every archive byte before that field. Start is where, in the frame's raw
// bytes, the first record that begins in the frame starts (0xffffffff if
// none does); frames are cut at record boundaries, so start is 0 unless a
// record was too large for one frame.
package archive

import (
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/ckpt/ckpt/lib/image"
)

// Magic opens every archive; EndMagic closes it.
const (
	Magic    = "CKPTIMG\x00"
	EndMagic = "CKPTEND\x00"
)

// Version is the archive version this package writes; it reads only this
// one.
const Version = 1

// Frame methods: how a frame's payload is stored.
const (
	MethodRaw  = 0 // the record stream bytes as they are
	MethodZstd = 1 // one zstd frame (RFC 8878) holding them
)

// Limits a reader enforces, so that hostile input cannot make it allocate
// much: a frame yields at most MaxFrame bytes, and the index is at most
// MaxIndex bytes.
const (
	MaxFrame = 16 << 20
	MaxIndex = 16 << 20
)

// Sizes of the fixed parts.
const (
	headerSize      = 16
	frameHeaderSize = 24
	indexHeaderSize = 12
	trailerSize     = 24
)

// Section tags.
const (
	tagFrame   = 'F'
	tagIndex   = 'I'
	tagTrailer = 'T'
)

// noStart is a frame's start when no record begins in it.
const noStart = 0xffffffff

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors that an *Error wraps, for errors.Is.
var (
	// ErrTruncated means the input ended before the archive did.
	ErrTruncated = errors.New("archive truncated")
	// ErrChecksum means stored bytes do not match their checksum.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrNotArchive means the input is not a ckpt archive at all.
	ErrNotArchive = errors.New("not a ckpt archive")
)

// Error is a problem found in an archive: the part it was found in
// ("header", "frame", "index", "trailer") and the byte offset of that part.
type Error struct {
	Part   string
	Offset int64
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("archive %s at byte %d: %v", e.Part, e.Offset, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Index is the archive's table of contents, stored after the last frame.
// A reader rebuilds it from the frames and refuses an archive whose stored
// index says otherwise.
type Index struct {
	Records  int            `msgpack:"records"`   // every record, header and end included
	Kinds    map[string]int `msgpack:"kinds"`     // the same, by kind
	RawBytes int64          `msgpack:"raw_bytes"` // length of the record stream
	Frames   []Frame        `msgpack:"frames"`
	Tasks    []Task         `msgpack:"tasks"` // in the order their first record appears
}

// Frame says where one frame lies in the archive and in the record stream.
type Frame struct {
	Offset    int64 `msgpack:"offset"`     // archive offset of the frame's header
	Method    int   `msgpack:"method"`     // MethodRaw or MethodZstd
	Stored    int   `msgpack:"stored"`     // payload bytes in the archive
	RawOffset int64 `msgpack:"raw_offset"` // stream offset of its first byte
	Raw       int   `msgpack:"raw"`        // stream bytes it holds
	// Start is the offset in the frame's raw bytes of the first record that
	// begins in it, or -1 when it only holds the middle of a large record.
	Start int `msgpack:"start"`
	// FirstRecord is the number of records (header = record 0) that began
	// before this frame: the number of the first record that begins in it.
	FirstRecord int `msgpack:"first_record"`
	Records     int `msgpack:"records"` // records that begin in it
}

// Task says where the records of one task lie. A record belongs to a task
// when its body is a msgpack map whose first key is "pid" (task, fd and
// pages records; see docs/FORMAT.md).
type Task struct {
	PID         int            `msgpack:"pid"`
	FirstRecord int            `msgpack:"first_record"` // number of its first record
	Frame       int            `msgpack:"frame"`        // index in Frames where that record begins
	Offset      int            `msgpack:"offset"`       // where in that frame's raw bytes
	LastFrame   int            `msgpack:"last_frame"`   // index in Frames where its last record begins
	Kinds       map[string]int `msgpack:"kinds"`        // its records, by kind
	Bytes       int64          `msgpack:"bytes"`        // stream bytes of its records
}

// Summary describes a whole archive.
type Summary struct {
	Records    int            // every record, header and end included
	Kinds      map[string]int // the same, by kind
	Tasks      int            // tasks in the index
	Frames     int            // frames
	Compressed int            // frames stored with zstd (the rest are raw)
	RawBytes   int64          // length of the record stream
	Size       int64          // length of the archive
	Header     *image.Header  // the stream's header (from Verify only)
}

func summarize(ix *Index, size int64) Summary {
	s := Summary{
		Records:  ix.Records,
		Kinds:    ix.Kinds,
		Tasks:    len(ix.Tasks),
		Frames:   len(ix.Frames),
		RawBytes: ix.RawBytes,
		Size:     size,
	}
	for _, f := range ix.Frames {
		if f.Method == MethodZstd {
			s.Compressed++
		}
	}
	return s
}
