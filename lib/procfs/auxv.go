package procfs

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ReadAuxv reads /proc/PID/auxv.
func ReadAuxv(pid int) ([]uint64, error) {
	b, path, err := read(pid, "auxv")
	if err != nil {
		return nil, err
	}
	a, err := ParseAuxv(b)
	return a, withPath(err, path)
}

// ParseAuxv parses an auxv file: pairs of native 64-bit words (type,
// value), up to and including the AT_NULL pair. It returns the words,
// AT_NULL 0 included; anything after AT_NULL is dropped.
func ParseAuxv(b []byte) ([]uint64, error) {
	if len(b)%16 != 0 {
		err := fmt.Errorf("%d bytes is not a whole number of pairs", len(b))
		return nil, &ParseError{File: "auxv", Err: err}
	}
	var words []uint64
	for off := 0; off < len(b); off += 16 {
		typ := binary.NativeEndian.Uint64(b[off:])
		val := binary.NativeEndian.Uint64(b[off+8:])
		words = append(words, typ, val)
		if typ == 0 {
			return words, nil
		}
	}
	return nil, &ParseError{File: "auxv", Err: errors.New("no AT_NULL entry")}
}
