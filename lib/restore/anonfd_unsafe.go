package restore

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// setTicks sets the expirations timerfd fd of the restorer reports
// (TFD_IOC_SET_TICKS).
func setTicks(fd int, ticks uint64) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), tfdIocSetTicks,
		uintptr(unsafe.Pointer(&ticks)))
	if errno != 0 {
		return errno
	}
	return nil
}
