package files

import (
	"fmt"

	"golang.org/x/sys/unix"
)

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
