package ghost

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// createShmem makes a shared anonymous memory object of size bytes, as
// mmap(MAP_SHARED|MAP_ANONYMOUS) makes one, and returns an open file of
// it (read-write, close-on-exec).
func createShmem(size int64) (*os.File, error) {
	page := int64(os.Getpagesize())
	length := uintptr((size + page - 1) / page * page)

	// 1. Map it: the kernel makes the object, a shmem file named
	// "/dev/zero (deleted)", of the mapping's size. No access is needed.
	addr, _, errno := unix.Syscall6(unix.SYS_MMAP, 0, length, unix.PROT_NONE,
		unix.MAP_SHARED|unix.MAP_ANONYMOUS, ^uintptr(0), 0)
	if errno != 0 {
		return nil, fmt.Errorf("mmap %d bytes MAP_SHARED|MAP_ANONYMOUS: %w", length, errno)
	}

	// 2. Open the object behind the mapping: a file of it of our own.
	path := fmt.Sprintf("/proc/self/map_files/%x-%x", addr, addr+length)
	fd, err := ignoringEINTR(func() (int, error) {
		return unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	})

	// 3. Unmap it; the open file, if any, keeps the object.
	if _, _, errno := unix.Syscall(unix.SYS_MUNMAP, addr, length, 0); errno != 0 && err == nil {
		unix.Close(fd)
		return nil, fmt.Errorf("munmap %#x: %w", addr, errno)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), "/dev/zero (deleted)")

	// 4. A size that is not whole pages: cut the object to it.
	if int64(length) != size {
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}
