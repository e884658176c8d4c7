package pages

import (
	"errors"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/vmihailenco/msgpack/v5"
)

// headroom is how many free bytes the Dumper keeps before the data of
// every run: room for the start of its record body (about 40 bytes).
const headroom = 64

// Run is one run of pages that Dump emits: image.MaxChunk bytes at most
// of contiguous pages of one mapping. It and its Data are valid only
// until the emit function returns.
type Run struct {
	image.Pages
	buf []byte // the batch buffer; Data starts at buf[off]
	off int
	enc *bodyEncoder
}

// Body returns the run encoded as the body of a pages record, the bytes
// msgpack.Marshal(&r.Pages) gives, without copying Data: the few bytes
// that come before the data in the encoding are written into the buffer
// just before Data, which Dump keeps free for them. Valid until the emit
// function returns.
func (r *Run) Body() ([]byte, error) {
	head, err := r.enc.head(&r.Pages)
	if err != nil {
		return nil, err
	}
	if len(head) > r.off || len(head) > headroom {
		return nil, errors.New("pages record head is larger than the room kept for it")
	}
	start := r.off - len(head)
	copy(r.buf[start:], head)
	return r.buf[start : r.off+len(r.Data)], nil
}

// bodyEncoder encodes a Pages with msgpack, keeping what comes before the
// data and skipping the data itself, which msgpack writes in one piece.
type bodyEncoder struct {
	enc      *msgpack.Encoder
	out      []byte // the encoding so far, without the data
	data     []byte // the Data of the Pages being encoded
	sawData  bool
	afterEnd bool // something came after the data
}

func newBodyEncoder() *bodyEncoder {
	e := &bodyEncoder{out: make([]byte, 0, headroom)}
	e.enc = msgpack.NewEncoder(e)
	return e
}

// head returns the encoding of p up to its data, valid until the next call.
func (e *bodyEncoder) head(p *image.Pages) ([]byte, error) {
	e.out, e.data, e.sawData, e.afterEnd = e.out[:0], p.Data, false, false
	if err := e.enc.Encode(p); err != nil {
		return nil, err
	}
	if !e.sawData || e.afterEnd {
		return nil, errors.New("pages record data is not the end of its encoding")
	}
	return e.out, nil
}

// Write is the msgpack encoder's output: the data is noted, not copied.
func (e *bodyEncoder) Write(b []byte) (int, error) {
	switch {
	case len(b) > 0 && len(b) == len(e.data) && &b[0] == &e.data[0]:
		e.sawData = true
	case e.sawData:
		e.afterEnd = true
	default:
		e.out = append(e.out, b...)
	}
	return len(b), nil
}

// WriteByte spares msgpack a one-byte slice per byte.
func (e *bodyEncoder) WriteByte(c byte) error {
	_, err := e.Write([]byte{c})
	return err
}
