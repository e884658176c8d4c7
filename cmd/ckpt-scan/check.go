package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/ckpt/ckpt/lib/freeze"
	"github.com/ckpt/ckpt/lib/procfs"
)

// check refuses, before anything is frozen, a PID that ckpt-scan cannot or
// must not dump, with a message that says why. It returns the process
// named by PID and start time.
func check(pid int) (freeze.Task, error) {
	st, err := procfs.ReadStat(pid)
	if errors.Is(err, fs.ErrNotExist) {
		return freeze.Task{}, fmt.Errorf("pid %d does not exist", pid)
	}
	if err != nil {
		return freeze.Task{}, err
	}
	status, err := procfs.ReadStatus(pid)
	if err != nil {
		return freeze.Task{}, err
	}
	name := fmt.Sprintf("pid %d (%s)", pid, st.Comm)
	switch {
	case status.Tgid != pid:
		return freeze.Task{}, fmt.Errorf("pid %d is a thread of process %d: give the process", pid, status.Tgid)
	case st.KernelThread():
		return freeze.Task{}, fmt.Errorf("%s is a kernel thread", name)
	case pid == os.Getpid():
		return freeze.Task{}, fmt.Errorf("%s is ckpt-scan itself", name)
	case isAncestor(pid):
		return freeze.Task{}, fmt.Errorf("%s is an ancestor of ckpt-scan: it would freeze its own dump", name)
	case st.State == 'Z' || st.State == 'X':
		return freeze.Task{}, fmt.Errorf("%s is a zombie: it has exited, there is nothing to dump", name)
	case st.State == 'T':
		// A seized task in group-stop reports PTRACE_EVENT_STOP with
		// its stop signal, not SIGTRAP; until the injection handles
		// that, such a task is refused rather than risked.
		return freeze.Task{}, fmt.Errorf("%s is stopped (SIGSTOP, ctrl-Z): stopped processes "+
			"are not supported yet; resume it first (kill -CONT %d)", name, pid)
	case status.TracerPID != 0:
		return freeze.Task{}, fmt.Errorf("%s is already traced by %s", name, tracer(status.TracerPID))
	}
	if err := unsupported(name, st, status); err != nil {
		return freeze.Task{}, err
	}
	return freeze.Task{PID: pid, StartTime: st.StartTime}, nil
}

// tracer names the process that traces: TracerPid is the tracing
// thread, whose process may be another PID.
func tracer(tid int) string {
	st, err := procfs.ReadStatus(tid)
	if err != nil {
		return fmt.Sprintf("pid %d (strace?)", tid)
	}
	return fmt.Sprintf("pid %d (%s)", st.Tgid, st.Name)
}

// isAncestor reports whether pid is a parent, grandparent, ... of
// ckpt-scan.
func isAncestor(pid int) bool {
	for p := os.Getppid(); p > 0; {
		if p == pid {
			return true
		}
		st, err := procfs.ReadStat(p)
		if err != nil {
			return false
		}
		p = st.PPID
	}
	return false
}
