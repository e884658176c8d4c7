package freeze

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ckpt/ckpt/lib/ptrace"
	"golang.org/x/sys/unix"
)

// StopTimeout is how long a thread may take to stop once interrupted. A
// thread stops within a millisecond unless it sleeps where no signal can
// wake it: a parent in vfork waiting for a child that does not exec (one
// stopped before it did, say), a task in uninterruptible I/O on a dead
// NFS server. Freezing such a thread would wait forever, and the tree
// with it.
var StopTimeout = 5 * time.Second

// ErrNoStop is a thread that did not stop within StopTimeout.
var ErrNoStop = errors.New("did not stop")

// waitStop waits, up to timeout, for the first event of an interrupted
// thread, then for its interrupt stop (ptrace.WaitStop).
func waitStop(tid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for pause := 20 * time.Microsecond; ; pause = min(2*pause, 5*time.Millisecond) {
		// Look without reaping: WNOWAIT leaves the event for WaitStop.
		var si unix.Siginfo
		err := unix.Waitid(unix.P_PID, tid, &si,
			unix.WSTOPPED|unix.WEXITED|unix.WNOHANG|unix.WNOWAIT|unix.WALL, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || si.Signo != 0 {
			// An event (the kernel zeroes si_signo when there is none),
			// or an error that WaitStop will report.
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("thread %d %w in %v after PTRACE_INTERRUPT (%s): it sleeps "+
				"where no signal reaches it, as a parent in vfork does until its child "+
				"execs", tid, ErrNoStop, timeout, threadState(tid))
		}
		time.Sleep(pause)
	}
	_, err := ptrace.WaitStop(tid)
	return err
}

// threadState returns the State line of /proc/TID/status, for messages.
func threadState(tid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return "state unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "State:"); ok {
			return "state " + strings.TrimSpace(v)
		}
	}
	return "state unknown"
}
