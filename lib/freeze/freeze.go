// Package freeze holds a process tree still while ckpt dumps it, and lets
// it go: it seizes and interrupts every thread (PTRACE_SEIZE and
// PTRACE_INTERRUPT, never SIGSTOP, which a parent would see), releases the
// tree (PTRACE_DETACH) or kills it while still frozen, and serves the
// control socket through which the final stage of a pipeline reports a
// complete archive (docs/FORMAT.md, "Holding the tree").
//
// Processes are named by PID and start time, so a PID reused by a new
// process is never taken for the one the user meant.
//
// If the holder dies, the kernel detaches every thread it traced, and
// threads at an interrupt stop run on unharmed: a dump never harms its
// target by dying.
package freeze

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ckpt/ckpt/lib/procfs"
	"github.com/ckpt/ckpt/lib/ptrace"
	"golang.org/x/sys/unix"
)

// Task names a process: its PID and its start time (field 22 of
// /proc/PID/stat, clock ticks after boot).
type Task struct {
	PID       int
	StartTime uint64
}

// ReusedError is a PID that names another process than the one expected:
// the first one ended and the PID was given to a new one.
type ReusedError struct {
	PID       int
	Want, Got uint64 // start times
}

func (e *ReusedError) Error() string {
	return fmt.Sprintf("pid %d was reused: it started at tick %d, not %d", e.PID, e.Got, e.Want)
}

// Tree is a set of processes whose every thread is seized and stopped in
// a PTRACE_EVENT_STOP.
//
// Preconditions: every method is called from the OS thread that called
// Freeze (runtime.LockOSThread); ptrace answers no other thread.
type Tree struct {
	procs []*proc
	start time.Time
	end   time.Time // when released or killed
}

// proc is one frozen process.
type proc struct {
	Task
	threads []int // seized and stopped; the leader first
	pending []int // seized and interrupted, stop not yet seen
	lost    []int // threads that exited while being frozen
	pidfd   int   // names the process for the kill, -1 if none
}

// Freeze seizes and interrupts every thread of every task and waits until
// each is stopped. On error, whatever it froze is released again.
func Freeze(tasks []Task) (*Tree, error) {
	t := &Tree{start: time.Now()}
	for _, task := range tasks {
		p := &proc{Task: task, pidfd: -1}
		t.procs = append(t.procs, p)
		if err := p.freeze(); err != nil {
			_ = t.Release()
			return nil, err
		}
	}
	return t, nil
}

// Add freezes one more process into the tree, as Freeze does. On error
// the process is released again; the rest of the tree stays frozen.
func (t *Tree) Add(task Task) error {
	p := &proc{Task: task, pidfd: -1}
	if err := p.freeze(); err != nil {
		one := &Tree{procs: []*proc{p}}
		_ = one.Release()
		return err
	}
	t.procs = append(t.procs, p)
	return nil
}

// freeze stops every thread of p. Threads that running threads create
// while the first ones are being stopped show up in the next listing, so
// it lists again until no new thread appears.
func (p *proc) freeze() error {
	for {
		tids, err := procfs.Tasks(p.PID)
		if err != nil {
			return fmt.Errorf("pid %d: list threads: %w", p.PID, err)
		}
		var fresh []int
		for _, tid := range tids {
			if !slices.Contains(p.threads, tid) && !slices.Contains(p.lost, tid) {
				fresh = append(fresh, tid)
			}
		}
		if len(fresh) == 0 {
			return nil
		}
		if err := p.stop(fresh); err != nil {
			return err
		}
	}
}

// stop seizes and interrupts tids, then waits for their stops, and checks
// the leader's start time once it is stopped. A thread other than the
// leader that exits meanwhile is forgotten.
func (p *proc) stop(tids []int) error {
	for _, tid := range tids {
		err := ptrace.Seize(tid)
		if errors.Is(err, unix.ESRCH) && tid != p.PID {
			p.lost = append(p.lost, tid)
			continue
		}
		if err != nil {
			return fmt.Errorf("pid %d: %w", p.PID, err)
		}
		if err := ptrace.Interrupt(tid); err != nil {
			return fmt.Errorf("pid %d: %w", p.PID, err)
		}
		p.pending = append(p.pending, tid)
	}
	if err := p.waitPending(); err != nil {
		return err
	}
	if p.pidfd < 0 {
		return p.checkStart()
	}
	return nil
}

// waitPending waits for the stops of the interrupted threads and moves
// them to the stopped ones.
func (p *proc) waitPending() error {
	for len(p.pending) > 0 {
		tid := p.pending[0]
		p.pending = p.pending[1:]
		if err := waitStop(tid, StopTimeout); err != nil {
			if errors.Is(err, ErrNoStop) {
				return fmt.Errorf("pid %d: %w", p.PID, err)
			}
			if tid != p.PID && !alive(p.PID, tid) {
				p.lost = append(p.lost, tid)
				continue
			}
			return fmt.Errorf("pid %d: %w", p.PID, err)
		}
		p.threads = append(p.threads, tid)
	}
	return nil
}

