package archive

import (
	"io"

	"github.com/ckpt/ckpt/lib/stream"
)

// Verify reads a whole archive and checks everything a restore would:
// every frame's checksum, the record stream inside (framing, header,
// version, end record and its counts), the index and the whole-archive
// checksum. The summary it returns includes the stream's header.
func Verify(in io.Reader) (Summary, error) {
	ar, err := NewReader(in)
	if err != nil {
		return Summary{}, err
	}
	defer ar.Close()
	sr := stream.NewReader(ar)
	h, err := sr.Header()
	if err != nil {
		return Summary{}, err
	}
	for {
		_, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Summary{Header: h}, err
		}
	}
	if err := ar.Finish(); err != nil {
		return Summary{Header: h}, err
	}
	sum := ar.Summary()
	sum.Header = h
	return sum, nil
}
