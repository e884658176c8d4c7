package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"

	"github.com/ckpt/ckpt/lib/image"
)

// Reader reads an archive front to back. It is an io.Reader that yields
// the record stream the archive holds, each frame's bytes only once its
// checksum was verified, so the usual use is
//
//	ar, err := archive.NewReader(in)
//	sr := stream.NewReader(ar)
//	... sr.Header, sr.Next until io.EOF ...
//	err = ar.Finish() // index, trailer, whole checksum
//
// A goroutine reads and decompresses the next frame while the caller
// consumes the current one. Call Finish, or Close to give up early.
type Reader struct {
	src      *source // owned by the prefetch goroutine while it runs
	cur      *decoded
	pos      int
	prefetch bool
	started  bool // the prefetch goroutine was started
	running  bool // and has not sent its last result
	results  chan *decoded
	free     chan *decoded
	stop     chan struct{}
	eof      bool  // every frame was read: the index comes next
	err      error // the first error, returned from then on
	finished bool
	index    *Index
}

// decoded is one frame's raw bytes, or how reading the next one ended.
type decoded struct {
	raw  []byte
	buf  []byte // decoding buffer, reused
	last bool   // no frame: the index follows
	err  error
}

// NewReader reads and checks the archive header from in, and returns a
// Reader for the rest.
func NewReader(in io.Reader) (*Reader, error) {
	src := &source{in: in, ix: newIndexer()}
	var h [headerSize]byte
	n, err := io.ReadFull(in, h[:])
	if err != nil {
		return nil, &Error{"header", 0, notArchive(h[:n], true)}
	}
	if err := checkHeader(h[:]); err != nil {
		return nil, &Error{"header", 0, err}
	}
	src.off = headerSize
	src.crc = crc32.Checksum(h[:], castagnoli)
	r := &Reader{
		src:      src,
		prefetch: true,
		results:  make(chan *decoded, 1),
		free:     make(chan *decoded, 3),
		stop:     make(chan struct{}),
	}
	for range 3 {
		r.free <- &decoded{}
	}
	return r, nil
}

func checkHeader(h []byte) error {
	if !bytes.Equal(h[:8], []byte(Magic)) {
		return notArchive(h, false)
	}
	if v := binary.LittleEndian.Uint16(h[8:]); v != Version {
		return fmt.Errorf("archive version %d is not supported (this tool reads version %d)",
			v, Version)
	}
	if crc32.Checksum(h[:12], castagnoli) != binary.LittleEndian.Uint32(h[12:]) {
		return fmt.Errorf("header %w", ErrChecksum)
	}
	if f := binary.LittleEndian.Uint16(h[10:]); f != 0 {
		return fmt.Errorf("unknown archive flags %#x", f)
	}
	return nil
}

// notArchive says what input that does not start with Magic looks like.
// short is true when b is all the input there was.
func notArchive(b []byte, short bool) error {
	stream := []byte("\x92\xa6header")
	switch {
	case len(b) == 0:
		return &kindError{"empty input: no archive header", ErrTruncated}
	case bytes.HasPrefix(stream, b[:min(len(b), len(stream))]):
		return &kindError{"this is a record stream, not an archive: pipe it through ckpt-pack",
			ErrNotArchive}
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return &kindError{"this is a plain zstd file, not a ckpt archive", ErrNotArchive}
	case short && bytes.HasPrefix([]byte(Magic), b[:min(len(b), len(Magic))]):
		return fmt.Errorf("%w: input ends inside the header", ErrTruncated)
	case short && len(b) > len(Magic) && bytes.HasPrefix(b, []byte(Magic)):
		return fmt.Errorf("%w: input ends inside the header", ErrTruncated)
	}
	return fmt.Errorf("%w: it starts with % x", ErrNotArchive, b[:min(len(b), 8)])
}

// kindError is an error with its own message that is also one of the
// package's sentinel errors.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// Read yields the record stream. It returns io.EOF after the last frame.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for r.cur == nil || r.pos == len(r.cur.raw) {
		if r.eof {
			return 0, io.EOF
		}
		if r.cur != nil {
			r.free <- r.cur
			r.cur = nil
		}
		d := r.next()
		switch {
		case d.err != nil:
			r.err = d.err
			return 0, d.err
		case d.last:
			r.eof = true
			r.free <- d
			return 0, io.EOF
		}
		r.cur, r.pos = d, 0
	}
	n := copy(p, r.cur.raw[r.pos:])
	r.pos += n
	return n, nil
}

