package files

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// The system calls of pipe.go and pipe_data.go.

// openPipe opens a reader of its own on the pipe that the /proc link path
// leads to: a new open file description of the same pipe, which never
// waits for a writer (O_NONBLOCK) and consumes nothing by being open.
// While it is open the pipe has one reader more: a process outside the
// tree waiting to open a named pipe with no reader for writing would be
// let through.
func openPipe(path string) (*os.File, error) {
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// pipeSize returns the buffer size of the pipe p (F_GETPIPE_SZ).
func pipeSize(p *os.File) (int64, error) {
	n, err := unix.FcntlInt(p.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return 0, fmt.Errorf("fcntl F_GETPIPE_SZ: %w", err)
	}
	return int64(n), nil
}

// pipeBytes returns the bytes in flight in the pipe p (FIONREAD, which is
// TIOCINQ).
func pipeBytes(p *os.File) (int64, error) {
	n, err := unix.IoctlGetInt(int(p.Fd()), unix.TIOCINQ)
	if err != nil {
		return 0, fmt.Errorf("ioctl FIONREAD: %w", err)
	}
	return int64(n), nil
}

// teeCopy duplicates the bytes in flight of the pipe src, which holds n
// bytes, into a new pipe of size bytes (F_SETPIPE_SZ), with tee(2), which
// consumes nothing, and returns the new pipe's read end. tee copies
// buffers, not bytes: a pipe of the size of src has room for every buffer
// of src, so one call copies them all.
func teeCopy(src *os.File, size, n int64) (*os.File, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	r := os.NewFile(uintptr(p[0]), "pipe copy")
	defer unix.Close(p[1]) // the copy stays readable once written

	if _, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, int(size)); err != nil {
		r.Close()
		return nil, fmt.Errorf("make a pipe of %d bytes to copy it into: "+
			"fcntl F_SETPIPE_SZ: %w", size, err)
	}
	got, err := unix.Tee(int(src.Fd()), p[1], int(n), unix.SPLICE_F_NONBLOCK)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("tee %d bytes: %w", n, err)
	}
	if got != n {
		r.Close()
		return nil, fmt.Errorf("tee copied %d of the %d bytes in flight: "+
			"the pipe changed while being read", got, n)
	}
	return r, nil
}
