package ptrace

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file was added by the ckpt-scan work for what it needs beyond the
// rest of the package; the lead may fold it in.

// GetRobustList returns the head and length of thread tid's robust futex
// list (get_robust_list(2)), read from outside: the caller needs ptrace
// read access to tid, not to be its tracer. A thread that never set one
// has head 0.
func GetRobustList(tid int) (head, size uint64, err error) {
	_, _, e := unix.Syscall(unix.SYS_GET_ROBUST_LIST, uintptr(tid),
		uintptr(unsafe.Pointer(&head)), uintptr(unsafe.Pointer(&size)))
	if e != 0 {
		return 0, 0, wrap("get_robust_list", tid, e)
	}
	return head, size, nil
}
