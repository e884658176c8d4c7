package ghost

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/ckpt/ckpt/lib/image"
)

// HoldsPipe reports whether f is a kind a Pipes handles: an anonymous
// pipe (image.FilePipe) or a named one (image.FileFifo).
func HoldsPipe(f *image.File) bool {
	return f.Kind == image.FilePipe || f.Kind == image.FileFifo
}

// Pipes is the restorer's side of pipes: it makes each pipe again, gives
// it its buffer size and its bytes in flight, and holds both its ends
// open while the restored tasks open theirs through Path(id):
//
//	pipes := ghost.NewPipes()
//	pipes.Add(file)      // every pipe or fifo File record: the pipe, empty
//	pipes.Write(data)    // every ghost-data record of one, in order
//	path, _ := pipes.Path(file.ID)   // "/proc/<restorer>/fd/<n>"
//	... every fd of every task opens path with its own flags ...
//	pipes.Close()        // on success; Abort() on failure
//
// Opening a pipe through /proc gives a new open file description of the
// same pipe, with the flags the opener asks for (O_RDONLY, O_WRONLY or
// O_RDWR, O_NONBLOCK, O_CLOEXEC). It never waits: the restorer holds
// both ends, so a named pipe has a reader and a writer. Once the tasks
// have theirs, Close lets the restorer's ends go, and an end no task
// holds is closed, as it was at the dump: a reader sees end of file after
// the bytes in flight, a writer gets EPIPE.
//
// An anonymous pipe is made with pipe2 and owned by its dumped owner. A
// named pipe is opened at its path, which must still be a named pipe (it
// may be another inode: a FIFO keeps nothing on disk), with no bytes in
// it; a process that holds it open too shares the restored pipe, as
// processes that open a named pipe do. Its fd links then read its path.
//
// A Pipes is not safe for concurrent use.
type Pipes struct {
	pipes map[int]*heldPipe
	order []*heldPipe
	done  bool // Close or Abort ran
}

// heldPipe is one pipe being restored.
type heldPipe struct {
	f image.File
	// ends are the restorer's descriptors of the pipe: read and write
	// ends of an anonymous pipe, one O_RDWR descriptor of a named one.
	// Bytes are written through the last one.
	ends    []int
	written int64
}

func (p *heldPipe) errorf(format string, args ...any) error {
	return &Error{ID: p.f.ID, Kind: p.f.Kind, Path: p.f.Path, Err: fmt.Errorf(format, args...)}
}

// NewPipes returns an empty Pipes.
func NewPipes() *Pipes {
	return &Pipes{pipes: map[int]*heldPipe{}}
}

// Add takes a pipe or fifo File record and makes its pipe, of its buffer
// size and empty, for Write to fill.
func (ps *Pipes) Add(f *image.File) error {
	p := &heldPipe{f: *f}
	switch {
	case ps.done:
		return p.errorf("added after the restore ended")
	case !HoldsPipe(f):
		return p.errorf("kind %q is not a pipe", f.Kind)
	case ps.pipes[f.ID] != nil:
		return p.errorf("a second file record with this ID")
	case f.PipeSize <= 0 || f.Size < 0 || f.Size > f.PipeSize:
		return p.errorf("%d bytes in flight in a buffer of %d bytes", f.Size, f.PipeSize)
	}
	var err error
	if f.Kind == image.FilePipe {
		p.ends, err = makePipe(f)
	} else {
		p.ends, err = openFifo(f)
	}
	if err != nil {
		return p.errorf("%w", err)
	}
	ps.pipes[f.ID] = p
	ps.order = append(ps.order, p)
	if err := setPipeSize(p.ends[0], f.PipeSize); err != nil {
		return p.errorf("%w", err)
	}
	return nil
}

// Has reports whether id is a pipe of ps: the ghost-data records of such
// a File go to Write.
func (ps *Pipes) Has(id int) bool {
	return ps.pipes[id] != nil
}

// Write puts the next run of a pipe's bytes in flight into it. The runs
// come in order, each where the last one ended.
func (ps *Pipes) Write(d *image.GhostData) error {
	p := ps.pipes[d.FileID]
	if p == nil {
		return fmt.Errorf("ghost-data for file %d, which is no pipe before it", d.FileID)
	}
	if ps.done {
		return p.errorf("ghost-data after the restore ended")
	}
	end := d.Offset + int64(len(d.Data))
	if d.Offset != p.written || end > p.f.Size || len(d.Data) > image.MaxChunk {
		return p.errorf("ghost-data of %d bytes at %d, after %d of its %d bytes in flight",
			len(d.Data), d.Offset, p.written, p.f.Size)
	}
	if err := writeAll(p.ends[len(p.ends)-1], d.Data); err != nil {
		return p.errorf("write %d bytes at %d: %w", len(d.Data), d.Offset, err)
	}
	p.written = end
	return nil
}

// Path returns the path through which a task opens the pipe id:
// /proc/PID/fd/N of the restorer. It fails if the pipe lacks some of its
// bytes in flight.
func (ps *Pipes) Path(id int) (string, error) {
	p := ps.pipes[id]
	switch {
	case p == nil:
		return "", fmt.Errorf("file %d is no pipe held by the restorer", id)
	case p.ends == nil:
		return "", p.errorf("closed already")
	case p.written != p.f.Size:
		return "", p.errorf("the image holds %d of its %d bytes in flight", p.written, p.f.Size)
	}
	return "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(p.ends[0]), nil
}

// Close ends a successful restore, once every task has opened its pipes:
// it closes the restorer's ends. Each pipe lives on in the tasks.
func (ps *Pipes) Close() error {
	if ps.done {
		return nil
	}
	ps.done = true
	var errs []error
	for _, p := range ps.order {
		for _, fd := range p.ends {
			if err := closeFd(fd); err != nil {
				errs = append(errs, p.errorf("close: %w", err))
			}
		}
		p.ends = nil
	}
	return errors.Join(errs...)
}

// Abort ends a failed restore: it closes every pipe, which the kernel
// then frees with its bytes, since no task holds it any more.
func (ps *Pipes) Abort() {
	_ = ps.Close()
}
