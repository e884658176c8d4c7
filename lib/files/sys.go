package files

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// This file holds every system call the package makes, so they can move to
// the package that owns raw system calls once there is one.

// stat is an inode's identity and type, as stat(2) reports them.
type stat struct {
	Dev     uint64
	Ino     uint64
	Mode    uint32
	Nlink   uint64
	Size    int64
	Rdev    uint64
	MtimeNs int64
	UID     uint32
	GID     uint32
}

func fromStatT(st *unix.Stat_t) stat {
	return stat{
		Dev:     st.Dev,
		Ino:     st.Ino,
		Mode:    st.Mode,
		Nlink:   st.Nlink,
		Size:    st.Size,
		Rdev:    st.Rdev,
		MtimeNs: st.Mtim.Nano(),
		UID:     st.Uid,
		GID:     st.Gid,
	}
}

// statFollow stats what path leads to, following links; on a /proc magic
// link (fd/N, map_files/RANGE, exe) that is fstat of the open file.
func statFollow(path string) (stat, error) {
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Stat(path, &st) }); err != nil {
		return stat{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return fromStatT(&st), nil
}

// lstat stats path itself, not following a final symbolic link.
func lstat(path string) (stat, error) {
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Lstat(path, &st) }); err != nil {
		return stat{}, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	return fromStatT(&st), nil
}

// readlink reads a /proc link: what the kernel calls the file behind it.
func readlink(path string) (string, error) {
	return os.Readlink(path)
}

// kcmpFile is kcmp's KCMP_FILE type: compare two open file descriptions.
const kcmpFile = 0

// sameFile reports whether fd1 of task pid1 and fd2 of task pid2 refer to
// one open file description. It needs a kernel built with CONFIG_KCMP
// (ENOSYS without) and the right to ptrace both tasks.
func sameFile(pid1, fd1, pid2, fd2 int) (bool, error) {
	c, err := fileOrder(pid1, fd1, pid2, fd2)
	return c == 0 && err == nil, err
}

// fileOrder compares the open file descriptions of fd1 of task pid1 and
// fd2 of task pid2 as kcmp orders them: 0 when they are one, -1 or 1
// otherwise, the same way every time, so descriptions can be sorted.
func fileOrder(pid1, fd1, pid2, fd2 int) (int, error) {
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(pid1), uintptr(pid2),
		kcmpFile, uintptr(fd1), uintptr(fd2), 0)
	if errno != 0 {
		if errno == unix.ENOSYS {
			return 0, fmt.Errorf("kcmp: %w (the kernel lacks CONFIG_KCMP)", errno)
		}
		return 0, fmt.Errorf("kcmp: %w", errno)
	}
	switch r {
	case 0:
		return 0, nil
	case 1:
		return -1, nil
	case 2:
		return 1, nil
	}
	return 0, fmt.Errorf("kcmp: no order between the two (%d)", r)
}

// shmemDev returns the device of the kernel's internal shmem mount, where
// memfd files, shared anonymous memory and SysV shared memory live: it
// creates a memfd and stats it.
func shmemDev() (uint64, error) {
	fd, err := unix.MemfdCreate("ckpt-files-probe", unix.MFD_CLOEXEC)
	if err != nil {
		return 0, fmt.Errorf("memfd_create: %w", err)
	}
	defer unix.Close(fd)

	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("fstat memfd: %w", err)
	}
	return st.Dev, nil
}

// notExist reports whether err says that a path leads nowhere.
func notExist(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR)
}

func ignoringEINTR(fn func() error) error {
	for {
		err := fn()
		if err != unix.EINTR {
			return err
		}
	}
}

// devString spells a device number as major:minor.
func devString(dev uint64) string {
	return fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev))
}

// openSource opens the file behind a use through its /proc link, for
// reading its contents: a new open file description, so the task's
// offset is left alone. O_NOATIME keeps the access time as it was where
// the caller may set it.
func openSource(u Use) (*os.File, error) {
	path := procPath(u)
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		f, err = os.OpenFile(path, os.O_RDONLY, 0)
	}
	return f, err
}

// dataExtents calls fn with the start and end of every data extent of f
// below size, in order, as SEEK_DATA and SEEK_HOLE find them. A
// filesystem without holes reports the whole file as one extent.
func dataExtents(f *os.File, size int64, fn func(off, end int64) error) error {
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // no data after off
		}
		if err != nil {
			return fmt.Errorf("seek data from %d: %w", off, err)
		}
		if data >= size {
			return nil
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("seek hole from %d: %w", data, err)
		}
		hole = min(hole, size)
		if err := fn(data, hole); err != nil {
			return err
		}
		off = hole
	}
	return nil
}

// linkFollow makes a new name to for the file that the /proc link from
// leads to (linkat with AT_SYMLINK_FOLLOW). It fails with ENOENT for a
// file with no name left.
func linkFollow(from, to string) error {
	err := ignoringEINTR(func() error {
		return unix.Linkat(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.AT_SYMLINK_FOLLOW)
	})
	if err != nil {
		return &os.LinkError{Op: "link", Old: from, New: to, Err: err}
	}
	return nil
}
