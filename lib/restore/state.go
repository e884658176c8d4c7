package restore

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/ptrace"
	"golang.org/x/sys/unix"
)

// openFlagsKept are the open flags from fdinfo that are given back to
// open; creation and truncation never are.
const openFlagsKept = unix.O_ACCMODE | unix.O_APPEND | unix.O_NONBLOCK | unix.O_DSYNC |
	unix.O_SYNC | unix.O_DIRECT | unix.O_LARGEFILE | unix.O_DIRECTORY | unix.O_NOFOLLOW |
	unix.O_NOATIME | unix.O_CLOEXEC | unix.O_PATH

// openFile opens path in the task and returns the new descriptor.
func (t *task) openFile(path string, flags int) (uint64, error) {
	p, err := t.cstring(path)
	if err != nil {
		return 0, err
	}
	if flags&unix.O_TMPFILE == unix.O_TMPFILE {
		// Opened with O_TMPFILE: fdinfo shows its O_DIRECTORY bit, but
		// the file, restored as a ghost, is a regular file.
		flags &^= unix.O_TMPFILE
	}
	return t.call("open "+path, unix.SYS_OPENAT, atFDCWD, p,
		uint64(flags&openFlagsKept), 0)
}

// restoreFds opens every saved descriptor at its number, with its flags
// and offset. An fd that shares its open file description with an
// earlier one (Shares) is a dup of it, so the offset stays shared. Epolls
// come last, once their targets are open, and get their targets then.
func (t *task) restoreFds(fds []image.Fd, files map[int]*image.File,
	open func(*image.File, int) (uint64, error)) error {
	fds = slices.Clone(fds)
	slices.SortFunc(fds, fdOrder(files)) // by number, epolls last
	for _, fd := range fds {
		if err := t.restoreFd(fd, files, open); err != nil {
			return fmt.Errorf("pid %d fd %d (%s): %w", t.pid, fd.Fd, fd.Link, err)
		}
	}
	return t.addEpollTargets(fds, files)
}

func (t *task) restoreFd(fd image.Fd, files map[int]*image.File,
	open func(*image.File, int) (uint64, error)) error {
	cloexec := uint64(0)
	if fd.Flags&unix.O_CLOEXEC != 0 {
		cloexec = unix.O_CLOEXEC
	}
	if fd.Shared && fd.SharesPID != 0 {
		return t.takeFd(fd.SharesPID, fd.Shares, fd.Fd, cloexec)
	}
	if fd.Shared {
		_, err := t.call("dup3", unix.SYS_DUP3, uint64(fd.Shares), uint64(fd.Fd), cloexec)
		return err
	}
	f, ok := files[fd.FileID]
	if !ok {
		return fmt.Errorf("no file resolved for it (was the stream passed through ckpt-files?)")
	}
	got, err := open(f, fd.Flags)
	if err != nil {
		return err
	}
	if got != uint64(fd.Fd) {
		if _, err := t.call("dup3", unix.SYS_DUP3, got, uint64(fd.Fd), cloexec); err != nil {
			return err
		}
		if _, err := t.call("close", unix.SYS_CLOSE, got); err != nil {
			return err
		}
	}
	if fd.Flags&unix.O_PATH != 0 {
		return nil
	}
	if f.Mode&unix.S_IFMT == unix.S_IFDIR {
		return t.seekDir(fd.Fd, fd.Pos)
	}
	if f.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil
	}
	_, err = t.call("lseek", unix.SYS_LSEEK, uint64(fd.Fd), uint64(fd.Pos), unix.SEEK_SET)
	return err
}

// restoreFsState restores cwd, root and umask.
func (t *task) restoreFsState(tk *image.Task) error {
	p, err := t.cstring(tk.Cwd)
	if err != nil {
		return err
	}
	if _, err := t.call("chdir "+tk.Cwd, unix.SYS_CHDIR, p); err != nil {
		return err
	}
	if tk.Root != "/" && tk.Root != "" {
		p, err := t.cstring(tk.Root)
		if err != nil {
			return err
		}
		if _, err := t.call("chroot "+tk.Root, unix.SYS_CHROOT, p); err != nil {
			return err
		}
	}
	_, err = t.call("umask", unix.SYS_UMASK, uint64(tk.Umask))
	return err
}

// restoreRlimits sets every limit that differs from the one the task
// inherited from the restorer.
func (t *task) restoreRlimits(limits []image.Rlimit) error {
	for _, l := range limits {
		var cur unix.Rlimit
		if err := unix.Prlimit(t.pid, l.Resource, nil, &cur); err != nil {
			return fmt.Errorf("pid %d: read rlimit %d: %w", t.pid, l.Resource, err)
		}
		if cur.Cur == l.Cur && cur.Max == l.Max {
			continue
		}
		p, err := t.words(l.Cur, l.Max)
		if err != nil {
			return err
		}
		_, err = t.call(fmt.Sprintf("prlimit resource %d", l.Resource), unix.SYS_PRLIMIT64,
			0, uint64(l.Resource), p, 0)
		if err != nil {
			return err
		}
	}
	return nil
}

// restoreSigactions installs every signal disposition that is not the
// default one.
func (t *task) restoreSigactions(acts []image.SigAction) error {
	for i, a := range acts {
		sig := i + 1
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) || a == (image.SigAction{}) {
			continue
		}
		p, err := t.words(a.Handler, a.Flags, a.Restorer, a.Mask)
		if err != nil {
			return err
		}
		_, err = t.call(fmt.Sprintf("rt_sigaction %d", sig), unix.SYS_RT_SIGACTION,
			uint64(sig), p, 0, 8)
		if err != nil {
			return err
		}
	}
	return nil
}

