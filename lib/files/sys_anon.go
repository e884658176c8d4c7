package files

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// sameFileIn reports whether fd1 of task pid1 and fd2 of task pid2 refer
// to one open file description (kcmp KCMP_FILE, CONFIG_KCMP).
func sameFileIn(pid1, fd1, pid2, fd2 int) (bool, error) {
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(pid1), uintptr(pid2),
		kcmpFile, uintptr(fd1), uintptr(fd2), 0)
	if errno != 0 {
		return false, kcmpError(errno)
	}
	return r == 0, nil
}

func kcmpError(errno unix.Errno) error {
	if errno == unix.ENOSYS {
		return fmt.Errorf("kcmp: %w (the kernel lacks CONFIG_KCMP)", errno)
	}
	return fmt.Errorf("kcmp: %w", errno)
}

// clockNow reads a clock, in nanoseconds.
func clockNow(clock int32) (int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(clock, &ts); err != nil {
		return 0, fmt.Errorf("clock_gettime %d: %w", clock, err)
	}
	return ts.Nano(), nil
}
