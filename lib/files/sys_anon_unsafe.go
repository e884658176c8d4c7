package files

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// kcmpEpollTfd is kcmp's KCMP_EPOLL_TFD type: compare a file with a
// target of an epoll's interest list.
const kcmpEpollTfd = 7

// sameEpollTarget reports whether the file at fd tfd of task pid is the
// target of epoll efd added with number tfd, the toff-th such entry in
// the order fdinfo lists them (kcmp KCMP_EPOLL_TFD, CONFIG_KCMP and
// CONFIG_EPOLL). A tfd no longer open is not the target.
func sameEpollTarget(pid, efd, tfd, toff int) (bool, error) {
	// struct kcmp_epoll_slot: efd, tfd, toff.
	slot := [3]uint32{uint32(efd), uint32(tfd), uint32(toff)}
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(pid), uintptr(pid),
		kcmpEpollTfd, uintptr(tfd), uintptr(unsafe.Pointer(&slot)), 0)
	if errno == unix.EBADF {
		return false, nil
	}
	if errno != 0 {
		return false, kcmpError(errno)
	}
	return r == 0, nil
}
