package restore

import (
	"fmt"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// pinSelf keeps the restorer's thread, and so every task it creates
// (they inherit the mask), on one CPU while the tree is built: an
// injected system call costs about a fifth as much when tracer and tracee
// share a CPU as when they run on two. It returns the thread's mask
// before, which the caller puts back. Pinning is only a speed-up: where
// it cannot be done, nothing is pinned.
func pinSelf() (unix.CPUSet, error) {
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return old, fmt.Errorf("sched_getaffinity: %w", err)
	}
	for cpu := range 64 * len(old) {
		if old.IsSet(cpu) {
			var one unix.CPUSet
			one.Set(cpu)
			_ = unix.SchedSetaffinity(0, &one)
			break
		}
	}
	return old, nil
}

// setCPUs gives thread t its saved CPU affinity, or, when the image has
// none, mask (the restorer's own, before pinSelf).
func (t *task) setCPUs(th *image.Thread, mask *unix.CPUSet) error {
	set := *mask
	if len(th.CPUs) > 0 {
		set.Zero()
		for i, w := range th.CPUs {
			for b := range 64 {
				if w&(1<<b) != 0 && i*64+b < 64*len(set) {
					set.Set(i*64 + b)
				}
			}
		}
	}
	err := unix.SchedSetaffinity(t.pid, &set)
	if err == unix.EINVAL {
		return fmt.Errorf("%s: its CPU affinity names no CPU this machine may use: %w",
			t.who, err)
	}
	if err != nil {
		return fmt.Errorf("%s: sched_setaffinity: %w", t.who, err)
	}
	return nil
}

// sched_setattr flags restore gives back (linux/sched.h).
const (
	schedFlagResetOnFork = 0x01
	schedFlagUtilClamp   = 0x20 | 0x40 // SCHED_FLAG_UTIL_CLAMP_MIN | _MAX
	ioprioWhoProcess     = 1
)

// setSched gives thread t its saved scheduling policy, nice, priorities
// and I/O priority, from the restorer (root may set any).
func (t *task) setSched(s *image.Sched) error {
	if s == nil {
		return nil
	}
	a := &unix.SchedAttr{Policy: s.Policy, Flags: s.Flags & schedFlagResetOnFork, Nice: s.Nice,
		Priority: s.Priority, Runtime: s.Runtime, Deadline: s.Deadline, Period: s.Period,
		Util_min: s.UtilMin, Util_max: s.UtilMax}
	if s.UtilMin != 0 || s.UtilMax != 1024 && s.UtilMax != 0 {
		a.Flags |= schedFlagUtilClamp
	}
	if err := unix.SchedSetAttr(t.pid, a, 0); err != nil {
		return fmt.Errorf("%s: sched_setattr policy %d nice %d: %w", t.who, s.Policy, s.Nice, err)
	}
	_, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(t.pid),
		uintptr(s.IOPrio))
	if errno != 0 {
		return fmt.Errorf("%s: ioprio_set %#x: %w", t.who, s.IOPrio, errno)
	}
	return nil
}
