package main

import (
	"encoding/binary"
	"fmt"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/procfs"
	"github.com/ckpt/ckpt/lib/ptrace"
	"golang.org/x/sys/unix"
)

// collectPending reads the signals pending for the process and for each
// of its threads, without dequeuing them.
func collectPending(t *image.Task) error {
	var err error
	if t.SharedPending, err = ptrace.PeekSigInfo(t.PID, true); err != nil {
		return fmt.Errorf("pid %d: pending signals: %w", t.PID, err)
	}
	for i := range t.Threads {
		th := &t.Threads[i]
		if th.Pending, err = ptrace.PeekSigInfo(th.TID, false); err != nil {
			return fmt.Errorf("pid %d thread %d: pending signals: %w", t.PID, th.TID, err)
		}
	}
	return nil
}

// timespecSize is struct itimerval and struct itimerspec: two pairs of
// 64-bit words, interval first.
const timespecSize = 32

// injectTimers reads, in the task's leader, its interval timers
// (getitimer) and the times of its POSIX timers (timer_gettime), whose
// list /proc/PID/timers gives. Both only read.
func injectTimers(c *counted, t *image.Task) error {
	timers, err := procfs.ReadTimers(t.PID)
	if err != nil {
		return fmt.Errorf("list POSIX timers (needs CONFIG_CHECKPOINT_RESTORE): %w", err)
	}
	which := []int{unix.ITIMER_REAL, unix.ITIMER_VIRTUAL, unix.ITIMER_PROF}
	buf, err := batch(c.p, len(which)+len(timers), timespecSize, func(i int, at uint64) error {
		if i < len(which) {
			if _, err := c.Syscall(unix.SYS_GETITIMER, uint64(which[i]), at); err != nil {
				return fmt.Errorf("getitimer %d: %w", which[i], err)
			}
			return nil
		}
		id := timers[i-len(which)].ID
		if _, err := c.Syscall(unix.SYS_TIMER_GETTIME, uint64(id), at); err != nil {
			return fmt.Errorf("timer_gettime of timer %d: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return err
	}

	t.ITimers = nil
	for i, w := range which {
		interval, value := pairs(buf[i*timespecSize:], 1000000)
		if value != 0 {
			t.ITimers = append(t.ITimers, image.ITimer{Which: w, Value: value, Interval: interval})
		}
	}
	for i := range timers {
		timers[i].Interval, timers[i].Value = pairs(buf[(3+i)*timespecSize:], 1e9)
	}
	t.PosixTimers = timers
	return nil
}

// pairs decodes an interval and a value, each seconds and a fraction of
// which perSecond make one, into that fraction.
func pairs(b []byte, perSecond int64) (interval, value int64) {
	w := func(i int) int64 { return int64(binary.LittleEndian.Uint64(b[8*i:])) }
	return w(0)*perSecond + w(1), w(2)*perSecond + w(3)
}
