// Package restore rebuilds a dumped process from its record stream and
// lets it run: same PID, memory, registers, files and signal state.
//
// Every new task is driven from outside with ptrace (docs/ckpt-restore.md
// lists the steps): a stub is forked and stopped at exec, a child with
// the saved PID is cloned from it with clone3 and set_tid, and that child
// is rebuilt by system calls injected into it, registers last.
//
// Preconditions: the caller is root (clone3 with set_tid and PR_SET_MM_MAP
// with an exe fd need CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN).
package restore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/ckpt/ckpt/lib/ghost"
	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/ptrace"
	"github.com/ckpt/ckpt/lib/stream"
	"golang.org/x/sys/unix"
)

// Options tune a restore.
type Options struct {
	// PIDWait is how long to wait for a zombie that still holds a saved
	// PID (its parent has not reaped it yet). Zero means 10 seconds.
	PIDWait time.Duration
	// AcceptChanged restores linked files whose size or mtime changed
	// since the dump instead of refusing.
	AcceptChanged bool
	// Note, when set, receives short messages for people (waits, steps).
	Note func(string)
}

// Result says what was restored.
type Result struct {
	PIDs      []int
	Threads   int // every thread restored, main threads included
	Pages     int
	PageBytes int64
	Fds       int
}

// Restore reads a record stream and rebuilds the process it holds. verify
// is called after the end record and before anything is let run (for an
// archive, it checks the trailer and whole checksum); a failure there,
// like any other, kills what was created. On success the process runs,
// detached, and the caller may exit.
func Restore(r *stream.Reader, verify func() error, opt Options) (*Result, error) {
	if opt.PIDWait == 0 {
		opt.PIDWait = 10 * time.Second
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rs := &restorer{opt: opt, files: map[int]*image.File{}, ghosts: ghost.NewHolder(),
		shmem: ghost.NewShmem(), res: &Result{}}
	err := rs.run(r, verify)
	if err != nil {
		rs.abort()
		return nil, err
	}
	return rs.res, nil
}

type restorer struct {
	opt   Options
	files map[int]*image.File
	// ghosts holds the ghost and remap files open in the restorer, under
	// their old names, for the tasks to open; sealed once the first task
	// record comes, after every file and ghost-data record.
	ghosts *ghost.Holder
	// shmem holds the shared anonymous memory objects, made and filled
	// in the restorer, for every task to map.
	shmem  *ghost.Shmem
	sealed bool
	fds    []image.Fd
	tk     *image.Task
	t      *task
	// threads are the threads of t created so far, in image order.
	threads []*task
	stub    int
	res     *Result
}

func (rs *restorer) note(format string, args ...any) {
	if rs.opt.Note != nil {
		rs.opt.Note(fmt.Sprintf(format, args...))
	}
}

func (rs *restorer) run(r *stream.Reader, verify func() error) error {
	h, err := r.Header()
	if err != nil {
		return err
	}
	if err := checkHeader(h); err != nil {
		return err
	}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := rs.record(r, rec); err != nil {
			return err
		}
	}
	if rs.tk == nil {
		return errors.New("the image holds no task")
	}
	if err := verify(); err != nil {
		return err
	}
	return rs.finish()
}

func checkHeader(h *image.Header) error {
	if h.Arch != runtime.GOARCH {
		return fmt.Errorf("the image is for %s, this machine is %s", h.Arch, runtime.GOARCH)
	}
	if h.PageSize != os.Getpagesize() {
		return fmt.Errorf("the image has %d-byte pages, this machine %d", h.PageSize, os.Getpagesize())
	}
	return nil
}

func (rs *restorer) record(r *stream.Reader, rec stream.Record) error {
	switch rec.Kind {
	case image.KindFile:
		var f image.File
		if err := rec.Decode(&f); err != nil {
			return r.Errorf("%w", err)
		}
		switch {
		case ghost.Holds(&f):
			if err := rs.ghosts.Add(&f); err != nil {
				return err
			}
		case ghost.HoldsShmem(&f):
			if err := rs.shmem.Add(&f); err != nil {
				return err
			}
		default:
			if err := checkFile(&f, rs.opt.AcceptChanged); err != nil {
				return err
			}
		}
		rs.files[f.ID] = &f
	case image.KindGhostData:
		var d image.GhostData
		if err := rec.Decode(&d); err != nil {
			return r.Errorf("%w", err)
		}
		if rs.shmem.Has(d.FileID) {
			return rs.shmem.Write(&d)
		}
		return rs.ghosts.Write(&d)
	case image.KindFd:
		var fd image.Fd
		if err := rec.Decode(&fd); err != nil {
			return r.Errorf("%w", err)
		}
		rs.fds = append(rs.fds, fd)
	case image.KindTask:
		var tk image.Task
		if err := rec.Decode(&tk); err != nil {
			return r.Errorf("%w", err)
		}
		if rs.tk != nil {
			return fmt.Errorf("pid %d: the image holds more than one process: "+
				"process trees are not supported yet", tk.PID)
		}
		rs.tk = &tk
		if !rs.sealed {
			rs.sealed = true
			if err := rs.ghosts.Seal(); err != nil {
				return err
			}
		}
		return rs.prepare()
	case image.KindPages:
		// p.Data is a view of the record body, valid until the next record.
		var p image.Pages
		if err := image.DecodePages(rec.Body, &p); err != nil {
			return r.Errorf("%w", err)
		}
		if rs.tk == nil || p.PID != rs.tk.PID {
			return r.Errorf("pages of pid %d come before its task record", p.PID)
		}
		if len(p.Data) == 0 || len(p.Data)%os.Getpagesize() != 0 {
			return r.Errorf("pages of pid %d at %#x: %d bytes is not whole pages",
				p.PID, p.Addr, len(p.Data))
		}
		if err := rs.t.writePages(&p, rs.tk.Vmas); err != nil {
			return err
		}
		rs.res.Pages += len(p.Data) / os.Getpagesize()
		rs.res.PageBytes += int64(len(p.Data))
	}
	// Records of other kinds are not restore's business.
	return nil
}

