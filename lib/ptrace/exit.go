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
