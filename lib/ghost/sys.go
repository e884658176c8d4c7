package ghost

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// This file holds every system call the package makes.

// createData creates the file a ghost's contents are written into: an
// unnamed file in dir (O_TMPFILE), or where the filesystem cannot make
// one, a hidden named file, whose path it returns too.
func createData(dir string, id int) (*os.File, string, error) {
	fd, err := ignoringEINTR(func() (int, error) {
		return unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	})
	if err == nil {
		return os.NewFile(uintptr(fd), filepath.Join(dir, "(unnamed ghost)")), "", nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) &&
		!errors.Is(err, unix.EINVAL) {
		return nil, "", fmt.Errorf("open O_TMPFILE: %w", err)
	}
	path := filepath.Join(dir, fmt.Sprintf(".ckpt-ghost-%d-%s", id, randomHex()))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, "", err
	}
	return f, path, nil
}

// finish gives a filled ghost its owner, mode and mtime. The owner comes
// first: chown clears the set-id bits.
func finish(f *os.File, img *image.File) error {
	fd := int(f.Fd())
	if err := unix.Fchown(fd, int(img.UID), int(img.GID)); err != nil {
		return fmt.Errorf("chown %d:%d: %w", img.UID, img.GID, err)
	}
	if err := unix.Fchmod(fd, img.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod %o: %w", img.Mode&0o7777, err)
	}
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(img.MtimeNs)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, procSelfFd(f), ts, 0); err != nil {
		return fmt.Errorf("set mtime: %w", err)
	}
	return nil
}

// procSelfFd is the /proc link of one of the restorer's own open files.
func procSelfFd(f *os.File) string {
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
}

// openDir opens a directory to make names in it.
func openDir(dir string) (*os.File, error) {
	fd, err := ignoringEINTR(func() (int, error) {
		return unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Clean(dir)), nil
}

// linkIn makes name in d a hard link to what from leads to, following a
// /proc magic link (linkat AT_SYMLINK_FOLLOW).
func linkIn(d *os.File, from, name string) error {
	err := unix.Linkat(unix.AT_FDCWD, from, int(d.Fd()), name, unix.AT_SYMLINK_FOLLOW)
	if err != nil {
		return &os.LinkError{Op: "link", Old: from, New: filepath.Join(d.Name(), name), Err: err}
	}
	return nil
}

// openIn opens name in d for reading, not following a symbolic link.
func openIn(d *os.File, name string) (*os.File, error) {
	fd, err := ignoringEINTR(func() (int, error) {
		return unix.Openat(int(d.Fd()), name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	})
	path := filepath.Join(d.Name(), name)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// unlinkIn removes name from d.
func unlinkIn(d *os.File, name string) error {
	if err := unix.Unlinkat(int(d.Fd()), name, 0); err != nil {
		return &os.PathError{Op: "unlink", Path: filepath.Join(d.Name(), name), Err: err}
	}
	return nil
}

// exchangeIn swaps two names in d (renameat2 RENAME_EXCHANGE).
func exchangeIn(d *os.File, a, b string) error {
	err := unix.Renameat2(int(d.Fd()), a, int(d.Fd()), b, unix.RENAME_EXCHANGE)
	if err != nil {
		return &os.LinkError{Op: "exchange", Old: filepath.Join(d.Name(), a),
			New: filepath.Join(d.Name(), b), Err: err}
	}
	return nil
}

// renameIn renames from over to in d.
func renameIn(d *os.File, from, to string) error {
	if err := unix.Renameat(int(d.Fd()), from, int(d.Fd()), to); err != nil {
		return &os.LinkError{Op: "rename", Old: filepath.Join(d.Name(), from),
			New: filepath.Join(d.Name(), to), Err: err}
	}
	return nil
}

func ignoringEINTR(fn func() (int, error)) (int, error) {
	for {
		fd, err := fn()
		if err != unix.EINTR {
			return fd, err
		}
	}
}
