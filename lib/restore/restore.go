// Package restore rebuilds a dumped process tree from its record stream
// and lets it run: same PIDs, memory, registers, files and signal state.
//
// Every new task is driven from outside with ptrace (docs/ckpt-restore.md
// lists the steps): a stub is forked and stopped at exec, the root with
// its saved PID is cloned from it with clone3 and set_tid, every other
// process from its restored parent the same way, and each is rebuilt by
// system calls injected into it, registers last.
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
	// AcceptUnfrozen restores an image whose memory was read while
	// nothing held the tree (Header.Unfrozen) instead of refusing.
	AcceptUnfrozen bool
	// Note, when set, receives short messages for people (waits, steps).
	Note func(string)
	// PIDNS restores the tree into a new PID namespace, where its
	// processes have their saved PIDs whatever PIDs are taken here, so a
	// copy can run beside the original. The namespace's init (PID 1 in
	// it) is this program run as NSInitName: see NSInit. The tree gets a
	// new IPC namespace too, so its System V segments are its own; /proc,
	// mounts and the rest are this machine's.
	PIDNS bool
}

// Result says what was restored.
type Result struct {
	PIDs    []int // every process, the root first; zombies included
	Zombies int
	// Helpers counts the tasks made, and ended, to make sessions and
	// groups whose leaders were gone.
	Helpers   int
	Threads   int // every thread restored, main threads included
	Pages     int
	PageBytes int64
	Fds       int
	// NSInit and RootHere are, with Options.PIDNS, the PIDs here of the
	// new namespace's init and of the restored root.
	NSInit, RootHere int
}

// Restore reads a record stream and rebuilds the process tree it holds.
// verify is called after the end record and before anything is let run
// (for an archive, it checks the trailer and whole checksum); a failure
// there, like any other, kills what was created. On success the tree
// runs, detached, and the caller may exit.
func Restore(r *stream.Reader, verify func() error, opt Options) (*Result, error) {
	if opt.PIDWait == 0 {
		opt.PIDWait = 10 * time.Second
	}
	runtime.LockOSThread()
	if opt.PIDNS {
		// A copy beside the original gets System V IPC of its own: its
		// segments are made again with their shmids without touching
		// the original's. Only this thread, and the stub it forks,
		// enter the new namespace; the thread stays locked, so the
		// runtime ends it with its goroutine instead of reusing it.
		if err := unix.Unshare(unix.CLONE_NEWIPC); err != nil {
			return nil, fmt.Errorf("new IPC namespace for --pidns: %w", err)
		}
	} else {
		defer runtime.UnlockOSThread()
	}
	cpus, err := pinSelf()
	if err != nil {
		return nil, err
	}
	defer unix.SchedSetaffinity(0, &cpus)
	rs := &restorer{opt: opt, files: map[int]*image.File{}, ghosts: ghost.NewHolder(),
		shmem: ghost.NewShmem(), pipes: ghost.NewPipes(), fds: map[int][]image.Fd{},
		byPID: map[int]*proc{}, tree: image.NewTree(), helpers: map[int]*helper{}, cpus: cpus,
		res: &Result{}}
	rs.shmem.SysVWait, rs.shmem.Note = opt.PIDWait, opt.Note
	err = rs.run(r, verify)
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
	shmem *ghost.Shmem
	// pipes holds both ends of every pipe, made and filled in the
	// restorer, until every task has opened its own.
	pipes  *ghost.Pipes
	sealed bool
	// rootPID is the header's root_pid: the first task record's PID.
	rootPID int
	fds     map[int][]image.Fd // by PID
	// procs are the processes created so far, in stream order: every
	// parent before its children.
	procs []*proc
	byPID map[int]*proc
	// tree places each process in its session and group.
	tree *image.Tree
	// helpers are the tasks made for sessions and groups whose leaders
	// are gone, by PID, until they exit.
	helpers map[int]*helper
	stub    int
	// nsInit is the stub when it is the init of a new PID namespace: it
	// stays, and is let go last.
	nsInit *task
	// cpus is the restorer's CPU affinity before it pinned itself: what
	// a thread gets back when the image has no affinity for it.
	cpus unix.CPUSet
	res  *Result
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
	if h.Unfrozen && !rs.opt.AcceptUnfrozen {
		return errors.New("stream header: the image's memory was read while nothing held " +
			"the tree frozen (ckpt-scan wrote to a file, and the processes ran on): its " +
			"pages may not match its registers; restore with --accept-unfrozen to try anyway")
	}
	rs.rootPID = h.RootPID
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
	if len(rs.procs) == 0 {
		return errors.New("the image holds no task")
	}
	if err := verify(); err != nil {
		return err
	}
	return rs.finish()
}

