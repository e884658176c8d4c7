package ptrace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Parasite runs system calls inside a seized thread, like Injector, but so
// that the thread survives the tracer's death at any moment, SIGKILL
// included: it then finishes the call it was making and returns, by
// itself, to the state it had when it was stopped (registers, signal
// mask, the interrupted system call restarting), as if it had never been
// traced. docs/ckpt-scan.md says why it is built this way.
//
// The thread runs each call at the parasite's code in the free tail of
// the vdso (Area), and the code after that call puts the saved state back
// (parasite_code.go). The tracer, alive, never lets it get that far. The
// vdso page becomes a private copy of itself, which stays; its tail holds
// the parasite's bytes until Cure puts the old ones back, and for good if
// the tracer dies first, where nothing ever looks.
//
// Calls write their answers into an output buffer in memory that the
// thread does not use: first just below its stack's red zone, which any
// signal may overwrite at any time, later wherever MoveOut says (its
// alternate signal stack, when it is not running on it). Cure puts the
// old contents back; left as they are, they harm nobody.
//
// Preconditions: the thread is seized by the calling OS thread and sits in
// an interrupt stop (PTRACE_EVENT_STOP), in 64-bit mode; no other thread
// of its process runs the same Area's parasite.
type Parasite struct {
	TID    int
	area   Area
	old    []byte // the tail's bytes before
	saved  *unix.PtraceRegs
	live   *unix.PtraceRegs // what Cure loads: saved, out of an rseq critical section
	mask   uint64
	out    savedMem   // the output buffer, with its old contents
	moved  []savedMem // output buffers written before
	set    bool       // registers point at the parasite
	masked bool       // every signal blocked
	stop   string     // "entry" or "exit": in that syscall stop of an injected call

	// Step, when set, is called after every step that changes the
	// thread's state, with what that step did; tests stop the tracer
	// there to kill it.
	Step func(what string)

	mem *os.File // /proc/TID/mem, open from NewParasite to Cure
}

// userCS is the code segment of 64-bit user mode on x86_64.
const userCS = 0x33

// NewParasite saves the thread's registers and signal mask and writes the
// parasite into area. The thread is not touched yet.
func NewParasite(tid int, area Area) (*Parasite, error) {
	regs, err := GetRegs(tid)
	if err != nil {
		return nil, err
	}
	if regs.Cs != userCS {
		return nil, &Error{"parasite", tid,
			fmt.Errorf("code segment %#x: only 64-bit tasks are supported", regs.Cs)}
	}
	if area.Holds(regs.Rip) {
		return nil, &Error{"parasite", tid, fmt.Errorf("it runs the parasite a killed dump "+
			"left at %#x and is about to leave it: dump again", regs.Rip)}
	}
	mask, err := GetSigmask(tid)
	if err != nil {
		return nil, err
	}
	mem, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", tid), os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	p := &Parasite{TID: tid, area: area, saved: regs, mask: mask, mem: mem,
		old: make([]byte, MinParasite)}
	if err := p.write(regs); err != nil {
		mem.Close()
		return nil, err
	}
	return p, nil
}

// write writes the parasite for a thread with registers regs.
func (p *Parasite) write(regs *unix.PtraceRegs) error {
	var err error
	if p.live, err = p.leaveRseq(regs); err != nil {
		return err
	}
	if err := p.MoveOut(regs.Rsp-redZone, FirstOut); err != nil {
		return err
	}
	if err := p.read(p.area.Addr, p.old); err != nil {
		return fmt.Errorf("tid %d: parasite: %w", p.TID, err)
	}
	err = p.writeMem(p.area.Addr, parasiteImage(restarted(p.live), p.mask))
	if err != nil {
		return fmt.Errorf("tid %d: parasite: %w", p.TID, err)
	}
	return nil
}

// read reads the thread's memory at addr.
func (p *Parasite) read(addr uint64, b []byte) error {
	if _, err := p.mem.ReadAt(b, int64(addr)); err != nil {
		return fmt.Errorf("read %d bytes at %#x: %w", len(b), addr, err)
	}
	return nil
}

// writeMem writes the thread's memory at addr, read-only pages too.
func (p *Parasite) writeMem(addr uint64, b []byte) error {
	if _, err := p.mem.WriteAt(b, int64(addr)); err != nil {
		return fmt.Errorf("write %d bytes at %#x: %w", len(b), addr, err)
	}
	return nil
}

// Saved returns the registers the thread had when NewParasite ran.
func (p *Parasite) Saved() *unix.PtraceRegs { return p.saved }

// redZone is the part of the stack below rsp that a function may use
// without moving rsp (x86_64 ABI): no signal frame ever goes there.
const redZone = 128

