package ghost

import (
	"errors"
	"fmt"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// The system calls of pipe.go. Pipe ends are raw descriptors: an
// *os.File would turn O_NONBLOCK off (Fd) or wait for room (Write).

// makePipe makes an anonymous pipe owned as f was and returns its read
// and write ends, close-on-exec; the write end does not block.
func makePipe(f *image.File) ([]int, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	ends := p[:]
	if err := unix.SetNonblock(p[1], true); err != nil {
		closeAll(ends)
		return nil, fmt.Errorf("fcntl O_NONBLOCK: %w", err)
	}
	if err := unix.Fchown(p[0], int(f.UID), int(f.GID)); err != nil {
		closeAll(ends)
		return nil, fmt.Errorf("chown %d:%d: %w", f.UID, f.GID, err)
	}
	return ends, nil
}

// openFifo opens the named pipe at f.Path read-write, which never waits
// for a partner, without blocking. The path must lead to a named pipe
// that holds no bytes.
func openFifo(f *image.File) ([]int, error) {
	var st unix.Stat_t
	if err := unix.Lstat(f.Path, &st); err != nil {
		return nil, fmt.Errorf("lstat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return nil, fmt.Errorf("it is no longer a named pipe (mode %o)", st.Mode)
	}
	fd, err := openRetry(f.Path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	ends := []int{fd}
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil {
		closeAll(ends)
		return nil, fmt.Errorf("fstat: %w", err)
	}
	if now.Dev != st.Dev || now.Ino != st.Ino {
		closeAll(ends)
		return nil, errors.New("it was replaced while being opened")
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCINQ) // FIONREAD
	if err != nil {
		closeAll(ends)
		return nil, fmt.Errorf("ioctl FIONREAD: %w", err)
	}
	if n != 0 {
		closeAll(ends)
		return nil, fmt.Errorf("it holds %d bytes already: another process uses it", n)
	}
	return ends, nil
}

// setPipeSize gives the pipe of fd a buffer of size bytes (F_SETPIPE_SZ).
// Above /proc/sys/fs/pipe-max-size it needs CAP_SYS_RESOURCE.
func setPipeSize(fd int, size int64) error {
	got, err := unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, int(size))
	if err != nil {
		return fmt.Errorf("set its buffer size to %d bytes: fcntl F_SETPIPE_SZ: %w", size, err)
	}
	if int64(got) != size {
		return fmt.Errorf("set its buffer size to %d bytes: the kernel made it %d", size, got)
	}
	return nil
}

// writeAll writes b to the non-blocking fd. A full pipe is an error.
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return errors.New("the pipe is full")
		case err != nil:
			return err
		}
		b = b[n:]
	}
	return nil
}

func openRetry(path string, flags int) (int, error) {
	return ignoringEINTR(func() (int, error) { return unix.Open(path, flags, 0) })
}

func closeFd(fd int) error {
	return unix.Close(fd)
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