// prepare creates the process with its saved PID and its address space,
// ready for pages.
func (rs *restorer) prepare() error {
	tk := rs.tk
	if len(tk.Threads) == 0 || tk.Threads[0].TID != tk.PID {
		return fmt.Errorf("pid %d: the image does not list its main thread first", tk.PID)
	}
	if err := waitPIDFree(tk.PID, rs.opt.PIDWait, rs.opt.Note); err != nil {
		return err
	}
	for _, th := range tk.Threads[1:] {
		if err := waitPIDFree(th.TID, rs.opt.PIDWait, rs.opt.Note); err != nil {
			return fmt.Errorf("pid %d thread %d: %w", tk.PID, th.TID, err)
		}
	}
	stub, err := rs.startStub()
	if err != nil {
		return err
	}
	t, err := cloneWithPID(stub, tk.PID)
	if err != nil {
		return err
	}
	rs.t = t
	// The stub is no longer needed; its child is adopted by init.
	kill(rs.stub)
	rs.stub = 0
	if _, err := t.call("setsid", unix.SYS_SETSID); err != nil {
		return err
	}
	if _, err := t.call("close_range", unix.SYS_CLOSE_RANGE, 0, ^uint64(0)>>32, 0); err != nil {
		return err
	}
	if err := t.clearAddressSpace(); err != nil {
		return err
	}
	if err := t.moveSpecials(tk.Vmas); err != nil {
		return err
	}
	return rs.mapAll()
}

// startStub starts the stub and maps the injection area in it, at an
// address free in both its layout and the saved one.
func (rs *restorer) startStub() (*task, error) {
	pid, err := startStub()
	if err != nil {
		return nil, err
	}
	rs.stub = pid
	cur, err := readMaps(pid)
	if err != nil {
		return nil, err
	}
	var insn uint64
	for _, r := range cur {
		if r.name == "[vdso]" {
			insn, err = ptrace.FindSyscall(pid, r.start, r.end)
			if err != nil {
				return nil, err
			}
		}
	}
	if insn == 0 {
		return nil, fmt.Errorf("stub %d has no vdso to find a syscall instruction in", pid)
	}
	area, err := freeRange(areaSize, rs.tk.Vmas, cur)
	if err != nil {
		return nil, err
	}
	j, err := ptrace.NewInjector(pid, insn)
	if err != nil {
		return nil, err
	}
	_, err = j.Syscall(unix.SYS_MMAP, area, areaSize,
		unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, ^uint64(0), 0)
	if err != nil {
		return nil, fmt.Errorf("stub %d: map injection area: %w", pid, err)
	}
	// syscall; int3
	if err := ptrace.WriteMem(pid, area, []byte{0x0f, 0x05, 0xcc}); err != nil {
		return nil, err
	}
	j.SetSyscallAddr(area)
	return newTask(pid, j, area), nil
}

// mapAll maps every saved mapping, opening the files behind them in the
// task for as long as it takes.
func (rs *restorer) mapAll() error {
	t := rs.t
	opened := map[int]uint64{}
	for _, v := range rs.tk.Vmas {
		shmem := v.Kind == image.VmaAnon && v.Shared
		if shmem && strings.HasPrefix(v.Name, "[anon_shmem:") {
			// The kernel names only memory it made for MAP_ANONYMOUS; a
			// mapping of the restored object's file cannot be named.
			rs.note("pid %d: mapping %#x-%#x: the name %s is not restored; "+
				"maps shows /dev/zero (deleted)", t.pid, v.Start, v.End, v.Name)
		}
		if v.Kind != image.VmaFile && !shmem || v.FileID == 0 {
			continue
		}
		if _, ok := opened[v.FileID]; ok {
			continue
		}
		f, ok := rs.files[v.FileID]
		if !ok {
			return fmt.Errorf("pid %d: mapping %#x-%#x (%s): file %d is not in the image",
				t.pid, v.Start, v.End, v.Name, v.FileID)
		}
		flags := unix.O_RDONLY | unix.O_CLOEXEC
		if v.Shared && v.Prot&unix.PROT_WRITE != 0 || ghost.HoldsShmem(f) {
			// Shared memory may always be made writable (VM_MAYWRITE).
			flags = unix.O_RDWR | unix.O_CLOEXEC
		}
		fd, err := rs.openFile(f, flags)
		if err != nil {
			return err
		}
		opened[v.FileID] = fd
	}
	if err := t.mapVmas(rs.tk.Vmas, opened); err != nil {
		return err
	}
	for _, fd := range opened {
		if _, err := t.call("close", unix.SYS_CLOSE, fd); err != nil {
			return err
		}
	}
	return nil
}

