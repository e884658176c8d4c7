package restore

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/ptrace"
	"golang.org/x/sys/unix"
)

// threadFlags are the clone3 flags of a thread: it shares the address
// space, cwd and root, the fd table, the signal handlers and the SysV
// semaphore undo list of its process, and joins its thread group.
const threadFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
	unix.CLONE_THREAD | unix.CLONE_SYSVSEM

// cloneThread creates, from inside process t, a thread with the given TID
// (clone3 with set_tid, exit_signal 0) and returns it at its first stop,
// ready for injected calls. The thread starts as a copy of t's injected
// state: no rseq, robust list, tid address or sigaltstack, every signal
// blocked.
func (t *task) cloneThread(tid int) (*task, error) {
	who := fmt.Sprintf("%s thread %d", t.who, tid)
	tidArr, err := t.put(binary32(uint32(tid)))
	if err != nil {
		return nil, err
	}
	// struct clone_args, as in cloneWithPID; no stack: the thread runs
	// nothing of its own before its registers are loaded.
	args, err := t.words(threadFlags, 0, 0, 0, 0, 0, 0, 0, tidArr, 1, 0)
	if err != nil {
		return nil, err
	}
	got, err := t.call("clone3 thread "+strconv.Itoa(tid), unix.SYS_CLONE3, args, 88)
	if errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("%s: tid %d is in use: cannot restore the thread with "+
			"the same tid", who, tid)
	}
	if err != nil {
		return nil, err
	}
	if int(got) != tid {
		return nil, fmt.Errorf("%s: clone3 gave tid %d", who, got)
	}
	host, err := t.hostThread(tid)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", who, err)
	}
	// The new thread stops with SIGSTOP at the instruction after clone3;
	// the first injected call discards that signal.
	ws, err := ptrace.Wait(host)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", who, err)
	}
	if !ws.Stopped() {
		return nil, fmt.Errorf("%s: unexpected first state %v", who, ws)
	}
	j, err := ptrace.NewInjector(host, t.area)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", who, err)
	}
	th := newTask(host, j, t.area)
	th.who, th.vpid, th.inNS = who, tid, t.inNS
	return th, nil
}

// restoreThread restores what belongs to one thread but its registers:
// rseq, tid address, robust list, sigaltstack, name, credentials, which
// Linux keeps per thread, then its parent-death signal and timer slack.
func (t *task) restoreThread(tk *image.Task, th *image.Thread) error {
	if err := t.restoreThreadState(th); err != nil {
		return err
	}
	comm := th.Comm
	if comm == "" {
		comm = tk.Comm
	}
	if err := t.setComm(comm); err != nil {
		return err
	}
	if err := t.restoreCreds(tk.Creds); err != nil {
		return err
	}
	return t.restoreThreadPrctl(th)
}

// loadRegs gives a thread whose injected calls are done its saved
// extended state, registers and signal mask.
func (t *task) loadRegs(th *image.Thread, regs *unix.PtraceRegs) error {
	if err := ptrace.SetXstate(t.pid, th.Xstate); err != nil {
		return fmt.Errorf("%s: %w", t.who, err)
	}
	if err := ptrace.SetRegs(t.pid, regs); err != nil {
		return fmt.Errorf("%s: %w", t.who, err)
	}
	if err := ptrace.SetSigmask(t.pid, th.SigMask); err != nil {
		return fmt.Errorf("%s: %w", t.who, err)
	}
	return nil
}

// allFinalRegs returns finalRegs of every thread, in order.
func allFinalRegs(tk *image.Task) ([]*unix.PtraceRegs, error) {
	regs := make([]*unix.PtraceRegs, len(tk.Threads))
	for i := range tk.Threads {
		r, err := finalRegs(&tk.Threads[i])
		if err != nil {
			return nil, fmt.Errorf("pid %d: %w", tk.PID, err)
		}
		regs[i] = r
	}
	return regs, nil
}

// killAll ends process pid, whose threads tids this restorer traces, and
// reaps them: the traced threads first, since the leader's exit is not
// reported while they are unreaped zombies.
func killAll(pid int, tids []int) {
	_ = unix.Kill(pid, unix.SIGKILL)
	for _, tid := range tids {
		var ws unix.WaitStatus
		for range 100 {
			got, err := unix.Wait4(tid, &ws, unix.WALL, nil)
			if err != nil || (got == tid && (ws.Exited() || ws.Signaled())) {
				break
			}
		}
	}
	kill(pid)
}
