package restore

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// takeFd gives the task, at number fd, the open file description that
// process owner has at number ownerFd (pidfd_open and pidfd_getfd, Linux
// 5.6+): both then share one offset and one set of flags, as they did
// after the fork that made them share it. The owner is restored earlier
// and still stopped, so its descriptor is in place.
func (t *task) takeFd(owner, ownerFd, fd int, cloexec uint64) error {
	pidfd, err := t.call(fmt.Sprintf("pidfd_open %d", owner), unix.SYS_PIDFD_OPEN,
		uint64(owner), 0)
	if err != nil {
		return err
	}
	got, err := t.call(fmt.Sprintf("pidfd_getfd pid %d fd %d", owner, ownerFd),
		unix.SYS_PIDFD_GETFD, pidfd, uint64(ownerFd), 0)
	// The pidfd goes first, so its number is free again before dup3.
	if _, cerr := t.call("close pidfd", unix.SYS_CLOSE, pidfd); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got == uint64(fd) {
		// pidfd_getfd always sets close-on-exec.
		flag := uint64(0)
		if cloexec != 0 {
			flag = unix.FD_CLOEXEC
		}
		_, err := t.call("fcntl F_SETFD", unix.SYS_FCNTL, got, unix.F_SETFD, flag)
		return err
	}
	if _, err := t.call("dup3", unix.SYS_DUP3, got, uint64(fd), cloexec); err != nil {
		return err
	}
	_, err = t.call("close", unix.SYS_CLOSE, got)
	return err
}