func checkHeader(h *image.Header) error {
	if h.Arch != runtime.GOARCH {
		return fmt.Errorf("stream header: the image is for %s, this machine is %s",
			h.Arch, runtime.GOARCH)
	}
	if h.PageSize != os.Getpagesize() {
		return fmt.Errorf("stream header: the image has %d-byte pages, this machine %d",
			h.PageSize, os.Getpagesize())
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
		return rs.addFile(&f)
	case image.KindGhostData:
		var d image.GhostData
		if err := rec.Decode(&d); err != nil {
			return r.Errorf("%w", err)
		}
		write := rs.ghosts.Write
		switch {
		case rs.shmem.Has(d.FileID):
			write = rs.shmem.Write
		case rs.pipes.Has(d.FileID):
			write = rs.pipes.Write
		}
		if err := write(&d); err != nil {
			return r.Errorf("%w", err)
		}
	case image.KindFd:
		var fd image.Fd
		if err := rec.Decode(&fd); err != nil {
			return r.Errorf("%w", err)
		}
		if pr := rs.byPID[fd.PID]; pr == nil || pr.tk.Zombie {
			return r.Errorf("fd %d of pid %d comes before its task record", fd.Fd, fd.PID)
		}
		rs.fds[fd.PID] = append(rs.fds[fd.PID], fd)
	case image.KindTask:
		var tk image.Task
		if err := rec.Decode(&tk); err != nil {
			return r.Errorf("%w", err)
		}
		if err := rs.checkOrder(&tk); err != nil {
			return r.Errorf("%w", err)
		}
		if !rs.sealed {
			rs.sealed = true
			if err := rs.ghosts.Seal(); err != nil {
				return err
			}
		}
		return rs.prepare(&tk)
	case image.KindPages:
		// p.Data is a view of the record body, valid until the next record.
		var p image.Pages
		if err := image.DecodePages(rec.Body, &p); err != nil {
			return r.Errorf("%w", err)
		}
		return rs.writePages(r, &p)
	}
	// Records of other kinds are not restore's business.
	return nil
}

// addFile takes one File record: a ghost, remap, shared memory object or
// pipe is made in the restorer now; a linked file or an anon one is
// checked.
func (rs *restorer) addFile(f *image.File) error {
	switch {
	case ghost.Holds(f):
		if err := rs.ghosts.Add(f); err != nil {
			return err
		}
	case ghost.HoldsShmem(f):
		if err := rs.shmem.Add(f); err != nil {
			return err
		}
	case isAnon(f):
		if err := checkAnon(f); err != nil {
			return err
		}
	case ghost.HoldsPipe(f):
		if err := rs.pipes.Add(f); err != nil {
			return err
		}
	default:
		if err := checkFile(f, rs.opt.AcceptChanged); err != nil {
			return err
		}
	}
	rs.files[f.ID] = f
	return nil
}

// writePages copies one pages record into its process.
func (rs *restorer) writePages(r *stream.Reader, p *image.Pages) error {
	pr := rs.byPID[p.PID]
	if pr == nil || pr.tk.Zombie {
		return r.Errorf("pages of pid %d come before its task record", p.PID)
	}
	if len(p.Data) == 0 || len(p.Data)%os.Getpagesize() != 0 {
		return r.Errorf("pages of pid %d at %#x: %d bytes is not whole pages",
			p.PID, p.Addr, len(p.Data))
	}
	if err := pr.t.writePages(p, pr.tk.Vmas); err != nil {
		return err
	}
	rs.res.Pages += len(p.Data) / os.Getpagesize()
	rs.res.PageBytes += int64(len(p.Data))
	return nil
}

// startStub starts the stub and maps the injection area in it, at an
// address free in both its layout and the saved one.
func (rs *restorer) startStub(vmas []image.Vma) (*task, error) {
	pid, err := startStub(rs.opt.PIDNS)
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
	area, err := freeRange(areaSize, vmas, cur)
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
	t := newTask(pid, j, area)
	if rs.opt.PIDNS {
		t.vpid, t.inNS, t.who = 1, true, fmt.Sprintf("namespace init %d", pid)
		rs.nsInit = t
	}
	return t, nil
}
