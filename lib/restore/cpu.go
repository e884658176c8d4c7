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
