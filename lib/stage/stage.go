// Package stage holds what every pipeline stage shares: opening its input
// and output streams, enlarging pipes, and the protocol by which stages
// tell ckpt-scan, which holds the tree frozen, that they are done with it
// (docs/FORMAT.md, "Holding the tree").
package stage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stream"
	"golang.org/x/sys/unix"
)

// PipeSize is the capacity stages ask for on the pipes they read and write.
const PipeSize = 1 << 20

// Stage is a running stream filter: the input it reads, the output it
// writes, and the header it read (with itself appended to the stages).
type Stage struct {
	Name   string
	In     *stream.Reader
	Out    *stream.Writer
	Header *image.Header
	out    io.Writer
}

// Open reads the header from in, appends name to its stages and writes it
// to out. SIGPIPE is ignored from then on, so a reader that goes away is an
// EPIPE error, not a silent death.
func Open(name string, in io.Reader, out io.Writer, edit ...func(*image.Header)) (*Stage, error) {
	signal.Ignore(unix.SIGPIPE)
	EnlargePipe(in)
	EnlargePipe(out)
	r := stream.NewReader(in)
	h, err := r.Header()
	if err != nil {
		return nil, err
	}
	h.Stages = append(h.Stages, name)
	for _, e := range edit {
		e(h)
	}
	w := stream.NewWriter(out)
	if err := w.WriteHeader(h); err != nil {
		return nil, fmt.Errorf("write header: %w", err)
	}
	return &Stage{Name: name, In: r, Out: w, Header: h, out: out}, nil
}

// Finish writes the end record, then waits until the reader of the output,
// if it is a pipe, has closed it: downstream stages hold the tree through
// us until then (see WaitReaderGone).
func (s *Stage) Finish() error {
	if err := s.Out.End(); err != nil {
		return fmt.Errorf("write end record: %w", err)
	}
	return WaitReaderGone(s.out)
}

// EnlargePipe asks for a PipeSize buffer if f is a pipe; anything else, or
// a refusal, is left as it is.
func EnlargePipe(f any) {
	if file, ok := f.(*os.File); ok && isPipe(file) {
		_, _ = unix.FcntlInt(file.Fd(), unix.F_SETPIPE_SZ, PipeSize)
	}
}

func isPipe(f *os.File) bool {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFIFO
}

// WaitReaderGone blocks until the read end of w is closed, when w is a
// pipe. This is how a stage learns that every stage downstream is done
// with the live tree: each stage closes its input only once it no longer
// reads the tree and its own reader is gone. For anything but a pipe it
// returns at once.
func WaitReaderGone(w any) error {
	f, ok := w.(*os.File)
	if !ok || !isPipe(f) {
		return nil
	}
	fds := []unix.PollFd{{Fd: int32(f.Fd()), Events: 0}}
	for {
		_, err := unix.Poll(fds, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for the reader of the output: %w", err)
		}
		if fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			return nil
		}
	}
}

// Pass copies every remaining record to the output, untouched.
func (s *Stage) Pass() error {
	for {
		rec, err := s.In.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Out.WriteRecord(rec); err != nil {
			return fmt.Errorf("write %s record: %w", rec.Kind, err)
		}
	}
}