// next returns the next frame, read by the prefetch goroutine or, without
// it, here.
func (r *Reader) next() *decoded {
	if !r.prefetch {
		d := <-r.free
		r.src.next(d)
		return d
	}
	if !r.started {
		r.started, r.running = true, true
		go r.run()
	}
	d := <-r.results
	if d.last || d.err != nil {
		r.running = false
	}
	return d
}

// run reads frames ahead of the caller until the index or an error.
func (r *Reader) run() {
	for {
		var d *decoded
		select {
		case d = <-r.free:
		case <-r.stop:
			return
		}
		r.src.next(d)
		select {
		case r.results <- d:
		case <-r.stop:
			return
		}
		if d.last || d.err != nil {
			return
		}
	}
}

// Finish reads what follows the record stream, the index and the trailer,
// and checks them: the index must describe the frames read, the whole
// archive must match its checksum, and nothing may follow the trailer.
// Call it after the record stream's end record; frame bytes not yet read
// are read and checked too.
func (r *Reader) Finish() error {
	if r.finished {
		return r.err
	}
	r.finished = true
	for r.err == nil && !r.eof {
		if r.cur != nil {
			r.free <- r.cur
		}
		r.cur = nil
		d := r.next()
		switch {
		case d.err != nil:
			r.err = d.err
		case d.last:
			r.eof = true
		default:
			r.cur = d
		}
	}
	if r.err != nil {
		return r.err
	}
	r.index, r.err = r.src.finish()
	return r.err
}

// Close stops reading ahead. It does not interrupt a read of the input
// that is under way, nor close the input.
func (r *Reader) Close() error {
	if r.running {
		close(r.stop)
		r.running = false
	}
	if r.err == nil && !r.finished {
		r.err = errors.New("archive reader closed")
	}
	return nil
}

// Index returns the archive's index once Finish has returned nil.
func (r *Reader) Index() *Index { return r.index }

// Summary describes the archive once Finish has returned nil.
func (r *Reader) Summary() Summary {
	if r.index == nil {
		return Summary{}
	}
	return summarize(r.index, r.src.off)
}

// source reads an archive's sections in order and checks each.
type source struct {
	in     io.Reader
	off    int64  // archive bytes read
	crc    uint32 // of the archive bytes read
	ix     *indexer
	frames []Frame
	stored []byte // payload buffer, reused
}

// read fills p from the input and adds it to the whole-archive checksum.
func (s *source) read(p []byte, part string, at int64) error {
	n, err := io.ReadFull(s.in, p)
	s.crc = crc32.Update(s.crc, castagnoli, p[:n])
	s.off += int64(n)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return &Error{part, at, fmt.Errorf("%w: input ends at byte %d", ErrTruncated, s.off)}
	}
	if err != nil {
		return &Error{part, at, fmt.Errorf("read at byte %d: %w", s.off, err)}
	}
	return nil
}

// next reads the next section into d: a frame's raw bytes, or the tag of
// the index (d.last).
func (s *source) next(d *decoded) {
	d.raw, d.last, d.err = nil, false, nil
	at := s.off
	h := make([]byte, frameHeaderSize)
	if d.err = s.read(h[:1], "frame", at); d.err != nil {
		return
	}
	switch h[0] {
	case tagIndex:
		d.last = true
		return
	case tagFrame:
	default:
		d.err = &Error{"frame", at, fmt.Errorf("bad section tag %#x", h[0])}
		return
	}
	d.raw, d.err = s.frame(h, at, d)
}

// frame reads the rest of a frame whose tag was read, checks it, and
// follows its records.
func (s *source) frame(h []byte, at int64, d *decoded) ([]byte, error) {
	if err := s.read(h[1:], "frame", at); err != nil {
		return nil, err
	}
	fh, err := parseFrameHeader(h)
	if err != nil {
		return nil, &Error{"frame", at, err}
	}
	if cap(s.stored) < fh.stored {
		s.stored = make([]byte, fh.stored)
	}
	payload := s.stored[:fh.stored]
	if err := s.read(payload, "frame", at); err != nil {
		return nil, err
	}
	raw, err := decodeFrame(fh, h, payload, d.buf)
	if err != nil {
		return nil, &Error{"frame", at, err}
	}
	if fh.method == MethodRaw { // raw is s.stored: trade buffers
		s.stored, d.buf = d.buf, s.stored
	} else {
		d.buf = raw
	}
	if err := s.follow(raw, fh, at); err != nil {
		return nil, &Error{"frame", at, err}
	}
	return raw, nil
}