// FirstOut is the size of the first output buffer, below the red zone.
const FirstOut = 64

// Out returns the address and size of the output buffer.
func (p *Parasite) Out() (uint64, int) { return p.out.addr, len(p.out.data) }

// ReadOut reads the first len(b) bytes of the output buffer.
func (p *Parasite) ReadOut(b []byte) error {
	if len(b) > len(p.out.data) {
		return &Error{"parasite", p.TID,
			fmt.Errorf("read %d bytes from an output buffer of %d", len(b), len(p.out.data))}
	}
	if err := p.read(p.out.addr, b); err != nil {
		return fmt.Errorf("tid %d: output buffer: %w", p.TID, err)
	}
	return nil
}

// MoveOut makes the size bytes below top, rounded down to 16 bytes, the
// output buffer. The caller vouches that the thread does not use the
// size+15 bytes below top: they lie below its red zone, or in a signal
// stack it is not running on.
func (p *Parasite) MoveOut(top uint64, size int) error {
	addr := top&^15 - uint64(size)
	old := make([]byte, size)
	if err := p.read(addr, old); err != nil {
		return fmt.Errorf("tid %d: output buffer: %w", p.TID, err)
	}
	if p.out.data != nil {
		p.moved = append(p.moved, p.out)
	}
	p.out = savedMem{addr, old}
	return nil
}

func (p *Parasite) step(what string) {
	if p.Step != nil {
		p.Step(what)
	}
}

// Syscall runs system call nr with up to six arguments in the thread and
// returns its result; a result in -4095..-1 is returned as a
// *SyscallError. The call must not block, nor return a restart code.
func (p *Parasite) Syscall(nr uintptr, args ...uint64) (uint64, error) {
	r := *p.saved
	r.Rip = p.area.Addr
	r.Rax = uint64(nr)
	// orig_rax -1: no restart rule may rewrite rax and rip on the way in.
	r.Orig_rax = ^uint64(0)
	regs := []*uint64{&r.Rdi, &r.Rsi, &r.Rdx, &r.R10, &r.R8, &r.R9}
	for i, a := range args {
		*regs[i] = a
	}
	if err := SetRegs(p.TID, &r); err != nil {
		return 0, err
	}
	p.set = true
	p.step(fmt.Sprintf("registers set for syscall %d", nr))
	if !p.masked {
		// Only now: a thread left with every signal blocked and its
		// own registers would never unblock them.
		if err := SetSigmask(p.TID, ^uint64(0)); err != nil {
			return 0, err
		}
		p.masked = true
		p.step("signals blocked")
	}
	for _, stop := range []string{"entry", "exit"} {
		if err := toSyscallStop(p.TID); err != nil {
			return 0, fmt.Errorf("injected syscall %d: %w", nr, err)
		}
		p.stop = stop
		p.step(fmt.Sprintf("at the syscall-%s stop of syscall %d", stop, nr))
	}
	out, err := GetRegs(p.TID)
	if err != nil {
		return 0, err
	}
	if ret := int64(out.Rax); ret < 0 && ret >= -4095 {
		return 0, &SyscallError{p.TID, nr, unix.Errno(-ret)}
	}
	return out.Rax, nil
}

// Cure takes the thread back to an interrupt stop with its saved
// registers and signal mask, then puts the vdso tail's old bytes back. At
// every step, the thread would still find its way back alone.
func (p *Parasite) Cure() error {
	err := p.cure()
	if cerr := p.mem.Close(); err == nil {
		err = cerr
	}
	return err
}

func (p *Parasite) cure() error {
	if p.stop == "entry" {
		// Loaded at an entry stop, the saved registers would run the
		// call of orig_rax: let the injected one finish first.
		if err := toSyscallStop(p.TID); err != nil {
			return err
		}
		p.stop = "exit"
		p.step("at a syscall-exit stop")
	}
	if p.stop == "exit" {
		if err := p.toInterruptStop(); err != nil {
			return err
		}
	}
	if p.masked {
		if err := SetSigmask(p.TID, p.mask); err != nil {
			return err
		}
		p.masked = false
		p.step("signal mask put back")
	}
	if p.set {
		// The kernel's restart rule applies to them on the way out.
		if err := SetRegs(p.TID, p.live); err != nil {
			return err
		}
		p.set = false
		p.step("registers put back")
	}
	if err := p.writeMem(p.area.Addr, p.old); err != nil {
		return fmt.Errorf("tid %d: parasite: %w", p.TID, err)
	}
	p.step("vdso tail put back")
	bufs := append(p.moved, p.out)
	for i := len(bufs) - 1; i >= 0; i-- {
		if err := p.writeMem(bufs[i].addr, bufs[i].data); err != nil {
			return fmt.Errorf("tid %d: output buffer: %w", p.TID, err)
		}
	}
	p.moved, p.out = nil, savedMem{}
	p.step("output buffers put back")
	return nil
}

