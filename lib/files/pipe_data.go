package files

import (
	"fmt"
	"io"
	"os"

	"github.com/ckpt/ckpt/lib/image"
)

// writePipe writes the bytes in flight of the pipe f as ghost-data
// records, at most MaxChunk bytes each, and counts them in the summary.
func (res *Result) writePipe(g *ghostWriter, f *image.File) error {
	if f.Size == 0 {
		return nil
	}
	src := res.sources[f.ID]
	if err := g.pipe(f, procPath(src.Use)); err != nil {
		return &Error{Use: src.Use, Path: src.names[0], Err: err}
	}
	res.Summary.PipeBytes += f.Size
	return nil
}

// pipe reads the bytes in flight of the pipe f, reached through the /proc
// link path, without consuming them, and writes them in chunks.
func (g *ghostWriter) pipe(f *image.File, path string) error {
	p, err := openPipe(path)
	if err != nil {
		return err
	}
	defer p.Close()

	n, err := pipeBytes(p)
	if err != nil {
		return err
	}
	if n != f.Size {
		return fmt.Errorf("it holds %d bytes, %d when resolved: "+
			"the pipe changed while being read", n, f.Size)
	}
	cp, err := teeCopy(p, f.PipeSize, n)
	if err != nil {
		return err
	}
	defer cp.Close()

	for off := int64(0); off < n; {
		chunk := g.buf[:min(n-off, int64(len(g.buf)))]
		if err := readFull(cp, chunk); err != nil {
			return fmt.Errorf("read the copy at %d: %w", off, err)
		}
		if err := g.chunk(f.ID, off, chunk); err != nil {
			return err
		}
		off += int64(len(chunk))
	}
	return nil
}

// readFull fills p from the copy of a pipe, which holds at least len(p)
// bytes: a read that finds it empty is an error, not a wait.
func readFull(cp *os.File, p []byte) error {
	for len(p) > 0 {
		n, err := cp.Read(p)
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}
