package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/ptrace"
	"golang.org/x/sys/unix"
)

// What only the task itself can answer is read by running system calls in
// it (lib/ptrace, Injector), into scratch memory laid out as:
const (
	sigactionSize = 32                 // struct k_sigaction on x86_64
	offTidAddress = 64 * sigactionSize // prctl(PR_GET_TID_ADDRESS): one pointer
	offAltStack   = offTidAddress + 8  // sigaltstack: stack_t, 24 bytes
	scratchSize   = offAltStack + 24
)

// injecting is true while a thread runs injected calls: from NewInjector
// to Restore, exiting would leave it at foreign code.
var injecting atomic.Bool

// injectAll runs the injected calls in every thread of the task: the
// process-wide ones (brk, signal handlers) in the leader, the per-thread
// ones (tid address, sigaltstack) in each. The syscall instruction comes
// from the vdso.
func injectAll(t *image.Task) error {
	insn, err := syscallInsn(t)
	if err != nil {
		return err
	}
	for i := range t.Threads {
		if err := inject(t, &t.Threads[i], insn, i == 0); err != nil {
			return fmt.Errorf("pid %d: %w", t.PID, err)
		}
	}
	return nil
}

// syscallInsn finds a `syscall` instruction in the task's vdso.
func syscallInsn(t *image.Task) (uint64, error) {
	for _, v := range t.Vmas {
		if v.Kind == image.VmaVdso {
			return ptrace.FindSyscall(t.PID, v.Start, v.End)
		}
	}
	return 0, fmt.Errorf("pid %d has no [vdso] mapping to run system calls from", t.PID)
}

// inject runs the calls in one thread, reads the answers from scratch
// memory, and puts the thread back exactly as it was. The thread sits at
// injected code only between NewInjector and Restore: a few milliseconds.
func inject(t *image.Task, th *image.Thread, insn uint64, leader bool) error {
	injecting.Store(true)
	defer injecting.Store(false)
	j, err := ptrace.NewInjector(th.TID, insn)
	if err != nil {
		return err
	}
	buf, brk, err := injectCalls(j, leader)
	if err == nil && leader {
		err = injectTimers(j, t)
	}
	if rerr := j.Restore(); rerr != nil {
		return errors.Join(err, fmt.Errorf("tid %d: put back after injection: %w", th.TID, rerr))
	}
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	if leader {
		t.MM.Brk = brk
		t.SigActions = make([]image.SigAction, 64)
		for sig := 1; sig <= 64; sig++ {
			if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
				continue // always default; the scratch there holds nothing
			}
			b := buf[(sig-1)*sigactionSize:]
			t.SigActions[sig-1] = image.SigAction{
				Handler: le.Uint64(b), Flags: le.Uint64(b[8:]),
				Restorer: le.Uint64(b[16:]), Mask: le.Uint64(b[24:]),
			}
		}
	}
	th.ClearChildTid = le.Uint64(buf[offTidAddress:])
	b := buf[offAltStack:]
	th.AltStack = image.AltStack{SP: le.Uint64(b), Flags: int32(le.Uint32(b[8:])), Size: le.Uint64(b[16:])}
	return nil
}

// injectCalls runs the calls and returns the scratch memory they filled
// and, in the leader, the program break.
func injectCalls(j *ptrace.Injector, leader bool) ([]byte, uint64, error) {
	scratch, err := j.Scratch(scratchSize)
	if err != nil {
		return nil, 0, err
	}
	var brk uint64
	if leader {
		// brk(0) fails never: it returns the current break.
		if brk, err = j.Syscall(unix.SYS_BRK, 0); err != nil {
			return nil, 0, err
		}
		for sig := uint64(1); sig <= 64; sig++ {
			if sig == uint64(unix.SIGKILL) || sig == uint64(unix.SIGSTOP) {
				continue
			}
			// rt_sigaction(sig, NULL, &old, sizeof(sigset_t))
			old := scratch + (sig-1)*sigactionSize
			if _, err := j.Syscall(unix.SYS_RT_SIGACTION, sig, 0, old, 8); err != nil {
				return nil, 0, fmt.Errorf("signal %d: %w", sig, err)
			}
		}
	}
	if _, err := j.Syscall(unix.SYS_PRCTL, unix.PR_GET_TID_ADDRESS, scratch+offTidAddress); err != nil {
		return nil, 0, err
	}
	if _, err := j.Syscall(unix.SYS_SIGALTSTACK, 0, scratch+offAltStack); err != nil {
		return nil, 0, err
	}
	buf := make([]byte, scratchSize)
	if err := ptrace.ReadMem(j.TID, scratch, buf); err != nil {
		return nil, 0, err
	}
	return buf, brk, nil
}
