package archive

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stream"
)

// A record's head is its framing (at most 1+2+64+5 bytes) and the start of
// its body, enough to read a leading "pid" key (map header, key, integer).
const (
	maxPrefix = 5 + 5 + 9
	maxHead   = 1 + 2 + 64 + 5 + maxPrefix
	maxEnd    = 1 << 20 // an end record holds a count per kind
)

// indexer follows the record framing of a stream fed to it in pieces of
// any size, and builds the index from it. It never holds a record body,
// only the head of the current record. Writer and Reader both use it, so a
// reader rebuilds the index exactly as the writer built it.
type indexer struct {
	ix    Index
	tasks map[int]int // PID -> position in ix.Tasks

	off   int64  // stream offset of the next byte to feed
	head  []byte // the current record's head, while incomplete
	skip  int64  // body bytes of the current record still to pass
	isEnd bool   // the current record is the end record
	end   []byte // the end record's body, gathered to check its count
	ended bool   // the end record has been fed whole
	begun int    // records whose first byte has been fed

	// The current record: where it began.
	recStart int64
	recFrame int
	recOff   int

	// The frame being fed.
	frame      int
	frameRaw   int64
	frameStart int64 // stream offset of the first record begun in it, or -1
	frameBegun int
}

func newIndexer() *indexer {
	return &indexer{
		ix:    Index{Kinds: map[string]int{}},
		tasks: map[int]int{},
		head:  make([]byte, 0, maxHead),
		frame: -1,
	}
}

// newFrame starts a frame at the current stream offset.
func (x *indexer) newFrame() {
	x.frame++
	x.frameRaw = x.off
	x.frameStart = -1
	x.frameBegun = x.begun
}

// endFrame describes the frame fed since newFrame, on the stream's side;
// the archive side (Offset, Method, Stored) is for the caller to fill.
func (x *indexer) endFrame() Frame {
	f := Frame{
		RawOffset:   x.frameRaw,
		Raw:         int(x.off - x.frameRaw),
		Start:       -1,
		FirstRecord: x.frameBegun,
		Records:     x.begun - x.frameBegun,
	}
	if x.frameStart >= 0 {
		f.Start = int(x.frameStart - x.frameRaw)
	}
	return f
}

// atBoundary says whether the next byte fed would start a record.
func (x *indexer) atBoundary() bool { return len(x.head) == 0 && x.skip == 0 }

// feed follows p. It consumes p up to the end of the first record that
// ends in it, or all of p, and returns how much it consumed, so a caller
// can cut frames at record boundaries.
func (x *indexer) feed(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if x.skip > 0 {
			k := int(min(x.skip, int64(len(p)-n)))
			if x.isEnd {
				x.end = append(x.end, p[n:n+k]...)
			}
			x.skip -= int64(k)
			x.off += int64(k)
			n += k
			if x.skip == 0 {
				return n, x.recordDone()
			}
			continue
		}
		if x.ended {
			return n, fmt.Errorf("stream byte %d: data after the end record", x.off)
		}
		k, done, err := x.feedHead(p[n:])
		n += k
		if err != nil || done {
			return n, err
		}
	}
	return n, nil
}

// feedHead takes bytes of p into the current record's head. It returns
// how many it took, and done when the record was complete with its head.
func (x *indexer) feedHead(p []byte) (int, bool, error) {
	if len(x.head) == 0 {
		x.begin()
	}
	had := len(x.head)
	k := min(maxHead-had, len(p))
	x.head = append(x.head, p[:k]...)
	h, ok, err := parseHead(x.head)
	if err != nil {
		return 0, false, fmt.Errorf("record %d at stream byte %d: %w", x.begun-1, x.recStart, err)
	}
	if !ok {
		if len(x.head) == maxHead { // cannot happen: maxHead holds any head
			return 0, false, fmt.Errorf("record %d at stream byte %d: head too long",
				x.begun-1, x.recStart)
		}
		x.off += int64(k)
		return k, false, nil
	}
	used := h.used - had
	x.off += int64(used)
	x.skip = int64(h.body - (h.used - h.size))
	err = x.record(h, x.head[h.size:h.used])
	x.head = x.head[:0]
	if err != nil {
		return used, false, err
	}
	if x.skip == 0 {
		return used, true, x.recordDone()
	}
	return used, false, nil
}

// begin notes the first byte of a record.
func (x *indexer) begin() {
	x.begun++
	x.recStart = x.off
	x.recFrame = x.frame
	x.recOff = int(x.off - x.frameRaw)
	if x.frameStart < 0 {
		x.frameStart = x.off
	}
}

// record enters a record whose head is complete into the index; prefix
// is the start of its body.
func (x *indexer) record(h head, prefix []byte) error {
	num := x.begun - 1
	switch {
	case num == 0 && h.kind != image.KindHeader:
		return fmt.Errorf("record 0 at stream byte 0 is %q, not a header: "+
			"not a ckpt record stream", h.kind)
	case num > 0 && h.kind == image.KindHeader:
		return fmt.Errorf("record %d at stream byte %d: second header", num, x.recStart)
	}
	x.isEnd = h.kind == image.KindEnd
	if x.isEnd {
		if h.body > maxEnd {
			return fmt.Errorf("record %d at stream byte %d: end record of %d bytes",
				num, x.recStart, h.body)
		}
		x.end = append(make([]byte, 0, h.body), prefix...)
	}
	x.ix.Records++
	x.ix.Kinds[h.kind]++
	if h.pid <= 0 {
		return nil
	}
	i, ok := x.tasks[h.pid]
	if !ok {
		i = len(x.ix.Tasks)
		x.tasks[h.pid] = i
		x.ix.Tasks = append(x.ix.Tasks, Task{
			PID:         h.pid,
			FirstRecord: num,
			Frame:       x.recFrame,
			Offset:      x.recOff,
			Kinds:       map[string]int{},
		})
	}
	t := &x.ix.Tasks[i]
	t.LastFrame = x.recFrame
	t.Kinds[h.kind]++
	t.Bytes += int64(h.size + h.body)
	return nil
}

