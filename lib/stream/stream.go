// Package stream reads and writes the ckpt record stream: a header record,
// any number of records, and an end record, each framed as a msgpack array
// of two elements, [kind string, body bin], where body is itself the
// msgpack encoding of the record's value (see docs/FORMAT.md).
//
// Because the body is opaque bytes in the frame, a stage can pass a record
// of a kind it does not handle to its output without decoding it.
package stream

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"
)

// MaxRecord is the largest record body a reader accepts. Page and file
// chunks are at most image.MaxChunk; task records stay far below this.
const MaxRecord = 64 << 20

// ErrTruncated is returned when a stream ends before its end record.
var ErrTruncated = errors.New("stream truncated: it ends before its end record")

// Record is one framed record: its kind and its still-encoded body.
type Record struct {
	Kind string
	Body []byte
}

// Decode decodes the record's body into v.
func (r Record) Decode(v any) error {
	if err := image.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("decode %s record: %w", r.Kind, err)
	}
	return nil
}

// FormatError is a malformed stream, with the record number and byte
// offset where it was found.
type FormatError struct {
	Record int   // 0 is the header
	Offset int64 // byte offset of the record's frame
	Err    error
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("stream record %d at byte %d: %v", e.Record, e.Offset, e.Err)
}

func (e *FormatError) Unwrap() error { return e.Err }

// Reader reads records. Create it with NewReader, read the header with
// Header, then call Next until it returns io.EOF, which it does only after
// a valid end record.
type Reader struct {
	br      *bufio.Reader
	off     int64
	n       int // records read
	header  *image.Header
	end     *image.End
	hdrErr  error
	started bool
	// Reuse, when set, makes every record's Body share one buffer: a
	// body is then valid only until the next call to Next. Consumers that
	// decode each record at once set it and save an allocation per record.
	Reuse bool
	buf   []byte
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 1<<20)}
}

// Header reads and checks the header record (once; later calls return the
// same). It refuses a stream that is not a ckpt stream, or whose version
// this tree does not read.
func (r *Reader) Header() (*image.Header, error) {
	if r.started {
		return r.header, r.hdrErr
	}
	r.started = true
	r.header, r.hdrErr = r.readHeader()
	return r.header, r.hdrErr
}

// archiveMagic opens a ckpt archive (lib/archive, which imports this
// package): a reader given one says so instead of "bad frame byte".
const archiveMagic = "CKPTIMG\x00"

func (r *Reader) readHeader() (*image.Header, error) {
	off := r.off
	if b, _ := r.br.Peek(len(archiveMagic)); string(b) == archiveMagic {
		return nil, &FormatError{0, off, errors.New("this is a ckpt archive, not a record " +
			"stream: ckpt-restore restores it, ckpt-show shows what it holds")}
	}
	rec, err := r.frame()
	if err == io.EOF {
		return nil, &FormatError{0, off, errors.New("empty input: no stream header")}
	}
	if err != nil {
		return nil, err
	}
	if rec.Kind != image.KindHeader {
		return nil, &FormatError{0, off, fmt.Errorf("first record is %q, not a header", rec.Kind)}
	}
	var h image.Header
	if err := rec.Decode(&h); err != nil {
		return nil, &FormatError{0, off, err}
	}
	if h.Magic != image.Magic {
		return nil, &FormatError{0, off, fmt.Errorf("bad magic %q: not a ckpt stream", h.Magic)}
	}
	if !slices.Contains(image.ReadVersions, h.Version) {
		return nil, &FormatError{0, off, fmt.Errorf(
			"stream version %d is not supported (this tool reads versions %v)",
			h.Version, image.ReadVersions)}
	}
	r.n = 1
	return &h, nil
}

// Next returns the next record after the header. It returns io.EOF after
// the end record, ErrTruncated (wrapped in a FormatError) if the input ends
// before it. The end record itself is not returned; see End.
func (r *Reader) Next() (Record, error) {
	if _, err := r.Header(); err != nil {
		return Record{}, err
	}
	if r.end != nil {
		return Record{}, io.EOF
	}
	off := r.off
	rec, err := r.frame()
	if err == io.EOF {
		return Record{}, &FormatError{r.n, off, ErrTruncated}
	}
	if err != nil {
		return Record{}, err
	}
	switch rec.Kind {
	case image.KindHeader:
		return Record{}, &FormatError{r.n, off, errors.New("second header record")}
	case image.KindEnd:
		var e image.End
		if err := rec.Decode(&e); err != nil {
			return Record{}, &FormatError{r.n, off, err}
		}
		if e.Records != r.n {
			return Record{}, &FormatError{r.n, off, fmt.Errorf(
				"end record counts %d records, %d were read", e.Records, r.n)}
		}
		r.end = &e
		return Record{}, io.EOF
	}
	r.n++
	return rec, nil
}

// End returns the end record once Next has returned io.EOF.
func (r *Reader) End() *image.End { return r.end }

// Offset returns the number of bytes consumed so far.
func (r *Reader) Offset() int64 { return r.off }

// RecordNum returns the number of records read so far, header included.
func (r *Reader) RecordNum() int { return r.n }

// Errorf returns an error about the last record returned by Next.
func (r *Reader) Errorf(format string, args ...any) error {
	return &FormatError{r.n - 1, r.off, fmt.Errorf(format, args...)}
}

