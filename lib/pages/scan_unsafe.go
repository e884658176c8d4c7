package pages

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctlScan runs PAGEMAP_SCAN on the pagemap descriptor fd with regs as
// the output array, and returns how many regions the kernel filled.
func ioctlScan(fd int, arg *scanArg, regs []pageRegion) (int, error) {
	arg.size = uint64(unsafe.Sizeof(*arg))
	arg.vec = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(regs))))
	arg.vecLen = uint64(len(regs))
	for {
		n, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), pagemapScan,
			uintptr(unsafe.Pointer(arg)))
		runtime.KeepAlive(regs)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
}
