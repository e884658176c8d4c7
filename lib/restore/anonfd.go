package restore

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// Eventfds, signalfds, timerfds and epolls are made anew in the task by
// their system calls and given their saved state; restoreFd then moves
// each to its number. Epolls come after every other fd of the task, so
// their targets are in place when they are added.

// isAnon reports whether f is a File that openAnon makes.
func isAnon(f *image.File) bool {
	switch f.Kind {
	case image.FileEventfd, image.FileSignalfd, image.FileTimerfd, image.FileEpoll:
		return true
	}
	return false
}

// tfdIocSetTicks is TFD_IOC_SET_TICKS, _IOW('T', 0, u64): set the
// expirations a timerfd reports (CONFIG_CHECKPOINT_RESTORE).
const tfdIocSetTicks = 0x40085400

// checkAnon checks that an anon File carries the state of its kind and
// that this kernel can give it back.
func checkAnon(f *image.File) error {
	missing := f.Kind == image.FileEventfd && f.Eventfd == nil ||
		f.Kind == image.FileSignalfd && f.Signalfd == nil ||
		f.Kind == image.FileTimerfd && f.Timerfd == nil ||
		f.Kind == image.FileEpoll && f.Epoll == nil
	if missing {
		return fmt.Errorf("file %d (%s): the image has no %s state", f.ID, f.Path, f.Kind)
	}
	if f.Timerfd != nil && f.Timerfd.Ticks > 0 {
		if err := probeSetTicks(); err != nil {
			return fmt.Errorf("file %d (%s): %d expirations not read yet cannot be given back: %w",
				f.ID, f.Path, f.Timerfd.Ticks, err)
		}
	}
	return nil
}

// probeSetTicks checks, on a timerfd of its own, that the kernel has
// TFD_IOC_SET_TICKS.
func probeSetTicks() error {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("timerfd_create: %w", err)
	}
	defer unix.Close(fd)
	err = setTicks(fd, 1)
	if errors.Is(err, unix.ENOTTY) {
		return fmt.Errorf("the kernel lacks TFD_IOC_SET_TICKS (CONFIG_CHECKPOINT_RESTORE): %w", err)
	}
	if err != nil {
		return fmt.Errorf("ioctl TFD_IOC_SET_TICKS: %w", err)
	}
	return nil
}

// anonFlags are the open flags the creating calls take: EFD_NONBLOCK,
// SFD_NONBLOCK and TFD_NONBLOCK are O_NONBLOCK, the CLOEXEC flags
// O_CLOEXEC.
const anonFlags = unix.O_NONBLOCK | unix.O_CLOEXEC

// openAnon makes f in the task with the O_NONBLOCK and O_CLOEXEC of
// flags, gives it its state and returns its fd. An epoll gets its
// targets later, from addEpollTargets.
func (t *task) openAnon(f *image.File, flags int) (uint64, error) {
	fl := uint64(flags & anonFlags)
	switch f.Kind {
	case image.FileEventfd:
		return t.openEventfd(f.Eventfd, fl)
	case image.FileSignalfd:
		p, err := t.words(f.Signalfd.Mask)
		if err != nil {
			return 0, err
		}
		return t.call("signalfd4", unix.SYS_SIGNALFD4, ^uint64(0), p, 8, fl)
	case image.FileTimerfd:
		return t.openTimerfd(f.Timerfd, fl)
	case image.FileEpoll:
		fd, err := t.call("epoll_create1", unix.SYS_EPOLL_CREATE1, fl&unix.O_CLOEXEC)
		if err != nil || fl&unix.O_NONBLOCK == 0 {
			return fd, err
		}
		_, err = t.call("fcntl F_SETFL O_NONBLOCK", unix.SYS_FCNTL, fd, unix.F_SETFL,
			unix.O_NONBLOCK)
		return fd, err
	}
	return 0, fmt.Errorf("file %d: kind %q is not an anon inode", f.ID, f.Kind)
}

// openEventfd makes an eventfd and writes its counter.
func (t *task) openEventfd(e *image.Eventfd, flags uint64) (uint64, error) {
	if e.Semaphore {
		flags |= unix.EFD_SEMAPHORE
	}
	fd, err := t.call("eventfd2", unix.SYS_EVENTFD2, 0, flags)
	if err != nil || e.Count == 0 {
		return fd, err
	}
	p, err := t.words(e.Count)
	if err != nil {
		return 0, err
	}
	_, err = t.call(fmt.Sprintf("write eventfd counter %d", e.Count), unix.SYS_WRITE, fd, p, 8)
	return fd, err
}