// frame reads one [kind, body] frame. io.EOF means a clean end before the
// frame's first byte; any other short read is ErrTruncated.
func (r *Reader) frame() (Record, error) {
	off := r.off
	fail := func(err error) (Record, error) {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = ErrTruncated
		}
		return Record{}, &FormatError{r.n, off, err}
	}
	b, err := r.br.ReadByte()
	if err == io.EOF {
		return Record{}, io.EOF
	}
	if err != nil {
		return fail(err)
	}
	r.off++
	if b != 0x92 {
		return fail(fmt.Errorf("bad frame byte %#x (want a 2-element array)", b))
	}
	klen, err := r.strLen()
	if err != nil {
		return fail(err)
	}
	if klen > 64 {
		return fail(fmt.Errorf("record kind of %d bytes", klen))
	}
	kind := make([]byte, klen)
	if err := r.full(kind); err != nil {
		return fail(err)
	}
	blen, err := r.binLen()
	if err != nil {
		return fail(err)
	}
	if blen > MaxRecord {
		return fail(fmt.Errorf("%s record of %d bytes is over the %d limit", kind, blen, MaxRecord))
	}
	if blen > trustedLen {
		body, err := r.grow(blen)
		if err != nil {
			return fail(err)
		}
		return Record{Kind: string(kind), Body: body}, nil
	}
	var body []byte
	if r.Reuse {
		if cap(r.buf) < blen {
			r.buf = make([]byte, blen)
		}
		body = r.buf[:blen]
	} else {
		body = make([]byte, blen)
	}
	if err := r.full(body); err != nil {
		return fail(err)
	}
	return Record{Kind: string(kind), Body: body}, nil
}

// trustedLen is the longest body read into a buffer of the length the
// frame claims; a longer one (rare: page and file chunks are at most 1
// MiB) grows as its bytes come, so a corrupt length costs no more memory
// than the input holds.
const trustedLen = 2 << 20

// grow reads a body of n bytes into a buffer that grows as it fills.
func (r *Reader) grow(n int) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(trustedLen)
	got, err := io.CopyN(&buf, r.br, int64(n))
	r.off += got
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return buf.Bytes(), err
}

func (r *Reader) full(p []byte) error {
	n, err := io.ReadFull(r.br, p)
	r.off += int64(n)
	return err
}

func (r *Reader) strLen() (int, error) {
	b, err := r.br.ReadByte()
	if err != nil {
		return 0, err
	}
	r.off++
	switch {
	case b&0xe0 == 0xa0:
		return int(b & 0x1f), nil
	case b == 0xd9:
		c, err := r.br.ReadByte()
		r.off++
		return int(c), err
	}
	return 0, fmt.Errorf("bad kind byte %#x (want a string)", b)
}

func (r *Reader) binLen() (int, error) {
	b, err := r.br.ReadByte()
	if err != nil {
		return 0, err
	}
	r.off++
	size := map[byte]int{0xc4: 1, 0xc5: 2, 0xc6: 4}[b]
	if size == 0 {
		return 0, fmt.Errorf("bad body byte %#x (want binary)", b)
	}
	var buf [4]byte
	if err := r.full(buf[4-size:]); err != nil {
		return 0, err
	}
	return int(binary.BigEndian.Uint32(buf[:])), nil
}

// Writer writes records. Write the header first, then records, then call
// End, which writes the end record and flushes.
type Writer struct {
	bw    *bufio.Writer
	n     int
	kinds map[string]int
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, 1<<20), kinds: map[string]int{}}
}

// NewHeader returns a header for a new stream written by stage.
func NewHeader(stage string) *image.Header {
	var u unix.Utsname
	_ = unix.Uname(&u)
	return &image.Header{
		Magic:    image.Magic,
		Version:  image.Version,
		Arch:     runtime.GOARCH,
		PageSize: os.Getpagesize(),
		Kernel:   unix.ByteSliceToString(u.Release[:]),
		Stages:   []string{stage},
	}
}

// Write encodes v as the body of a record of the given kind.
func (w *Writer) Write(kind string, v any) error {
	body, err := msgpack.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s record: %w", kind, err)
	}
	return w.WriteRecord(Record{Kind: kind, Body: body})
}

// WriteRecord writes a record whose body is already encoded: this is how a
// stage passes on records it does not handle. The header and end records
// are written by WriteHeader and End.
func (w *Writer) WriteRecord(rec Record) error {
	if rec.Kind == image.KindEnd {
		return errors.New("stream: end record written through WriteRecord")
	}
	if err := w.writeFrame(rec.Kind, rec.Body); err != nil {
		return err
	}
	w.n++
	w.kinds[rec.Kind]++
	return nil
}

// WriteHeader writes the header record; it must come first.
func (w *Writer) WriteHeader(h *image.Header) error {
	if w.n != 0 {
		return errors.New("stream: header written after other records")
	}
	return w.Write(image.KindHeader, h)
}

// End writes the end record and flushes.
func (w *Writer) End() error {
	body, err := msgpack.Marshal(&image.End{Records: w.n, Kinds: w.kinds})
	if err != nil {
		return err
	}
	if err := w.writeFrame(image.KindEnd, body); err != nil {
		return err
	}
	return w.bw.Flush()
}

func (w *Writer) writeFrame(kind string, body []byte) error {
	if len(kind) == 0 || len(kind) > 64 {
		return fmt.Errorf("stream: record kind %q must have 1 to 64 bytes", kind)
	}
	var hdr [1 + 2 + 64 + 5]byte
	b := append(hdr[:0], 0x92)
	if len(kind) < 32 {
		b = append(b, 0xa0|byte(len(kind)))
	} else {
		b = append(b, 0xd9, byte(len(kind)))
	}
	b = append(b, kind...)
	b = append(b, 0xc6)
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	if _, err := w.bw.Write(b); err != nil {
		return err
	}
	_, err := w.bw.Write(body)
	return err
}

// Flush writes buffered records out.
func (w *Writer) Flush() error { return w.bw.Flush() }
