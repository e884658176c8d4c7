package archive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
	"github.com/vmihailenco/msgpack/v5"
)

// Frame sizes the writer aims at: it cuts a frame at the first record
// boundary at or past frameTarget bytes, and mid-record only when a single
// record would take the frame past frameLimit.
const (
	frameTarget = 2 << 20
	frameLimit  = 8 << 20
	readSize    = 1 << 20 // what ReadFrom asks for: a full pipe
)

// encoders is how many goroutines compress frames. On this project's
// 2-core machines, idle, two encoders beside the goroutine that feeds the
// writer packed 1.2-1.3 GB/s and one encoder 0.72 GB/s (BenchmarkWriter);
// with one core taken by another process, one encoder did better (0.7
// against 0.5 GB/s).
const encoders = 2

var encoder = sync.OnceValue(func() *zstd.Encoder {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderCRC(false), // each frame has its own CRC32C
		zstd.WithEncoderConcurrency(4))
	if err != nil {
		panic(err) // only bad options fail, and these are constant
	}
	return enc
})

// Writer writes an archive. It is an io.Writer that takes the bytes of a
// record stream, exactly as stream.Writer produces them, in pieces of any
// size; it follows the record framing to cut frames at record boundaries
// and to build the index, and refuses input that is not a record stream.
// Frames are compressed and written by other goroutines while the caller
// goes on, so Write errors from the output may surface one call late;
// Close reports every error.
//
// Typical use:
//
//	aw := archive.NewWriter(out)
//	sw := stream.NewWriter(aw)
//	... sw.WriteHeader, sw.WriteRecord, sw.End ...
//	err := aw.Close()
type Writer struct {
	ix      *indexer
	cur     *job // the frame being filled, or nil
	target  int
	limit   int
	free    chan *job // jobs to fill
	encode  chan *job // to the encoders
	queue   chan *job // to the output goroutine, in order
	done    chan struct{}
	failed  atomic.Pointer[error] // first error of the output goroutine
	err     error                 // first error of the caller's side
	closed  bool
	summary Summary

	// Owned by the output goroutine until done is closed.
	out    io.Writer
	off    int64  // archive bytes written
	crc    uint32 // of the archive bytes written
	frames []Frame
}

// job is one frame on its way through the writer.
type job struct {
	raw   []byte
	frame Frame
	out   []byte // header and payload
	ready chan struct{}
}

// NewWriter returns a Writer that writes an archive to out. It writes the
// archive header at once.
func NewWriter(out io.Writer) *Writer {
	return newWriter(out, frameTarget, frameLimit, encoders)
}

func newWriter(out io.Writer, target, limit, nenc int) *Writer {
	inflight := nenc + 3 // one filling, nenc compressing, one written, one spare
	w := &Writer{
		ix:     newIndexer(),
		target: target,
		limit:  limit,
		free:   make(chan *job, inflight),
		encode: make(chan *job, inflight),
		queue:  make(chan *job, inflight),
		done:   make(chan struct{}),
		out:    out,
	}
	for range inflight {
		w.free <- &job{ready: make(chan struct{}, 1)}
	}
	for range nenc {
		go w.encodeLoop()
	}
	go w.outputLoop()
	w.writeHeader()
	return w
}

// writeHeader queues the archive header as a job of its own, so that
// every write to out happens on the output goroutine.
func (w *Writer) writeHeader() {
	j := <-w.free
	hdr := make([]byte, headerSize)
	copy(hdr, Magic)
	binary.LittleEndian.PutUint16(hdr[8:], Version)
	binary.LittleEndian.PutUint32(hdr[12:], crc32.Checksum(hdr[:12], castagnoli))
	j.out = hdr
	j.frame = Frame{Method: -1}
	j.ready <- struct{}{}
	w.queue <- j
}

// Write follows the record stream in p and queues every frame it
// completes.
func (w *Writer) Write(p []byte) (int, error) {
	if err := w.failure(); err != nil {
		return 0, err
	}
	n := 0
	for n < len(p) {
		if w.cur == nil {
			w.cur = <-w.free
			w.cur.raw = w.cur.raw[:0]
			w.ix.newFrame()
		}
		room := w.limit - len(w.cur.raw)
		k, err := w.ix.feed(p[n : n+min(room, len(p)-n)])
		w.cur.raw = append(w.cur.raw, p[n:n+k]...)
		n += k
		if err != nil {
			w.err = fmt.Errorf("record stream: %w", err)
			return n, w.err
		}
		full := len(w.cur.raw) >= w.limit
		if full || w.ix.atBoundary() && (len(w.cur.raw) >= w.target || w.ix.ended) {
			w.cut()
		}
	}
	return n, w.failure()
}

// ReadFrom reads a record stream from r and writes it, up to and including
// its end record, and returns without reading further: each stage waits
// for its reader to close the pipe after writing its end record, so
// waiting for EOF there would wait forever. It fails if r ends first.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	buf := make([]byte, readSize)
	var total int64
	for !w.ix.ended {
		n, err := r.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return total, err
			}
			total += int64(n)
		}
		if err == io.EOF && !w.ix.ended {
			_, err = w.ix.finish()
			return total, fmt.Errorf("record stream: %w", err)
		}
		if err != nil && err != io.EOF {
			return total, fmt.Errorf("read record stream at byte %d: %w", total, err)
		}
	}
	return total, nil
}