// restoreThreadState restores what belongs to the thread itself: rseq,
// the tid address, the robust futex list and the alternate signal stack.
func (t *task) restoreThreadState(th *image.Thread) error {
	if th.Rseq.Addr != 0 {
		_, err := t.call("rseq", unix.SYS_RSEQ, th.Rseq.Addr, uint64(th.Rseq.Len), 0,
			uint64(th.Rseq.Sig))
		if err != nil {
			return err
		}
	}
	if _, err := t.call("set_tid_address", unix.SYS_SET_TID_ADDRESS, th.ClearChildTid); err != nil {
		return err
	}
	if th.RobustList != 0 {
		_, err := t.call("set_robust_list", unix.SYS_SET_ROBUST_LIST, th.RobustList, th.RobustLen)
		if err != nil {
			return err
		}
	}
	if th.AltStack.Flags&ssDisable == 0 && th.AltStack.SP != 0 {
		b := binary.LittleEndian.AppendUint64(nil, th.AltStack.SP)
		b = binary.LittleEndian.AppendUint64(b, uint64(uint32(th.AltStack.Flags&^ssOnStack)))
		b = binary.LittleEndian.AppendUint64(b, th.AltStack.Size)
		p, err := t.put(b)
		if err != nil {
			return err
		}
		if _, err := t.call("sigaltstack", unix.SYS_SIGALTSTACK, p, 0); err != nil {
			return err
		}
	}
	return nil
}

// restoreCreds sets the bounding set, groups, gids, uids, the other
// capability sets and no_new_privs (caps.go), always, last of all since
// they may take away the right to do the rest, and checks the
// capabilities that result.
func (t *task) restoreCreds(c image.Creds) error {
	if c.Seccomp != 0 {
		return fmt.Errorf("%s: seccomp mode %d is not supported yet", t.who, c.Seccomp)
	}
	if err := t.capsBeforeIDs(c); err != nil {
		return err
	}
	groups := make([]byte, 0, 4*len(c.Groups))
	for _, g := range c.Groups {
		groups = binary.LittleEndian.AppendUint32(groups, g)
	}
	gp := uint64(0)
	if len(groups) > 0 {
		var err error
		if gp, err = t.put(groups); err != nil {
			return err
		}
	}
	steps := []struct {
		name string
		nr   uintptr
		args []uint64
	}{
		{"setgroups", unix.SYS_SETGROUPS, []uint64{uint64(len(c.Groups)), gp}},
		{"setresgid", unix.SYS_SETRESGID, []uint64{uint64(c.GID[0]), uint64(c.GID[1]), uint64(c.GID[2])}},
		{"setfsgid", unix.SYS_SETFSGID, []uint64{uint64(c.GID[3])}},
		{"setresuid", unix.SYS_SETRESUID, []uint64{uint64(c.UID[0]), uint64(c.UID[1]), uint64(c.UID[2])}},
		{"setfsuid", unix.SYS_SETFSUID, []uint64{uint64(c.UID[3])}},
	}
	for _, s := range steps {
		if _, err := t.call(s.name, s.nr, s.args...); err != nil {
			return err
		}
	}
	return t.capsAfterIDs(c)
}

// finalRegs turns the registers saved at the interrupt stop into the ones
// the task resumes with. A system call interrupted with a restart code
// keeps its registers as they were (the call in orig_rax, the code in
// rax): release detaches such a thread so that the kernel applies its
// restart rule to them (ptrace.DetachRestarting). One that can only
// restart in the task that started it (-ERESTART_RESTARTBLOCK) returns
// EINTR, as the kernel would.
func finalRegs(th *image.Thread) (*unix.PtraceRegs, error) {
	r, ok := ptrace.WordsRegs(th.Regs)
	if !ok {
		return nil, fmt.Errorf("tid %d: %d register words in the image", th.TID, len(th.Regs))
	}
	if restarting(r) {
		return r, nil
	}
	if int64(r.Orig_rax) >= 0 && int64(r.Rax) == -516 { // ERESTART_RESTARTBLOCK
		r.Rax = uint64(^uint64(unix.EINTR) + 1)
	}
	r.Orig_rax = ^uint64(0)
	return r, nil
}

// restarting reports whether r are the registers of a system call
// interrupted with a restart code the kernel can apply in any task:
// -ERESTARTSYS, -ERESTARTNOINTR or -ERESTARTNOHAND.
func restarting(r *unix.PtraceRegs) bool {
	if int64(r.Orig_rax) < 0 {
		return false
	}
	switch int64(r.Rax) {
	case -512, -513, -514:
		return true
	}
	return false
}

// atFDCWD is AT_FDCWD (-100) as a system call argument.
const atFDCWD = ^uint64(99)

// sigaltstack flags (stack_t.ss_flags).
const (
	ssOnStack = 1
	ssDisable = 2
)

// setComm gives the task its old command name (prctl PR_SET_NAME); the
// stub's exec left it named after the restorer.
func (t *task) setComm(comm string) error {
	if len(comm) > 15 {
		comm = comm[:15]
	}
	p, err := t.cstring(comm)
	if err != nil {
		return err
	}
	_, err = t.call("prctl PR_SET_NAME", unix.SYS_PRCTL, unix.PR_SET_NAME, p)
	return err
}
