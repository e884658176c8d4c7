package ptrace

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// RunToExit makes the thread end: it runs system call nr (exit_group, or
// a signal sent to itself) and lets the thread run on, delivering the
// signals it stops for, until it has exited. It returns the exit's wait
// status as the tracer sees it. The caller unblocks the signal first if
// the thread is to die of one.
func (j *Injector) RunToExit(nr uintptr, args ...uint64) (unix.WaitStatus, error) {
	r := *j.saved
	r.Rip = j.insn
	r.Rax = uint64(nr)
	r.Orig_rax = ^uint64(0)
	regs := []*uint64{&r.Rdi, &r.Rsi, &r.Rdx, &r.R10, &r.R8, &r.R9}
	for i, a := range args {
		*regs[i] = a
	}
	if err := SetRegs(j.TID, &r); err != nil {
		return 0, err
	}
	sig := 0
	for range 100 {
		if err := Cont(j.TID, sig); err != nil {
			return 0, err
		}
		ws, err := Wait(j.TID)
		if err != nil {
			return 0, err
		}
		if ws.Exited() || ws.Signaled() {
			return ws, nil
		}
		sig = 0
		if ws.Stopped() && !IsSyscallStop(ws) && ws.TrapCause() <= 0 {
			sig = int(ws.StopSignal())
		}
	}
	return 0, &Error{"run to exit", j.TID, fmt.Errorf("the thread does not exit")}
}

// DetachRestarting lets thread tid of process pid go from a syscall stop
// when its registers are those of a system call interrupted with a
// restart code (orig_rax the call, rax -ERESTARTSYS, -ERESTARTNOINTR or
// -ERESTARTNOHAND). Detached from a syscall stop, the thread would get
// that code in rax, as if the call had returned it. Instead, it sends the
// thread a SIGSTOP, lets it run into the signal-delivery stop for it,
// and detaches from there, dropping the SIGSTOP: on its way back to user
// space the kernel then applies its own restart rule to those registers.
// The call runs again, or, if a signal with a handler comes first,
// returns EINTR or restarts as SA_RESTART says, exactly as it would have
// without the checkpoint. Signals that stop it first are delivered.
func DetachRestarting(pid, tid int) error {
	if err := unix.Tgkill(pid, tid, unix.SIGSTOP); err != nil {
		return wrap("tgkill SIGSTOP", tid, err)
	}
	sig := 0
	for range 100 {
		if err := Cont(tid, sig); err != nil {
			return err
		}
		ws, err := Wait(tid)
		if err != nil {
			return err
		}
		switch {
		case ws.Exited() || ws.Signaled():
			return &Error{"detach", tid, fmt.Errorf("the thread ended: %v", ws)}
		case ws.Stopped() && ws.StopSignal() == unix.SIGSTOP:
			return Detach(tid)
		}
		sig = 0
		if ws.Stopped() && !IsSyscallStop(ws) && ws.TrapCause() <= 0 {
			sig = int(ws.StopSignal())
		}
	}
	return &Error{"detach", tid, fmt.Errorf("the thread never stops for its SIGSTOP")}
}
