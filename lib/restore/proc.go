package restore

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ckpt/ckpt/lib/ghost"
	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// proc is one process of the tree being restored.
type proc struct {
	tk *image.Task
	t  *task // its main thread
	// threads are its other threads created so far, in image order.
	threads []*task
	// sid and pgid are the session and group it is to have.
	sid, pgid int
}

// prepare creates one process with its saved PID, as a child of its
// restored parent (the root: of a throwaway stub), and for a live one
// its address space, ready for pages.
func (rs *restorer) prepare(tk *image.Task) error {
	if !tk.Zombie && (len(tk.Threads) == 0 || tk.Threads[0].TID != tk.PID) {
		return fmt.Errorf("pid %d: the image does not list its main thread first", tk.PID)
	}
	if err := rs.waitFree(tk); err != nil {
		return err
	}
	pr := &proc{tk: tk}
	from, parent, err := rs.parentOf(pr)
	if err != nil {
		return err
	}
	t, err := rs.clone(from, parent, tk.PID)
	if err != nil {
		return err
	}
	pr.t = t
	rs.procs = append(rs.procs, pr)
	rs.byPID[tk.PID] = pr
	if rs.stub != 0 && rs.nsInit == nil {
		// The root's stub is no longer needed; the root is adopted by
		// init.
		kill(rs.stub)
		rs.stub = 0
	}
	if pr.sid == tk.PID {
		if _, err := t.call("setsid", unix.SYS_SETSID); err != nil {
			return err
		}
	}
	if tk.Zombie {
		return nil
	}
	return rs.build(pr)
}

// clone clones pid from task from, as a child of parent: from itself,
// or from a session helper, whose parent it is. A PID that no process has
// may still be taken as the process group or session of a zombie that
// init has not reaped yet (right after a dump with --kill): that is
// waited for too.
func (rs *restorer) clone(from, parent *task, pid int) (*task, error) {
	deadline := time.Now().Add(rs.opt.PIDWait)
	said := false
	for {
		t, err := cloneWithPID(from, parent, pid)
		if !errors.Is(err, errPIDTaken) || rs.opt.PIDNS || time.Now().After(deadline) {
			return t, err
		}
		if _, _, serr := pidState(pid); !errors.Is(serr, os.ErrNotExist) {
			return t, err
		}
		if !said {
			rs.note("pid %d is still the group or session of a process not reaped yet; "+
				"waiting up to %v", pid, rs.opt.PIDWait)
			said = true
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFree waits until the PID and TIDs of tk are free.
func (rs *restorer) waitFree(tk *image.Task) error {
	if err := rs.waitPIDFree(tk.PID, tk.Comm); err != nil {
		return err
	}
	for _, th := range tk.Threads[min(1, len(tk.Threads)):] {
		if err := rs.waitPIDFree(th.TID, tk.Comm); err != nil {
			return fmt.Errorf("pid %d thread %d: %w", tk.PID, th.TID, err)
		}
	}
	return nil
}

// waitPIDFree waits until pid is free, here or, with Options.PIDNS, in
// the new namespace, where every PID but its init's is.
func (rs *restorer) waitPIDFree(pid int, comm string) error {
	if !rs.opt.PIDNS {
		return waitPIDFree(pid, rs.opt.PIDWait, rs.opt.Note)
	}
	if pid == 1 {
		return fmt.Errorf("pid 1 (%s): in a new PID namespace that is its init; "+
			"restoring a namespace's init is not supported yet", comm)
	}
	return nil
}

// parentOf places pr in the tree: it sets the session and group pr is to
// have, and returns the task to clone it from and its parent. The first
// process is the root: it is cloned from a stub and leads a session and a
// group of its own, which stand for those it was in whose leaders were
// outside the tree. Every other process is cloned from its parent, which
// the image lists before it, or, in a session whose leader is gone, from
// that session's helper (image.Tree).
func (rs *restorer) parentOf(pr *proc) (from, parent *task, err error) {
	tk := pr.tk
	if len(rs.procs) == 0 && tk.Zombie {
		return nil, nil, fmt.Errorf("pid %d: the root of the image is a zombie", tk.PID)
	}
	place, err := rs.tree.Add(tk)
	if err != nil {
		return nil, nil, err
	}
	pr.sid, pr.pgid = place.SID, place.PGID
	if len(rs.procs) == 0 {
		stub, err := rs.startStub(tk.Vmas)
		return stub, stub, err
	}
	parent = rs.byPID[tk.PPID].t
	if place.Helper == nil {
		return parent, parent, nil
	}
	if place.NewHelper {
		if err := rs.startHelper(place.Helper, parent); err != nil {
			return nil, nil, err
		}
	}
	return rs.helpers[place.Helper.PID].t, parent, nil
}

// build gives a new live process its address space: it closes what it
// inherited, unmaps it, moves the vdso and vvar areas and maps every saved
// mapping.
func (rs *restorer) build(pr *proc) error {
	t, tk := pr.t, pr.tk
	if _, err := t.call("close_range", unix.SYS_CLOSE_RANGE, 0, ^uint64(0)>>32, 0); err != nil {
		return err
	}
	if err := t.moveArea(tk.Vmas); err != nil {
		return err
	}
	if err := t.clearAddressSpace(); err != nil {
		return err
	}
	if err := t.moveSpecials(tk.Vmas); err != nil {
		return err
	}
	return rs.mapAll(pr)
}

// mapAll maps every saved mapping of pr, opening the files behind them in
// the task for as long as it takes. SysV segments are attached first.
func (rs *restorer) mapAll(pr *proc) error {
	t := pr.t
	vmas, attaches := rs.splitSysV(pr.tk.Vmas)
	if err := rs.attachSysV(t, attaches); err != nil {
		return err
	}
	opened := map[int]uint64{}
	for _, v := range vmas {
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
		if f.Kind == image.FileShmem || sharedMayWrite(vmas, v.FileID) {
			// Shared anonymous memory may always be made writable
			// (VM_MAYWRITE); a shared file mapping only if the file was
			// open for writing (a memfd sealed against writes refuses a
			// mapping that may write).
			flags = unix.O_RDWR | unix.O_CLOEXEC
		}
		fd, err := rs.openFile(t, f, flags)
		if err != nil {
			return err
		}
		opened[v.FileID] = fd
	}
	if err := t.mapVmas(vmas, opened); err != nil {
		return err
	}
	for _, fd := range opened {
		if _, err := t.call("close", unix.SYS_CLOSE, fd); err != nil {
			return err
		}
	}
	return nil
}

// openFile opens f in task t: a ghost, remap, shared memory object or
// pipe through the restorer's held file, an eventfd, signalfd, timerfd or
// epoll by its system call, anything else by its path.
func (rs *restorer) openFile(t *task, f *image.File, flags int) (uint64, error) {
	if isAnon(f) {
		return t.openAnon(f, flags)
	}
	path := f.Path
	var err error
	switch {
	case ghost.Holds(f):
		path, err = rs.ghosts.Path(f.ID)
	case ghost.HoldsShmem(f):
		path, err = rs.shmem.Path(f.ID)
	case ghost.HoldsPipe(f):
		path, err = rs.pipes.Path(f.ID)
	}
	if err != nil {
		return 0, err
	}
	if path != f.Path {
		// A held file is opened through the restorer's /proc/PID/fd/N,
		// a link that O_NOFOLLOW (shm_open's flag) would refuse.
		flags &^= unix.O_NOFOLLOW
	}
	return t.openFile(path, flags)
}
