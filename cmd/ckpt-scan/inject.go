package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/ptrace"
	"golang.org/x/sys/unix"
)

// What only the task itself can answer is read by running system calls in
// it with a parasite (lib/ptrace, Parasite; docs/ckpt-scan.md): a thread
// killed ckpt-scan leaves behind at any point finds its way back alone.

// sigactionSize is struct k_sigaction on x86_64.
const sigactionSize = 32

// injecting is true while a thread runs injected calls, from NewParasite
// to Cure. Exiting then is safe, but finishing is cleaner.
var injecting atomic.Bool

// injection is what the injection did, for -v, and the test hook.
type injection struct {
	calls   int
	threads int
	took    time.Duration
	step    func(what string) // called after every step (testhook.go)
}

// injectAll runs the injected calls in every thread of the task: the
// process-wide ones (brk, signal handlers, timers) in the leader, the
// per-thread ones (tid address, sigaltstack) in each.
func injectAll(t *image.Task, inj *injection) error {
	start := time.Now()
	defer func() { inj.took += time.Since(start) }()
	area, err := parasiteArea(t)
	if err != nil {
		return err
	}
	for _, th := range t.Threads {
		// A killed dump's parasite, which this one is about to overwrite.
		if r, ok := ptrace.WordsRegs(th.Regs); ok && area.Holds(r.Rip) {
			return fmt.Errorf("pid %d thread %d runs the parasite a killed dump left at "+
				"%#x and is about to leave it: dump again", t.PID, th.TID, r.Rip)
		}
	}
	for i := range t.Threads {
		if err := inject(t, &t.Threads[i], area, i == 0, inj); err != nil {
			return fmt.Errorf("pid %d: %w", t.PID, err)
		}
		inj.threads++
	}
	return nil
}

// parasiteArea finds the free tail of the task's vdso.
func parasiteArea(t *image.Task) (ptrace.Area, error) {
	for _, v := range t.Vmas {
		if v.Kind == image.VmaVdso {
			return ptrace.FindArea(t.PID, v.Start, v.End)
		}
	}
	return ptrace.Area{}, fmt.Errorf("pid %d has no [vdso] mapping to run system calls from", t.PID)
}

// inject runs the calls in one thread and puts it back exactly as it was.
func inject(t *image.Task, th *image.Thread, area ptrace.Area, leader bool, inj *injection) error {
	injecting.Store(true)
	defer injecting.Store(false)
	p, err := ptrace.NewParasite(th.TID, area)
	if err != nil {
		return err
	}
	p.Step = inj.step
	calls := &counted{p: p, n: &inj.calls}
	err = injectThread(calls, th)
	if err == nil && leader {
		if err = moveOut(p, th); err == nil {
			err = injectTask(calls, t)
		}
	}
	if cerr := p.Cure(); cerr != nil {
		return errors.Join(err, fmt.Errorf("tid %d: put back after injection: %w", th.TID, cerr))
	}
	return err
}

// counted is a parasite whose calls are counted.
type counted struct {
	p *ptrace.Parasite
	n *int
}

func (c *counted) Syscall(nr uintptr, args ...uint64) (uint64, error) {
	*c.n++
	return c.p.Syscall(nr, args...)
}