// checkStart makes sure the seized leader is the process the caller
// meant, then opens a pidfd on it. Once seized, a process cannot be
// reaped and its PID reused while we trace it.
func (p *proc) checkStart() error {
	st, err := procfs.ReadStat(p.PID)
	if err != nil {
		return fmt.Errorf("pid %d: %w", p.PID, err)
	}
	if p.StartTime != 0 && st.StartTime != p.StartTime {
		return &ReusedError{PID: p.PID, Want: p.StartTime, Got: st.StartTime}
	}
	p.StartTime = st.StartTime
	fd, err := unix.PidfdOpen(p.PID, 0)
	if err != nil {
		return fmt.Errorf("pid %d: pidfd_open: %w", p.PID, err)
	}
	p.pidfd = fd
	return nil
}

// alive reports whether thread tid of pid still exists.
func alive(pid, tid int) bool {
	st, err := procfs.ReadTaskStat(pid, tid)
	return err == nil && st.State != 'Z' && st.State != 'X'
}

// Tasks returns the frozen processes.
func (t *Tree) Tasks() []Task {
	var tasks []Task
	for _, p := range t.procs {
		tasks = append(tasks, p.Task)
	}
	return tasks
}

// Threads returns the frozen threads of process pid, the leader first.
func (t *Tree) Threads(pid int) []int {
	for _, p := range t.procs {
		if p.PID == pid {
			return slices.Clone(p.threads)
		}
	}
	return nil
}

// Frozen returns how long the tree has been frozen: from Freeze to
// Release or Kill, or to now if it is still frozen.
func (t *Tree) Frozen() time.Duration {
	if t.end.IsZero() {
		return time.Since(t.start)
	}
	return t.end.Sub(t.start)
}

// Release detaches every thread; the tree runs on as if nothing happened.
// It detaches all it can and returns the first error. A thread that is
// gone is no error. (Called from another OS thread than Freeze's, every
// detach fails with ESRCH; the threads stay stopped until this process
// exits.)
func (t *Tree) Release() error {
	var first error
	for _, p := range t.procs {
		// Threads interrupted but not yet seen stopped cannot be
		// detached before they stop.
		for _, tid := range p.pending {
			if _, err := ptrace.WaitStop(tid); err == nil {
				p.threads = append(p.threads, tid)
			}
		}
		p.pending = nil
		for _, tid := range p.threads {
			err := ptrace.Detach(tid)
			if errors.Is(err, unix.ESRCH) && !alive(p.PID, tid) {
				err = nil // it died meanwhile
			}
			if err != nil && first == nil {
				first = fmt.Errorf("pid %d: %w", p.PID, err)
			}
		}
		p.threads = nil
		p.closePidfd()
	}
	t.stopClock()
	return first
}

func (p *proc) closePidfd() {
	if p.pidfd >= 0 {
		unix.Close(p.pidfd)
		p.pidfd = -1
	}
}

func (t *Tree) stopClock() {
	if t.end.IsZero() {
		t.end = time.Now()
	}
}

// ReapTimeout bounds how long Kill waits for killed threads to be gone.
const ReapTimeout = 5 * time.Second

// Kill sends SIGKILL to every process while it is still frozen, so it
// runs not one more instruction, then collects the threads' exits (their
// parents then reap them as usual). It returns an error if a signal could
// not be sent; a thread slow to die after SIGKILL is left to the kernel.
func (t *Tree) Kill() error {
	var first error
	for _, p := range t.procs {
		if err := unix.PidfdSendSignal(p.pidfd, unix.SIGKILL, nil, 0); err != nil && first == nil {
			first = fmt.Errorf("pid %d: kill: %w", p.PID, err)
		}
	}
	if first != nil {
		return first
	}
	t.stopClock()
	deadline := time.Now().Add(ReapTimeout)
	for _, p := range t.procs {
		// The other threads first: the leader's exit is not reported
		// while threads we trace are unreaped zombies.
		for i := len(p.threads) - 1; i >= 0; i-- {
			reap(p.threads[i], deadline)
		}
		p.threads = nil
		p.closePidfd()
	}
	return nil
}

// reap waits, until deadline, for the exit of a killed thread we trace.
func reap(tid int, deadline time.Time) {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return // ECHILD: already gone
		case got == tid && (ws.Exited() || ws.Signaled()):
			return
		case time.Now().After(deadline):
			return
		}
		time.Sleep(time.Millisecond)
	}
}