// openTimerfd makes a timerfd and arms it: an absolute timer on the real
// time clock for its saved date, any other for the time it had left (an
// absolute one still absolute, on its clock read by the restorer). A
// periodic timer that had expired and waited to be read (no time left)
// is armed one interval away. The expirations not read yet come last:
// timerfd_settime clears them.
func (t *task) openTimerfd(tf *image.Timerfd, flags uint64) (uint64, error) {
	fd, err := t.call(fmt.Sprintf("timerfd_create clock %d", tf.Clock),
		unix.SYS_TIMERFD_CREATE, uint64(tf.Clock), flags)
	if err != nil {
		return 0, err
	}
	setFlags, value := uint64(0), tf.Value
	switch {
	case tf.Expires != 0:
		setFlags = uint64(tf.Flags & (image.TimerAbstime | image.TimerCancelOnSet))
		value = tf.Expires
	case value > 0 && tf.Flags&image.TimerAbstime != 0:
		// Absolute on a clock that counts from boot: as far from now on
		// it as it had left, and still absolute.
		now, err := clockNow(tf.Clock)
		if err != nil {
			return 0, err
		}
		setFlags, value = image.TimerAbstime, now+value
	case value == 0 && tf.Interval > 0 && tf.Ticks > 0:
		value = tf.Interval
	case value == 0 && tf.Interval > 0:
		value = 1 // it was expiring right then
	}
	if value > 0 {
		spec, err := t.words(append(pair(tf.Interval, 1e9), pair(value, 1e9)...)...)
		if err != nil {
			return 0, err
		}
		if _, err := t.call("timerfd_settime", unix.SYS_TIMERFD_SETTIME, fd, setFlags,
			spec, 0); err != nil {
			return 0, err
		}
	}
	if tf.Ticks == 0 {
		return fd, nil
	}
	p, err := t.words(tf.Ticks)
	if err != nil {
		return 0, err
	}
	_, err = t.call(fmt.Sprintf("ioctl TFD_IOC_SET_TICKS %d", tf.Ticks), unix.SYS_IOCTL, fd,
		tfdIocSetTicks, p)
	return fd, err
}

// fdOrder sorts fds by number, the fds of epoll Files after all others.
func fdOrder(files map[int]*image.File) func(a, b image.Fd) int {
	isEpoll := func(fd image.Fd) bool {
		f := files[fd.FileID]
		return f != nil && f.Kind == image.FileEpoll
	}
	return func(a, b image.Fd) int {
		ea, eb := isEpoll(a), isEpoll(b)
		if ea != eb {
			if ea {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.Fd, b.Fd)
	}
}

// addEpollTargets adds the targets of every epoll the task made, once all
// its fds, epolls included, are in place. An fd that shares an earlier
// fd's epoll, of this task or another, has them already. Each target
// must be, in the fds restored, the File the epoll watched at that
// number.
func (t *task) addEpollTargets(fds []image.Fd, files map[int]*image.File) error {
	fileAt := map[int]int{}
	for _, fd := range fds {
		fileAt[fd.Fd] = fd.FileID
	}
	for _, fd := range fds {
		f := files[fd.FileID]
		if f == nil || f.Kind != image.FileEpoll || fd.Shared {
			continue
		}
		if err := t.addTargets(fd.Fd, f, fileAt); err != nil {
			return fmt.Errorf("pid %d fd %d (%s): %w", t.pid, fd.Fd, fd.Link, err)
		}
	}
	return nil
}

// addTargets adds the targets of epoll f, open at efd.
func (t *task) addTargets(efd int, f *image.File, fileAt map[int]int) error {
	if f.Epoll.PID != t.vpid {
		return fmt.Errorf("the epoll's targets are fds of pid %d: an epoll made in one "+
			"process with the fds of another is %w", f.Epoll.PID, errNotSupported)
	}
	for _, tg := range f.Epoll.Targets {
		if got := fileAt[tg.Fd]; got != tg.FileID {
			return fmt.Errorf("epoll target fd %d: the image has file %d there, "+
				"the epoll watched file %d", tg.Fd, got, tg.FileID)
		}
		// struct epoll_event, packed: events (u32), data (u64).
		ev := binary.LittleEndian.AppendUint32(nil, tg.Events)
		ev = binary.LittleEndian.AppendUint64(ev, tg.Data)
		p, err := t.put(ev)
		if err != nil {
			return err
		}
		_, err = t.call(fmt.Sprintf("epoll_ctl add fd %d", tg.Fd), unix.SYS_EPOLL_CTL,
			uint64(efd), unix.EPOLL_CTL_ADD, uint64(tg.Fd), p)
		if err != nil {
			return err
		}
	}
	return nil
}

// errNotSupported ends the message of a case restore cannot handle yet.
var errNotSupported = errors.New("not supported yet")

// clockNow reads clock in the restorer, in nanoseconds: the task being
// restored reads the same clocks.
func clockNow(clock int) (int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(int32(clock), &ts); err != nil {
		return 0, fmt.Errorf("clock_gettime %d: %w", clock, err)
	}
	return ts.Nano(), nil
}