// cut sends the frame being filled on to be compressed and written.
func (w *Writer) cut() {
	j := w.cur
	w.cur = nil
	j.frame = w.ix.endFrame()
	w.encode <- j
	w.queue <- j
}

func (w *Writer) failure() error {
	if w.err != nil {
		return w.err
	}
	if p := w.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// encodeLoop compresses frames.
func (w *Writer) encodeLoop() {
	for j := range w.encode {
		j.out = encodeFrame(j.out[:0], j.raw, &j.frame)
		j.ready <- struct{}{}
	}
}

// encodeFrame appends the frame holding raw to dst: zstd when that is
// smaller, raw otherwise. It fills f.Method and f.Stored.
func encodeFrame(dst, raw []byte, f *Frame) []byte {
	dst = append(dst, make([]byte, frameHeaderSize)...)
	dst = encoder().EncodeAll(raw, dst)
	f.Method = MethodZstd
	if len(dst)-frameHeaderSize >= len(raw) {
		dst = append(dst[:frameHeaderSize], raw...)
		f.Method = MethodRaw
	}
	f.Stored = len(dst) - frameHeaderSize
	start := uint32(noStart)
	if f.Start >= 0 {
		start = uint32(f.Start)
	}
	h := dst[:frameHeaderSize]
	h[0] = tagFrame
	h[1] = byte(f.Method)
	binary.LittleEndian.PutUint32(h[4:], uint32(f.Stored))
	binary.LittleEndian.PutUint32(h[8:], uint32(f.Raw))
	binary.LittleEndian.PutUint32(h[12:], start)
	binary.LittleEndian.PutUint32(h[16:], uint32(f.Records))
	crc := crc32.Update(crc32.Checksum(h[:20], castagnoli), castagnoli, dst[frameHeaderSize:])
	binary.LittleEndian.PutUint32(h[20:], crc)
	return dst
}

// outputLoop writes frames in order. After a write error it goes on
// taking frames, and drops them, so that the caller never blocks.
func (w *Writer) outputLoop() {
	defer close(w.done)
	for j := range w.queue {
		<-j.ready
		if w.failed.Load() == nil {
			w.emit(j)
		}
		w.free <- j
	}
}

func (w *Writer) emit(j *job) {
	if j.frame.Method >= 0 {
		j.frame.Offset = w.off
		w.frames = append(w.frames, j.frame)
	}
	if err := w.write(j.out); err != nil {
		w.failed.Store(&err)
	}
}

// write writes b to the output and adds it to the whole-archive checksum.
func (w *Writer) write(b []byte) error {
	n, err := w.out.Write(b)
	w.crc = crc32.Update(w.crc, castagnoli, b[:n])
	w.off += int64(n)
	if err != nil {
		return fmt.Errorf("write archive at byte %d: %w", w.off, err)
	}
	return nil
}

// Close writes the last frame, the index and the trailer. It fails, and
// leaves the archive without an index, if the record stream written to it
// did not end with its end record. Close does not close the output.
func (w *Writer) Close() error {
	if w.closed {
		return errors.New("archive writer already closed")
	}
	w.closed = true
	if w.cur != nil && len(w.cur.raw) > 0 && w.err == nil {
		w.cut()
	}
	close(w.encode)
	close(w.queue)
	<-w.done
	if err := w.failure(); err != nil {
		return err
	}
	ix, err := w.ix.finish()
	if err != nil {
		return fmt.Errorf("record stream: %w", err)
	}
	ix.Frames = w.frames
	if err := w.writeIndex(ix); err != nil {
		return err
	}
	w.summary = summarize(ix, w.off)
	return nil
}

// writeIndex writes the index section and the trailer.
func (w *Writer) writeIndex(ix *Index) error {
	body, err := msgpack.Marshal(ix)
	if err != nil {
		return fmt.Errorf("encode archive index: %w", err)
	}
	if len(body) > MaxIndex {
		return fmt.Errorf("archive index of %d bytes is over the %d limit", len(body), MaxIndex)
	}
	at := w.off
	sec := make([]byte, indexHeaderSize, indexHeaderSize+len(body)+trailerSize)
	sec[0] = tagIndex
	binary.LittleEndian.PutUint32(sec[4:], uint32(len(body)))
	crc := crc32.Update(crc32.Checksum(sec[:8], castagnoli), castagnoli, body)
	binary.LittleEndian.PutUint32(sec[8:], crc)
	sec = append(sec, body...)

	t := make([]byte, trailerSize)
	t[0] = tagTrailer
	binary.LittleEndian.PutUint64(t[4:], uint64(at))
	whole := crc32.Update(crc32.Update(w.crc, castagnoli, sec), castagnoli, t[:12])
	binary.LittleEndian.PutUint32(t[12:], whole)
	copy(t[16:], EndMagic)
	return w.write(append(sec, t...))
}

// Summary describes the archive written; it is valid after a Close that
// returned nil.
func (w *Writer) Summary() Summary { return w.summary }
