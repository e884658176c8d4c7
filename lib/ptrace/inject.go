package ptrace

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Injector runs system calls inside a stopped thread by pointing its
// registers at a `syscall` instruction and stepping it through the call
// with PTRACE_SYSCALL.
//
// Preconditions: the thread is traced by the calling OS thread and sits in
// a ptrace stop. For a seized thread that is an interrupt stop and Restore
// returns it there; a thread attached by PTRACE_TRACEME (restore) may sit
// in any stop, and its caller sets the final registers itself.
type Injector struct {
	TID     int
	insn    uint64
	saved   *unix.PtraceRegs
	mask    uint64
	scratch []savedMem
	atExit  bool // in a syscall-exit stop of an injected call
}

type savedMem struct {
	addr uint64
	data []byte
}

// NewInjector saves the thread's registers and signal mask, and blocks
// every signal for the duration of the injection.
func NewInjector(tid int, syscallAddr uint64) (*Injector, error) {
	regs, err := GetRegs(tid)
	if err != nil {
		return nil, err
	}
	mask, err := GetSigmask(tid)
	if err != nil {
		return nil, err
	}
	if err := SetSigmask(tid, ^uint64(0)); err != nil {
		return nil, err
	}
	return &Injector{TID: tid, insn: syscallAddr, saved: regs, mask: mask}, nil
}

// Saved returns the registers the thread had before injection.
func (j *Injector) Saved() *unix.PtraceRegs { return j.saved }

// SetSyscallAddr moves the instruction used for later calls, for example
// off the vdso before it is moved.
func (j *Injector) SetSyscallAddr(addr uint64) { j.insn = addr }

// SyscallError is an injected system call that failed.
type SyscallError struct {
	TID   int
	Nr    uintptr
	Errno unix.Errno
}

func (e *SyscallError) Error() string {
	return fmt.Sprintf("tid %d: injected syscall %d: %v", e.TID, e.Nr, e.Errno)
}

func (e *SyscallError) Unwrap() error { return e.Errno }

// Syscall runs system call nr with up to six arguments in the thread and
// returns its result; a result in -4095..-1 is returned as a
// *SyscallError.
func (j *Injector) Syscall(nr uintptr, args ...uint64) (uint64, error) {
	r := *j.saved
	r.Rip = j.insn
	r.Rax = uint64(nr)
	// orig_rax -1: no restart rule may rewrite rax and rip on the way in.
	r.Orig_rax = ^uint64(0)
	regs := []*uint64{&r.Rdi, &r.Rsi, &r.Rdx, &r.R10, &r.R8, &r.R9}
	for i, a := range args {
		*regs[i] = a
	}
	if err := SetRegs(j.TID, &r); err != nil {
		return 0, err
	}
	// Run to the syscall-entry stop, then to its exit stop.
	for range 2 {
		if err := toSyscallStop(j.TID); err != nil {
			return 0, fmt.Errorf("injected syscall %d: %w", nr, err)
		}
	}
	j.atExit = true
	out, err := GetRegs(j.TID)
	if err != nil {
		return 0, err
	}
	if ret := int64(out.Rax); ret < 0 && ret >= -4095 {
		return 0, &SyscallError{j.TID, nr, unix.Errno(-ret)}
	}
	return out.Rax, nil
}

// toSyscallStop resumes thread tid to its next syscall stop. Blocked
// signals cannot stop the thread; a SIGKILL ends it and is reported.
func toSyscallStop(tid int) error {
	if err := ptrace(unix.PTRACE_SYSCALL, tid, 0, 0); err != nil {
		return wrap("ptrace syscall", tid, err)
	}
	for {
		ws, err := Wait(tid)
		if err != nil {
			return err
		}
		switch {
		case ws.Exited() || ws.Signaled():
			return &Error{"inject", tid, errors.New("thread died")}
		case IsSyscallStop(ws):
			return nil
		case ws.Stopped() && isFault(ws.StopSignal()):
			// The injected code itself faulted: resuming would only
			// fault again.
			regs, _ := GetRegs(tid)
			at := uint64(0)
			if regs != nil {
				at = regs.Rip
			}
			return &Error{"inject", tid,
				fmt.Errorf("%v at %#x during an injected call", ws.StopSignal(), at)}
		case ws.Stopped():
			// A stop of another kind (a ptrace event, a group stop, the
			// SIGSTOP of a new task): go on towards the syscall stop,
			// dropping it.
			if err := ptrace(unix.PTRACE_SYSCALL, tid, 0, 0); err != nil {
				return wrap("ptrace syscall", tid, err)
			}
		}
	}
}

// Scratch returns the address of size bytes of the thread's memory that
// injected calls may use, below the stack pointer and its 128-byte red
// zone. Restore puts the old contents back.
func (j *Injector) Scratch(size int) (uint64, error) {
	addr := (j.saved.Rsp - 128 - uint64(size) - 256) &^ 15
	for _, s := range j.scratch {
		addr = min(addr, (s.addr-uint64(size)-64)&^15)
	}
	old := make([]byte, size)
	if err := ReadMem(j.TID, addr, old); err != nil {
		return 0, fmt.Errorf("scratch memory: %w", err)
	}
	j.scratch = append(j.scratch, savedMem{addr, old})
	return addr, nil
}

// Restore puts back scratch memory, brings a seized thread back to an
// interrupt stop, and loads its saved registers and signal mask: the
// thread is as it was before NewInjector.
func (j *Injector) Restore() error {
	for i := len(j.scratch) - 1; i >= 0; i-- {
		s := j.scratch[i]
		if err := WriteMem(j.TID, s.addr, s.data); err != nil {
			return err
		}
	}
	j.scratch = nil
	if j.atExit {
		// From a syscall-exit stop a restart code would leak to user
		// space: go through an interrupt stop instead.
		if err := Interrupt(j.TID); err != nil {
			return err
		}
		if err := Cont(j.TID, 0); err != nil {
			return err
		}
		if _, err := WaitStop(j.TID); err != nil {
			return err
		}
		j.atExit = false
	}
	if err := SetRegs(j.TID, j.saved); err != nil {
		return err
	}
	return SetSigmask(j.TID, j.mask)
}

// isFault reports whether sig is one the kernel sends for a faulting
// instruction; such a signal cannot be blocked away.
func isFault(sig unix.Signal) bool {
	switch sig {
	case unix.SIGSEGV, unix.SIGBUS, unix.SIGILL, unix.SIGFPE:
		return true
	}
	return false
}
