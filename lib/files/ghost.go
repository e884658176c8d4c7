package files

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stream"
	"github.com/vmihailenco/msgpack/v5"
)

// ErrGhostTooBig is wrapped by the error about a ghost that holds more
// data than Options.MaxGhostSize allows.
var ErrGhostTooBig = errors.New("ghost too big")

// checkGhost refuses a ghost that holds more data than the options allow.
// It walks the data extents only when there is a limit.
func (r *resolver) checkGhost(f *image.File, src *usage) error {
	if f.Kind != image.FileGhost || r.opt.MaxGhostSize <= 0 || f.Size <= r.opt.MaxGhostSize {
		return nil
	}
	if r.opt.GhostClone {
		return nil // a ghost that cannot be cloned is checked as it is sent
	}
	file, err := openSource(src.Use)
	if err != nil {
		return err
	}
	defer file.Close()

	var n int64
	err = dataExtents(file, f.Size, func(off, end int64) error {
		n += end - off
		return nil
	})
	if err != nil {
		return err
	}
	return tooBig(n, r.opt.MaxGhostSize)
}

func tooBig(n, limit int64) error {
	if limit <= 0 || n <= limit {
		return nil
	}
	return fmt.Errorf("unlinked file holds %d bytes of data, over the %d bytes "+
		"--max-ghost-size allows: %w", n, limit, ErrGhostTooBig)
}

// ghostWriter writes the contents of ghosts as ghost-data records, one
// chunk at a time: it never holds more than one chunk and its encoding.
type ghostWriter struct {
	w     *stream.Writer
	limit int64
	buf   []byte
	body  bytes.Buffer
	enc   *msgpack.Encoder
}

func newGhostWriter(w *stream.Writer, limit int64) *ghostWriter {
	g := &ghostWriter{w: w, limit: limit, buf: make([]byte, image.MaxChunk)}
	g.body.Grow(image.MaxChunk + 64)
	g.enc = msgpack.NewEncoder(&g.body)
	return g
}

// writeGhost writes the contents of the ghost f and counts them in the
// summary.
func (res *Result) writeGhost(g *ghostWriter, f *image.File) error {
	src := res.sources[f.ID]
	n, err := g.ghost(f, src.Use)
	if err != nil {
		return &Error{Use: src.Use, Path: src.names[0], Err: err}
	}
	res.Summary.GhostBytes += n
	return nil
}

// ghost writes the data extents of one ghost, read through u's /proc
// link, up to the size it had when resolved, and returns the bytes sent.
// The contents of a shared memory object (shmem, memfd, sysv-shm) are
// sent without their all-zero pages, which restore leaves as holes, and
// without a size limit.
func (g *ghostWriter) ghost(f *image.File, u Use) (int64, error) {
	file, err := openSource(u)
	if err != nil {
		return 0, err
	}
	defer file.Close()

	limit, shmem := g.limit, sharedMemory(f.Kind)
	if shmem {
		limit = 0
	}
	var sent int64
	err = dataExtents(file, f.Size, func(off, end int64) error {
		for off < end {
			n := min(end-off, int64(len(g.buf)))
			if err := tooBig(sent+n, limit); err != nil {
				return err
			}
			p := g.buf[:n]
			if err := readAt(file, p, off); err != nil {
				return err
			}
			if !shmem {
				if err := g.chunk(f.ID, off, p); err != nil {
					return err
				}
				sent += n
			} else {
				m, err := g.sparseChunk(f.ID, off, p)
				if err != nil {
					return err
				}
				sent += m
			}
			off += n
		}
		return nil
	})
	return sent, err
}

// readAt reads len(p) bytes at off.
func readAt(file *os.File, p []byte, off int64) error {
	if _, err := file.ReadAt(p, off); err != nil {
		if err == io.EOF {
			return fmt.Errorf("read contents at %d: the file shrank while being read", off)
		}
		return fmt.Errorf("read contents at %d: %w", off, err)
	}
	return nil
}

// sparseChunk writes the pages of p, read at off, that are not all zero,
// one record per run of them, and returns the bytes written.
func (g *ghostWriter) sparseChunk(id int, off int64, p []byte) (int64, error) {
	var sent int64
	for _, r := range nonZeroRuns(p, pageSize) {
		if err := g.chunk(id, off+int64(r[0]), p[r[0]:r[1]]); err != nil {
			return sent, err
		}
		sent += int64(r[1] - r[0])
	}
	return sent, nil
}

// pageSize is the page size of this machine.
var pageSize = os.Getpagesize()

// nonZeroRuns returns the runs [start, end) of p, cut in pieces of size
// bytes (the last may be shorter), in which no piece is all zero.
func nonZeroRuns(p []byte, size int) [][2]int {
	var runs [][2]int
	for i := 0; i < len(p); i += size {
		j := min(i+size, len(p))
		if allZero(p[i:j]) {
			continue
		}
		if n := len(runs); n > 0 && runs[n-1][1] == i {
			runs[n-1][1] = j
		} else {
			runs = append(runs, [2]int{i, j})
		}
	}
	return runs
}

// zeroPage is a page of zeros to compare pages with.
var zeroPage = make([]byte, pageSize)

func allZero(p []byte) bool {
	for len(p) > 0 {
		n := min(len(p), len(zeroPage))
		if !bytes.Equal(p[:n], zeroPage[:n]) {
			return false
		}
		p = p[n:]
	}
	return true
}

// chunk writes p, the contents at off, as one record.
func (g *ghostWriter) chunk(id int, off int64, p []byte) error {
	g.body.Reset()
	if err := g.enc.Encode(&image.GhostData{FileID: id, Offset: off, Data: p}); err != nil {
		return fmt.Errorf("encode ghost-data record: %w", err)
	}
	rec := stream.Record{Kind: image.KindGhostData, Body: g.body.Bytes()}
	if err := g.w.WriteRecord(rec); err != nil {
		return fmt.Errorf("write ghost-data record: %w", err)
	}
	return nil
}