// toInterruptStop takes the thread from the syscall-exit stop of an
// injected call to an interrupt stop: from an exit stop, a restart code
// would leak to user space.
func (p *Parasite) toInterruptStop() error {
	r, err := GetRegs(p.TID)
	if err != nil {
		return err
	}
	// It goes on at the parasite's `back`; orig_rax -1: no restart rule
	// on the way.
	r.Orig_rax = ^uint64(0)
	if err := SetRegs(p.TID, r); err != nil {
		return err
	}
	p.step("orig_rax cleared")
	if err := Interrupt(p.TID); err != nil {
		return err
	}
	if err := Cont(p.TID, 0); err != nil {
		return err
	}
	if _, err := WaitStop(p.TID); err != nil {
		return err
	}
	p.stop = ""
	p.step("at an interrupt stop")
	return nil
}

// Kernel restart codes: a system call stopped by a signal or a ptrace
// interrupt leaves one of them in rax, and the kernel's restart rule
// turns it into a restart on the way back to user space.
const (
	errRestartSys          = 512
	errRestartNoIntr       = 513
	errRestartNoHand       = 514
	errRestartRestartBlock = 516
)

// restarted returns the registers a thread goes on with when it leaves
// its interrupt stop with no signal to handle: the kernel's restart rule
// applied. The parasite's `back` jumps there, past any restart rule.
//
// A call that restarts through its restart block (-516: nanosleep,
// poll, futex waits with a timeout) restarts with restart_syscall, which
// carries on with the time left: no injected call touches the block.
func restarted(saved *unix.PtraceRegs) *unix.PtraceRegs {
	r := *saved
	if int64(r.Orig_rax) >= 0 {
		switch -int64(r.Rax) {
		case errRestartSys, errRestartNoIntr, errRestartNoHand:
			r.Rax = r.Orig_rax
			r.Rip -= 2
		case errRestartRestartBlock:
			r.Rax = unix.SYS_RESTART_SYSCALL
			r.Rip -= 2
		}
	}
	return &r
}

// leaveRseq returns saved, moved to the abort handler of the rseq
// critical section it lies in, if any. The kernel moves a thread
// preempted there (as every ptrace stop preempts it) to that handler on
// its way back to user space; it would not, once it saw the thread at
// the parasite.
func (p *Parasite) leaveRseq(saved *unix.PtraceRegs) (*unix.PtraceRegs, error) {
	r := *saved
	abort, err := p.rseqAbort(r.Rip)
	if err != nil {
		return nil, err
	}
	if abort != 0 {
		r.Rip = abort
	}
	return &r, nil
}

// rseqAbort returns the abort handler of the rseq critical section that
// rip lies in, or 0.
func (p *Parasite) rseqAbort(rip uint64) (uint64, error) {
	tid := p.TID
	conf, err := GetRseq(tid)
	if errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) || conf.Addr == 0 {
		return 0, nil // no rseq (CONFIG_RSEQ off, or none registered)
	}
	if err != nil {
		return 0, err
	}
	var ptr [8]byte
	// struct rseq: cpu_id_start, cpu_id (u32 each), then rseq_cs (u64).
	if err := p.read(conf.Addr+8, ptr[:]); err != nil {
		return 0, fmt.Errorf("tid %d: rseq: %w", tid, err)
	}
	csAddr := binary.LittleEndian.Uint64(ptr[:])
	if csAddr == 0 {
		return 0, nil
	}
	// struct rseq_cs: version, flags (u32 each), start_ip,
	// post_commit_offset, abort_ip (u64 each).
	var cs [32]byte
	if err := p.read(csAddr, cs[:]); err != nil {
		return 0, fmt.Errorf("tid %d: rseq critical section at %#x: %w", tid, csAddr, err)
	}
	le := binary.LittleEndian
	start, length, abort := le.Uint64(cs[8:]), le.Uint64(cs[16:]), le.Uint64(cs[24:])
	if rip < start || rip-start >= length {
		return 0, nil
	}
	var sig [4]byte
	if err := p.read(abort-4, sig[:]); err != nil || le.Uint32(sig[:]) != conf.Sig {
		return 0, &Error{"parasite", tid, fmt.Errorf("in the rseq critical section at %#x, "+
			"whose abort handler at %#x lacks the signature %#x", start, abort, conf.Sig)}
	}
	return abort, nil
}
