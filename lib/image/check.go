package image

import (
	"encoding/binary"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Limits on the msgpack a record body may hold (CheckBody).
const (
	// MaxElems is the most elements one array or map may have: far more
	// than a process has threads, mappings, fds or signals.
	MaxElems = 1 << 22
	// MaxDepth is the deepest nesting of arrays and maps.
	MaxDepth = 32
)

// Unmarshal decodes a record body into v, once CheckBody has found its
// msgpack sound.
func Unmarshal(body []byte, v any) error {
	if err := CheckBody(body); err != nil {
		return err
	}
	return msgpack.Unmarshal(body, v)
}

// CheckBody walks the msgpack value at the start of body and refuses it
// unless every array, map, string and binary it holds fits in body, no
// array or map has more than MaxElems elements, and nesting stays within
// MaxDepth. msgpack/v5 allocates a slice as long as the length an array
// claims before it reads one element (the limit it means to apply is
// never on), so a flipped bit in a length could otherwise make a reader
// ask for gigabytes and die; with this check what decoding allocates
// grows with the body's size.
func CheckBody(body []byte) error {
	w := walker{b: body}
	pending := []int{1} // values still to read, per level of nesting
	for len(pending) > 0 {
		if pending[len(pending)-1] == 0 {
			pending = pending[:len(pending)-1]
			continue
		}
		pending[len(pending)-1]--
		n, err := w.value()
		if err != nil {
			return fmt.Errorf("msgpack at body byte %d: %w", w.at, err)
		}
		if n == 0 {
			continue
		}
		if len(pending) >= MaxDepth {
			return fmt.Errorf("msgpack at body byte %d: nested over %d levels", w.at, MaxDepth)
		}
		pending = append(pending, n)
	}
	return nil
}

// walker reads msgpack value heads from b.
type walker struct {
	b  []byte
	at int // offset of the value being read
	p  int // read position
}

// value reads one value and returns how many values it contains (array
// elements, or map keys and values) that follow it.
func (w *walker) value() (int, error) {
	w.at = w.p
	c, err := w.take(1)
	if err != nil {
		return 0, err
	}
	b := c[0]
	switch {
	case b <= 0x7f || b >= 0xe0: // fixint
		return 0, nil
	case b <= 0x8f:
		return w.elems(int(b&0x0f), 2)
	case b <= 0x9f:
		return w.elems(int(b&0x0f), 1)
	case b <= 0xbf:
		return 0, w.skip(int(b & 0x1f))
	}
	switch b {
	case 0xc0, 0xc2, 0xc3: // nil, false, true
		return 0, nil
	case 0xc4, 0xd9: // bin8, str8
		return 0, w.sized(1, 0)
	case 0xc5, 0xda:
		return 0, w.sized(2, 0)
	case 0xc6, 0xdb:
		return 0, w.sized(4, 0)
	case 0xc7, 0xc8, 0xc9: // ext8, ext16, ext32: length, type, data
		return 0, w.sized(1<<(b-0xc7), 1)
	case 0xca, 0xce, 0xd2: // float32, uint32, int32
		return 0, w.skip(4)
	case 0xcb, 0xcf, 0xd3:
		return 0, w.skip(8)
	case 0xcc, 0xd0:
		return 0, w.skip(1)
	case 0xcd, 0xd1:
		return 0, w.skip(2)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1 to 16, after a type byte
		return 0, w.skip(1 + 1<<(b-0xd4))
	case 0xdc, 0xde:
		n, err := w.length(2)
		return w.mul(n, b, err)
	case 0xdd, 0xdf:
		n, err := w.length(4)
		return w.mul(n, b, err)
	}
	return 0, fmt.Errorf("byte %#x is not a msgpack value", b)
}

// mul turns an array or map length into the values that follow.
func (w *walker) mul(n int, code byte, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	if code == 0xde || code == 0xdf {
		return w.elems(n, 2)
	}
	return w.elems(n, 1)
}

// elems checks that n elements of per values each can fit in what is
// left of the body, one byte at least each.
func (w *walker) elems(n, per int) (int, error) {
	if n > MaxElems {
		return 0, fmt.Errorf("%d elements, over the limit of %d", n, MaxElems)
	}
	if n*per > len(w.b)-w.p {
		return 0, fmt.Errorf("%d elements claimed, %d bytes left", n, len(w.b)-w.p)
	}
	return n * per, nil
}

// sized skips a length of size bytes, extra bytes, then that many bytes.
func (w *walker) sized(size, extra int) error {
	n, err := w.length(size)
	if err != nil {
		return err
	}
	return w.skip(extra + n)
}

func (w *walker) length(size int) (int, error) {
	c, err := w.take(size)
	if err != nil {
		return 0, err
	}
	switch size {
	case 1:
		return int(c[0]), nil
	case 2:
		return int(binary.BigEndian.Uint16(c)), nil
	}
	return int(binary.BigEndian.Uint32(c)), nil
}

func (w *walker) skip(n int) error {
	_, err := w.take(n)
	return err
}

func (w *walker) take(n int) ([]byte, error) {
	if n < 0 || n > len(w.b)-w.p {
		return nil, fmt.Errorf("%d bytes claimed, %d left", n, len(w.b)-w.p)
	}
	c := w.b[w.p : w.p+n]
	w.p += n
	return c, nil
}