// finish restores everything but memory, creates the threads, loads
// every thread's registers and lets the process run.
func (rs *restorer) finish() error {
	t, tk := rs.t, rs.tk
	regs, err := allFinalRegs(tk)
	if err != nil {
		return err
	}
	if err := t.protect(tk.Vmas); err != nil {
		return err
	}
	if err := rs.restoreMM(); err != nil {
		return err
	}
	// Process-wide state first: the threads share it or inherit it.
	steps := []func() error{
		func() error { return t.restoreFds(rs.fds, rs.files, rs.openFile) },
		func() error { return t.restoreFsState(tk) },
		func() error { return t.restoreRlimits(tk.Rlimits) },
		func() error { return t.restoreSigactions(tk.SigActions) },
		func() error {
			_, err := t.call("personality", unix.SYS_PERSONALITY, uint64(tk.Personality))
			return err
		},
		rs.cloneThreads,
		// Every thread exists: a timer may signal one, a pending
		// signal may be one's alone.
		func() error { return t.restoreTimers(tk) },
		func() error { return t.restorePending(tk) },
		// The main thread's credentials last: clone3 with set_tid
		// needs the restorer's.
		func() error { return t.restoreThread(tk, &tk.Threads[0]) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	// Every file is open in the task: let the ghosts go, remove the
	// hidden links of remaps.
	if err := rs.ghosts.Close(); err != nil {
		return err
	}
	if err := rs.shmem.Close(); err != nil {
		return err
	}
	rs.res.Fds = len(rs.fds)
	// The last injected call removes the injection area itself; the
	// other threads made their last calls already.
	if _, err := t.call("munmap injection area", unix.SYS_MUNMAP, t.area, areaSize); err != nil {
		return err
	}
	return rs.release(regs)
}

// cloneThreads creates every thread but the main one from inside the
// process, with its TID, and restores its own state.
func (rs *restorer) cloneThreads() error {
	for i := range rs.tk.Threads[1:] {
		th := &rs.tk.Threads[i+1]
		nt, err := rs.t.cloneThread(th.TID)
		if nt != nil {
			rs.threads = append(rs.threads, nt)
		}
		if err != nil {
			return err
		}
		if err := nt.restoreThread(rs.tk, th); err != nil {
			return err
		}
	}
	return nil
}

// release loads every thread's registers, then detaches the threads and
// the main thread last.
func (rs *restorer) release(regs []*unix.PtraceRegs) error {
	all := append([]*task{rs.t}, rs.threads...)
	for i, t := range all {
		if err := t.loadRegs(&rs.tk.Threads[i], regs[i]); err != nil {
			return err
		}
	}
	for i := len(all) - 1; i >= 0; i-- {
		if err := ptrace.Detach(all[i].pid); err != nil {
			return fmt.Errorf("%s: %w", all[i].who, err)
		}
	}
	rs.res.PIDs = append(rs.res.PIDs, rs.t.pid)
	rs.res.Threads += len(all)
	rs.t, rs.threads = nil, nil
	return nil
}

// restoreMM sets the memory descriptor fields and the exe link.
func (rs *restorer) restoreMM() error {
	t, tk := rs.t, rs.tk
	exe, ok := rs.files[tk.ExeFileID]
	if !ok {
		return fmt.Errorf("pid %d: executable %s: no file resolved for it", t.pid, tk.Exe)
	}
	fd, err := rs.openFile(exe, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return err
	}
	if err := t.setMM(tk.MM, fd); err != nil {
		return err
	}
	_, err = t.call("close", unix.SYS_CLOSE, fd)
	return err
}

// abort kills whatever was created so far.
func (rs *restorer) abort() {
	rs.ghosts.Abort()
	rs.shmem.Abort()
	if rs.t != nil {
		var tids []int
		for _, th := range rs.threads {
			tids = append(tids, th.pid)
		}
		killAll(rs.t.pid, tids)
	}
	if rs.stub != 0 {
		kill(rs.stub)
	}
}

// openFile opens f in the task being restored: a ghost, remap or shared
// memory object through the restorer's held file, anything else by its
// path.
func (rs *restorer) openFile(f *image.File, flags int) (uint64, error) {
	path := f.Path
	var err error
	switch {
	case ghost.Holds(f):
		path, err = rs.ghosts.Path(f.ID)
	case ghost.HoldsShmem(f):
		path, err = rs.shmem.Path(f.ID)
	}
	if err != nil {
		return 0, err
	}
	return rs.t.openFile(path, flags)
}