// follow feeds a frame's raw bytes to the indexer and checks the frame
// header against what they hold.
func (s *source) follow(raw []byte, fh frameHeader, at int64) error {
	s.ix.newFrame()
	for p := raw; len(p) > 0; {
		n, err := s.ix.feed(p)
		if err != nil {
			return err
		}
		p = p[n:]
	}
	f := s.ix.endFrame()
	if f.Start != fh.start || f.Records != fh.records {
		return fmt.Errorf("header says %d records begin at %d, the bytes hold %d at %d",
			fh.records, fh.start, f.Records, f.Start)
	}
	f.Offset, f.Method, f.Stored = at, fh.method, fh.stored
	s.frames = append(s.frames, f)
	return nil
}

// finish reads the index, whose tag was read, and the trailer, and checks
// them against the frames.
func (s *source) finish() (*Index, error) {
	at := s.off - 1
	h := make([]byte, indexHeaderSize)
	h[0] = tagIndex
	if err := s.read(h[1:], "index", at); err != nil {
		return nil, err
	}
	n, err := parseIndexHeader(h)
	if err != nil {
		return nil, &Error{"index", at, err}
	}
	body := make([]byte, n)
	if err := s.read(body, "index", at); err != nil {
		return nil, err
	}
	stored, err := decodeIndex(h, body)
	if err != nil {
		return nil, &Error{"index", at, err}
	}
	built, err := s.ix.finish()
	if err != nil {
		return nil, &Error{"index", at, err}
	}
	built.Frames = s.frames
	if err := compareIndex(stored, built); err != nil {
		return nil, &Error{"index", at, err}
	}
	if err := s.trailer(at); err != nil {
		return nil, err
	}
	return built, nil
}

// trailer reads and checks the trailer and that the input ends with it.
func (s *source) trailer(indexAt int64) error {
	at := s.off
	t := make([]byte, trailerSize)
	if err := s.read(t[:12], "trailer", at); err != nil {
		return err
	}
	whole := s.crc
	if err := s.read(t[12:], "trailer", at); err != nil {
		return err
	}
	ixAt, err := parseTrailer(t)
	switch {
	case err != nil:
	case ixAt != indexAt:
		err = fmt.Errorf("trailer says the index is at byte %d, it is at %d", ixAt, indexAt)
	case binary.LittleEndian.Uint32(t[12:]) != whole:
		err = fmt.Errorf("whole archive %w", ErrChecksum)
	}
	if err != nil {
		return &Error{"trailer", at, err}
	}
	var one [1]byte
	if n, _ := io.ReadFull(s.in, one[:]); n > 0 {
		return &Error{"trailer", at, fmt.Errorf("data after the archive end at byte %d", s.off)}
	}
	return nil
}

// decodeIndex checks an index section's checksum and decodes its body.
func decodeIndex(h, body []byte) (*Index, error) {
	crc := crc32.Update(crc32.Checksum(h[:8], castagnoli), castagnoli, body)
	if crc != binary.LittleEndian.Uint32(h[8:]) {
		return nil, fmt.Errorf("index %w", ErrChecksum)
	}
	var ix Index
	if err := image.Unmarshal(body, &ix); err != nil {
		return nil, fmt.Errorf("decode index: %w", err)
	}
	return &ix, nil
}

// compareIndex checks a stored index against the one rebuilt from the
// frames, and names the first difference.
func compareIndex(stored, built *Index) error {
	switch {
	case stored.Records != built.Records || !maps.Equal(stored.Kinds, built.Kinds):
		return fmt.Errorf("index counts %d records %v, the frames hold %d %v",
			stored.Records, stored.Kinds, built.Records, built.Kinds)
	case stored.RawBytes != built.RawBytes:
		return fmt.Errorf("index says %d stream bytes, the frames hold %d",
			stored.RawBytes, built.RawBytes)
	case len(stored.Frames) != len(built.Frames):
		return fmt.Errorf("index lists %d frames, there are %d",
			len(stored.Frames), len(built.Frames))
	case len(stored.Tasks) != len(built.Tasks):
		return fmt.Errorf("index lists %d tasks, the records name %d",
			len(stored.Tasks), len(built.Tasks))
	}
	for i, f := range built.Frames {
		if stored.Frames[i] != f {
			return fmt.Errorf("index entry of frame %d differs from the frame at byte %d",
				i, f.Offset)
		}
	}
	for i, t := range built.Tasks {
		if !sameTask(stored.Tasks[i], t) {
			return fmt.Errorf("index task %d (pid %d) differs from its records", i, t.PID)
		}
	}
	return nil
}

func sameTask(a, b Task) bool {
	return a.PID == b.PID && a.FirstRecord == b.FirstRecord && a.Frame == b.Frame &&
		a.Offset == b.Offset && a.LastFrame == b.LastFrame && a.Bytes == b.Bytes &&
		maps.Equal(a.Kinds, b.Kinds)
}
