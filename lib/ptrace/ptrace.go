// Package ptrace is the one place that talks to the kernel's ptrace
// interface: seizing and interrupting tasks, their registers and extended
// state, and running system calls inside a stopped task: Injector for a
// task being built (restore), Parasite for a task being dumped, which
// survives its tracer's death at any moment.
//
// Every call on a tracee must come from the OS thread that attached to it;
// from another thread the kernel answers ESRCH. Callers lock their
// goroutine to one thread (runtime.LockOSThread) for the whole session.
package ptrace

import (
	"errors"
	"fmt"
	"os"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// Options set on every task ckpt traces: syscall stops are marked with
// 0x80 so they cannot be confused with a SIGTRAP.
const Options = unix.PTRACE_O_TRACESYSGOOD

// Error is a failed ptrace request on one thread.
type Error struct {
	Op  string
	TID int
	Err error
}

func (e *Error) Error() string { return fmt.Sprintf("tid %d: %s: %v", e.TID, e.Op, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

func wrap(op string, tid int, err error) error {
	if err == nil {
		return nil
	}
	return &Error{op, tid, err}
}

// Seize attaches to tid without stopping it (PTRACE_SEIZE), with Options.
func Seize(tid int) error {
	return wrap("seize", tid, ptrace(unix.PTRACE_SEIZE, tid, 0, Options))
}

// Interrupt asks a seized thread to stop (PTRACE_INTERRUPT); WaitStop
// waits for the stop.
func Interrupt(tid int) error {
	return wrap("interrupt", tid, ptrace(unix.PTRACE_INTERRUPT, tid, 0, 0))
}

// Detach lets the thread run on (PTRACE_DETACH).
func Detach(tid int) error {
	return wrap("detach", tid, ptrace(unix.PTRACE_DETACH, tid, 0, 0))
}

// Wait waits for the next state change of tid (any kind of child, __WALL).
func Wait(tid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(tid, &ws, unix.WALL, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return ws, wrap("wait", tid, err)
	}
}

// IsEventStop reports whether ws is the PTRACE_EVENT_STOP of a seized
// thread (after PTRACE_INTERRUPT, or a group stop).
func IsEventStop(ws unix.WaitStatus) bool {
	return ws.Stopped() && ws.TrapCause() == unix.PTRACE_EVENT_STOP
}

// IsSyscallStop reports whether ws is a syscall entry or exit stop.
func IsSyscallStop(ws unix.WaitStatus) bool {
	return ws.Stopped() && ws.StopSignal() == unix.SIGTRAP|0x80
}

// WaitStop waits for the PTRACE_EVENT_STOP that follows Interrupt. A
// signal-delivery stop that comes first is re-injected later by the
// kernel: we note nothing and resume it so the interrupt stop can follow.
func WaitStop(tid int) (unix.WaitStatus, error) {
	for {
		ws, err := Wait(tid)
		if err != nil {
			return ws, err
		}
		switch {
		case ws.Exited() || ws.Signaled():
			return ws, &Error{"wait for stop", tid, errors.New("thread exited")}
		case IsEventStop(ws):
			return ws, nil
		case ws.Stopped():
			// A signal arrived before our interrupt: let it be
			// delivered; the pending interrupt stops the thread next.
			if err := ptrace(unix.PTRACE_CONT, tid, 0, uintptr(ws.StopSignal())); err != nil {
				return ws, wrap("resume for stop", tid, err)
			}
		}
	}
}

// Cont resumes a stopped thread, delivering sig (0 for none).
func Cont(tid, sig int) error {
	return wrap("cont", tid, ptrace(unix.PTRACE_CONT, tid, 0, uintptr(sig)))
}

// SetOptions sets ptrace options on a thread attached by PTRACE_TRACEME.
func SetOptions(tid, opts int) error {
	return wrap("setoptions", tid, ptrace(unix.PTRACE_SETOPTIONS, tid, 0, uintptr(opts)))
}

// GetRegs returns the thread's general registers.
func GetRegs(tid int) (*unix.PtraceRegs, error) {
	var r unix.PtraceRegs
	return &r, wrap("getregs", tid, unix.PtraceGetRegs(tid, &r))
}

// SetRegs loads the thread's general registers.
func SetRegs(tid int, r *unix.PtraceRegs) error {
	return wrap("setregs", tid, unix.PtraceSetRegs(tid, r))
}

// GetSigmask returns the thread's blocked signal set.
func GetSigmask(tid int) (uint64, error) {
	var m uint64
	err := ptracePtr(unix.PTRACE_GETSIGMASK, tid, 8, ptrOf(&m))
	return m, wrap("getsigmask", tid, err)
}

// SetSigmask sets the thread's blocked signal set.
func SetSigmask(tid int, m uint64) error {
	return wrap("setsigmask", tid, ptracePtr(unix.PTRACE_SETSIGMASK, tid, 8, ptrOf(&m)))
}

// GetRseq returns the thread's rseq registration (Linux 5.13+,
// CONFIG_RSEQ). A thread without one has a zero Addr.
func GetRseq(tid int) (image.Rseq, error) {
	var conf struct {
		Ptr   uint64
		Size  uint32
		Sig   uint32
		Flags uint32
		Pad   uint32
	}
	err := ptracePtr(unix.PTRACE_GET_RSEQ_CONFIGURATION, tid, 24, ptrOf(&conf))
	if err != nil {
		return image.Rseq{}, wrap("get rseq configuration", tid, err)
	}
	return image.Rseq{Addr: conf.Ptr, Len: conf.Size, Sig: conf.Sig}, nil
}

// ReadMem reads task memory through /proc/PID/mem.
func ReadMem(pid int, addr uint64, b []byte) error {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.ReadAt(b, int64(addr)); err != nil {
		return fmt.Errorf("pid %d: read %d bytes at %#x: %w", pid, len(b), addr, err)
	}
	return nil
}

// WriteMem writes task memory through /proc/PID/mem, which also writes
// read-only private pages.
func WriteMem(pid int, addr uint64, b []byte) error {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(b, int64(addr)); err != nil {
		return fmt.Errorf("pid %d: write %d bytes at %#x: %w", pid, len(b), addr, err)
	}
	return nil
}

// FindSyscall returns the address of a `syscall` instruction (0f 05) in
// the task's memory between start and end, typically its vdso.
func FindSyscall(pid int, start, end uint64) (uint64, error) {
	b := make([]byte, end-start)
	if err := ReadMem(pid, start, b); err != nil {
		return 0, err
	}
	for i := 0; i+1 < len(b); i++ {
		if b[i] == 0x0f && b[i+1] == 0x05 {
			return start + uint64(i), nil
		}
	}
	return 0, fmt.Errorf("pid %d: no syscall instruction in %#x-%#x", pid, start, end)
}
