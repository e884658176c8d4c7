// Package show reads a ckpt record stream, or an archive holding one, and
// describes it for people and scripts: a readable summary of the dumped
// tree (Collect, Summary.Write) or every record as a line of JSON
// (WriteJSON). It needs nothing but the stream; it never looks at the live
// processes the stream describes.
//
// Records that carry data (pages, ghost-data) are counted, never kept, so
// memory stays bounded whatever the size of the input.
package show

import (
	"bufio"
	"bytes"
	"io"

	"github.com/ckpt/ckpt/lib/archive"
	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stream"
)

// Input is a record stream being read, either as it is or out of an
// archive. Open it with Open, read the header with Header, then call Next
// until it returns io.EOF.
type Input struct {
	sr   *stream.Reader
	ar   *archive.Reader // nil for a plain record stream
	sum  *archive.Summary
	last int64 // stream offset of the record Next returned last
}

// Open looks at the first bytes of r to tell an archive (which starts with
// archive.Magic) from a record stream, and returns an Input reading it. It
// fails only on an archive whose header is bad. Open reads no more than it
// must: from a record stream, not a byte past its end record.
func Open(r io.Reader) (*Input, error) {
	br := bufio.NewReader(r) // only to peek: the readers below buffer for themselves
	if !isArchive(br) {
		return &Input{sr: stream.NewReader(br)}, nil
	}
	ar, err := archive.NewReader(br)
	if err != nil {
		return nil, err
	}
	return &Input{sr: stream.NewReader(ar), ar: ar}, nil
}

// isArchive says whether br starts with the archive magic, or with a piece
// of it and then ends (a truncated archive). It looks at one byte first, so
// that it never waits for bytes a short record stream does not have.
func isArchive(br *bufio.Reader) bool {
	b, err := br.Peek(1)
	if err != nil || b[0] != archive.Magic[0] {
		return false
	}
	b, _ = br.Peek(len(archive.Magic))
	return bytes.HasPrefix([]byte(archive.Magic), b)
}

// IsArchive says whether the input is an archive.
func (in *Input) IsArchive() bool { return in.ar != nil }

// Header reads and checks the stream's header record.
func (in *Input) Header() (*image.Header, error) {
	h, err := in.sr.Header()
	if err != nil {
		in.Close()
	}
	return h, err
}

// Next returns the next record after the header. After the end record it
// returns io.EOF; from an archive, only once the index, the trailer and
// the whole-archive checksum were read and checked too. Any other error
// names the record and byte offset, or the archive part and its offset,
// where the problem was found.
func (in *Input) Next() (stream.Record, error) {
	in.last = in.sr.Offset()
	rec, err := in.sr.Next()
	if err == io.EOF && in.ar != nil && in.sum == nil {
		if err := in.ar.Finish(); err != nil {
			return rec, err
		}
		sum := in.ar.Summary()
		in.sum = &sum
	}
	if err != nil && err != io.EOF {
		in.Close()
	}
	return rec, err
}

// Where returns the number and the stream offset of the record Next
// returned last (after io.EOF: of the end record). The header is record 0.
func (in *Input) Where() (record int, offset int64) {
	if in.sr.End() != nil {
		return in.sr.RecordNum(), in.last
	}
	return in.sr.RecordNum() - 1, in.last
}

// Errorf returns an error about the record Next returned last.
func (in *Input) Errorf(err error) error {
	n, off := in.Where()
	return &stream.FormatError{Record: n, Offset: off, Err: err}
}

// End returns the end record once Next has returned io.EOF.
func (in *Input) End() *image.End { return in.sr.End() }

// StreamBytes returns the bytes of record stream read so far.
func (in *Input) StreamBytes() int64 { return in.sr.Offset() }

// Archive describes the archive once Next has returned io.EOF; it is nil
// for a plain record stream.
func (in *Input) Archive() *archive.Summary { return in.sum }

// Close stops reading ahead in an archive. It does not close the
// underlying reader.
func (in *Input) Close() error {
	if in.ar != nil {
		return in.ar.Close()
	}
	return nil
}