// injectTask reads what belongs to the whole process: the program break,
// the signal handlers, prctl state, the timers.
func injectTask(c *counted, t *image.Task) error {
	// brk(0) fails never: it returns the current break.
	brk, err := c.Syscall(unix.SYS_BRK, 0)
	if err != nil {
		return err
	}
	t.MM.Brk = brk
	buf, err := batch(c.p, 64, sigactionSize, func(i int, at uint64) error {
		sig := uint64(i + 1)
		if sig == uint64(unix.SIGKILL) || sig == uint64(unix.SIGSTOP) {
			return nil
		}
		// rt_sigaction(sig, NULL, &old, sizeof(sigset_t))
		if _, err := c.Syscall(unix.SYS_RT_SIGACTION, sig, 0, at, 8); err != nil {
			return fmt.Errorf("signal %d: %w", sig, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	t.SigActions = make([]image.SigAction, 64)
	for sig := 1; sig <= 64; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue // always default; their slots hold nothing
		}
		b := buf[(sig-1)*sigactionSize:]
		t.SigActions[sig-1] = image.SigAction{
			Handler: le.Uint64(b), Flags: le.Uint64(b[8:]),
			Restorer: le.Uint64(b[16:]), Mask: le.Uint64(b[24:]),
		}
	}
	if err := injectPrctl(c, t); err != nil {
		return err
	}
	return injectTimers(c, t)
}

// injectThread reads what belongs to one thread: its tid address
// (prctl PR_GET_TID_ADDRESS, one pointer), its sigaltstack (stack_t, 24
// bytes), its parent-death signal (an int) and its timer slack (the
// call's result).
func injectThread(c *counted, th *image.Thread) error {
	out, _ := c.p.Out()
	if _, err := c.Syscall(unix.SYS_PRCTL, unix.PR_GET_TID_ADDRESS, out); err != nil {
		return err
	}
	if _, err := c.Syscall(unix.SYS_SIGALTSTACK, 0, out+8); err != nil {
		return err
	}
	if _, err := c.Syscall(unix.SYS_PRCTL, unix.PR_GET_PDEATHSIG, out+32, 0, 0, 0); err != nil {
		return err
	}
	slack, err := c.Syscall(unix.SYS_PRCTL, unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		return err
	}
	b := make([]byte, 36)
	if err := c.p.ReadOut(b); err != nil {
		return err
	}
	le := binary.LittleEndian
	th.ClearChildTid = le.Uint64(b)
	th.AltStack = image.AltStack{SP: le.Uint64(b[8:]), Flags: int32(le.Uint32(b[16:])),
		Size: le.Uint64(b[24:])}
	th.PDeathSig, th.TimerSlack = int(int32(le.Uint32(b[32:]))), slack
	return nil
}

// injectPrctl reads the process-wide state only prctl gives: whether it
// is a child subreaper (an int), whether it is dumpable and whether
// transparent huge pages are off for it (the calls' results). Like every
// injected call, each gets all its arguments: the others would be what
// the thread's registers held, and some prctl options refuse non-zero
// unused arguments.
func injectPrctl(c *counted, t *image.Task) error {
	out, _ := c.p.Out()
	if _, err := c.Syscall(unix.SYS_PRCTL, unix.PR_GET_CHILD_SUBREAPER, out, 0, 0, 0); err != nil {
		return err
	}
	dumpable, err := c.Syscall(unix.SYS_PRCTL, unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil {
		return err
	}
	thp, err := c.Syscall(unix.SYS_PRCTL, unix.PR_GET_THP_DISABLE, 0, 0, 0, 0)
	if err != nil {
		return err
	}
	b := make([]byte, 4)
	if err := c.p.ReadOut(b); err != nil {
		return err
	}
	t.Prctl = &image.Prctl{ChildSubreaper: binary.LittleEndian.Uint32(b) != 0,
		Dumpable: int(dumpable), THPDisable: int(thp)}
	return nil
}

// bigOut is the size of the output buffer for the process-wide calls.
const bigOut = 1024

// moveOut gives the parasite a larger output buffer: the top of the
// thread's alternate signal stack when it has one and does not run on it
// (memory no signal may be relied on to leave alone, and where even a
// thread on a small stack has room), else below the first one, deeper
// below its red zone.
func moveOut(p *ptrace.Parasite, th *image.Thread) error {
	const ssOnStack, ssDisable = 1, 2
	as := th.AltStack
	if as.Flags&(ssOnStack|ssDisable) == 0 && as.Size >= bigOut/2 {
		return p.MoveOut(as.SP+as.Size, int(min(as.Size-16, bigOut)))
	}
	out, _ := p.Out()
	return p.MoveOut(out, bigOut)
}

// batch runs n injected calls that each write size bytes, call i writing
// at the address it is given, and returns what they wrote, end to end. It
// reads the parasite's output buffer back whenever it is full.
func batch(p *ptrace.Parasite, n, size int, call func(i int, at uint64) error) ([]byte, error) {
	out, room := p.Out()
	per := room / size
	buf := make([]byte, n*size)
	for first := 0; first < n; first += per {
		k := min(per, n-first)
		for i := range k {
			if err := call(first+i, out+uint64(i*size)); err != nil {
				return nil, err
			}
		}
		if err := p.ReadOut(buf[first*size : (first+k)*size]); err != nil {
			return nil, err
		}
	}
	return buf, nil
}