// recordDone ends a record; the end record's count is checked here.
func (x *indexer) recordDone() error {
	if !x.isEnd {
		return nil
	}
	x.ended = true
	var e image.End
	if err := image.Unmarshal(x.end, &e); err != nil {
		return fmt.Errorf("end record at stream byte %d: %w", x.recStart, err)
	}
	if e.Records != x.ix.Records-1 {
		return fmt.Errorf("end record at stream byte %d counts %d records, %d came before it",
			x.recStart, e.Records, x.ix.Records-1)
	}
	return nil
}

// finish returns the index of a stream fed whole; Frames is left for the
// caller.
func (x *indexer) finish() (*Index, error) {
	if !x.ended {
		return nil, fmt.Errorf("stream truncated: it ends at byte %d, before its end record",
			x.off)
	}
	ix := x.ix
	ix.RawBytes = x.off
	return &ix, nil
}

// head is what parseHead reads of a record.
type head struct {
	size int // framing bytes before the body
	body int // body length
	used int // bytes of the head: framing and the body prefix read
	kind string
	pid  int // 0 unless the body starts with a "pid" key
}

var errNeedMore = errors.New("need more bytes")

// parseHead reads a record's framing ([kind, body] as lib/stream writes
// it) and the PID its body starts with, if any. ok is false when b is too
// short to tell.
func parseHead(b []byte) (h head, ok bool, err error) {
	p, err := parseFraming(b, &h)
	if err == errNeedMore {
		return h, false, nil
	}
	if err != nil {
		return h, false, err
	}
	prefix := min(h.body, maxPrefix)
	if len(b) < p+prefix {
		return h, false, nil
	}
	h.size = p
	h.used = p + prefix
	h.pid = leadingPID(b[p : p+prefix])
	return h, true, nil
}

// parseFraming reads the frame byte, the kind and the body length, and
// returns where the body starts.
func parseFraming(b []byte, h *head) (int, error) {
	if len(b) < 2 {
		if len(b) == 1 && b[0] != 0x92 {
			return 0, fmt.Errorf("bad frame byte %#x", b[0])
		}
		return 0, errNeedMore
	}
	if b[0] != 0x92 {
		return 0, fmt.Errorf("bad frame byte %#x", b[0])
	}
	klen, p := 0, 2
	switch c := b[1]; {
	case c&0xe0 == 0xa0:
		klen = int(c & 0x1f)
	case c == 0xd9:
		if len(b) < 3 {
			return 0, errNeedMore
		}
		klen, p = int(b[2]), 3
	default:
		return 0, fmt.Errorf("bad kind byte %#x", c)
	}
	if klen > 64 {
		return 0, fmt.Errorf("record kind of %d bytes", klen)
	}
	if len(b) < p+klen+1 {
		return 0, errNeedMore
	}
	h.kind = string(b[p : p+klen])
	p += klen
	size := 0
	switch b[p] {
	case 0xc4:
		size = 1
	case 0xc5:
		size = 2
	case 0xc6:
		size = 4
	default:
		return 0, fmt.Errorf("bad body byte %#x", b[p])
	}
	p++
	if len(b) < p+size {
		return 0, errNeedMore
	}
	var buf [4]byte
	copy(buf[4-size:], b[p:p+size])
	h.body = int(binary.BigEndian.Uint32(buf[:]))
	if h.body > stream.MaxRecord {
		return 0, fmt.Errorf("%s record of %d bytes is over the %d limit",
			h.kind, h.body, stream.MaxRecord)
	}
	return p + size, nil
}

// leadingPID returns the value of a "pid" key that comes first in the
// msgpack map b starts with, or 0.
func leadingPID(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	switch c := b[0]; {
	case c > 0x80 && c <= 0x8f:
		b = b[1:]
	case c == 0xde && len(b) >= 3:
		b = b[3:]
	case c == 0xdf && len(b) >= 5:
		b = b[5:]
	default:
		return 0
	}
	switch {
	case len(b) >= 4 && string(b[:4]) == "\xa3pid":
		b = b[4:]
	case len(b) >= 5 && string(b[:5]) == "\xd9\x03pid":
		b = b[5:]
	default:
		return 0
	}
	v, ok := msgpackInt(b)
	if !ok || v <= 0 || v > 1<<31-1 {
		return 0
	}
	return int(v)
}

// msgpackInt decodes the msgpack integer b starts with.
func msgpackInt(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	c := b[0]
	if c <= 0x7f {
		return int64(c), true
	}
	if c >= 0xe0 {
		return int64(int8(c)), true
	}
	n := 0
	switch c {
	case 0xcc, 0xd0:
		n = 1
	case 0xcd, 0xd1:
		n = 2
	case 0xce, 0xd2:
		n = 4
	case 0xcf, 0xd3:
		n = 8
	}
	if n == 0 || len(b) < 1+n {
		return 0, false
	}
	var u uint64
	for _, d := range b[1 : 1+n] {
		u = u<<8 | uint64(d)
	}
	if c >= 0xd0 { // signed: extend the sign of an n-byte value
		shift := 64 - 8*uint(n)
		return int64(u<<shift) >> shift, true
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}
