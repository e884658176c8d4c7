package main

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/ckpt/ckpt/lib/procfs"
	"golang.org/x/sys/unix"
)

// kcmp types (linux/kcmp.h).
const (
	kcmpVM      = 1
	kcmpFiles   = 2
	kcmpFS      = 3
	kcmpSighand = 4
)

// namespaces are those a process could have apart from ckpt-scan's.
var namespaces = []string{"ipc", "mnt", "net", "pid", "uts", "user", "cgroup", "time"}

// unsupported refuses, before the freeze and before any system call is
// run in it, a process whose state restore could not rebuild or would
// quietly lose: a seccomp filter (an injected call could kill it), a
// session with a controlling terminal, namespaces of its own, a removed cwd or root, and
// memory, fd table, fs or signal handlers shared with its parent
// (clone without CLONE_THREAD, vfork).
func unsupported(name string, st *procfs.Stat, status *procfs.Status) error {
	if status.Seccomp != 0 {
		return fmt.Errorf("%s runs under seccomp (mode %d): a filter could kill it for a "+
			"system call ckpt-scan runs in it, and restore cannot set one: not supported yet",
			name, status.Seccomp)
	}
	// A process in a session led outside the tree comes back detached
	// from its terminal, as documented; one that leads its session has
	// the terminal as its own, and restore cannot give it back.
	if st.TtyNr != 0 && st.Session == st.PID {
		return fmt.Errorf("%s leads a session with a controlling terminal (device %d:%d): "+
			"ttys are not supported yet", name, unix.Major(uint64(st.TtyNr)),
			unix.Minor(uint64(st.TtyNr)))
	}
	for _, ns := range namespaces {
		mine, err1 := procfs.Readlink(unix.Getpid(), "ns/"+ns)
		its, err2 := procfs.Readlink(st.PID, "ns/"+ns)
		if err1 == nil && err2 == nil && mine != its {
			return fmt.Errorf("%s is in a %s namespace of its own (%s, ckpt-scan is in %s): "+
				"namespaces are not supported yet", name, ns, its, mine)
		}
	}
	for _, dir := range []string{"cwd", "root"} {
		if err := liveDir(st.PID, dir); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return sharedWithParent(name, st)
}

// liveDir refuses a cwd or root that no longer stands at its path.
func liveDir(pid int, which string) error {
	path, err := procfs.Readlink(pid, which)
	if err != nil {
		return err
	}
	var held, named unix.Stat_t
	if err := unix.Stat(procfs.Path(pid, which), &held); err != nil {
		return fmt.Errorf("stat its %s: %w", which, err)
	}
	if err := unix.Stat(path, &named); err != nil || named.Dev != held.Dev ||
		named.Ino != held.Ino {
		return fmt.Errorf("its %s %s was removed or replaced: not supported yet", which, path)
	}
	return nil
}

// sharedWithParent refuses a process that shares its memory, fd table, fs
// or signal handlers with its parent without being one of its threads.
func sharedWithParent(name string, st *procfs.Stat) error {
	what := map[int]string{kcmpVM: "memory (CLONE_VM, vfork)", kcmpFiles: "fd table (CLONE_FILES)",
		kcmpFS: "cwd, root and umask (CLONE_FS)", kcmpSighand: "signal handlers (CLONE_SIGHAND)"}
	for _, typ := range []int{kcmpVM, kcmpFiles, kcmpFS, kcmpSighand} {
		if same(st.PID, st.PPID, typ) {
			return fmt.Errorf("%s shares its %s with its parent %d: processes sharing them "+
				"are not supported yet", name, what[typ], st.PPID)
		}
	}
	return nil
}

// same reports whether kcmp says tasks a and b share the object of type
// typ. An error (a task gone, no CONFIG_KCMP) is taken as not shared.
func same(a, b, typ int) bool {
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(a), uintptr(b), uintptr(typ), 0, 0, 0)
	return errno == 0 && r == 0
}

// threadsApart refuses, once the process is frozen, threads that have an
// fd table, fs or credentials of their own (unshare in a thread, setuid
// in one thread only): restore gives every thread the process's.
func threadsApart(pid int, tids []int) error {
	leader, err := procfs.ReadStatus(pid)
	if err != nil {
		return err
	}
	for _, tid := range tids {
		if tid == pid {
			continue
		}
		who := "pid " + strconv.Itoa(pid) + " thread " + strconv.Itoa(tid)
		if !same(pid, tid, kcmpFiles) || !same(pid, tid, kcmpFS) {
			return fmt.Errorf("%s has an fd table or cwd of its own (unshare in a thread): "+
				"not supported yet", who)
		}
		th, err := procfs.ReadStatus(tid)
		if err != nil {
			return fmt.Errorf("%s: %w", who, err)
		}
		a, b := leader.Creds(), th.Creds()
		if a.UID != b.UID || a.GID != b.GID || !slices.Equal(a.Groups, b.Groups) {
			return fmt.Errorf("%s has credentials of its own (uid %v, the process %v): "+
				"not supported yet", who, b.UID, a.UID)
		}
	}
	return nil
}

// refuseTracers refuses a tree in which a process traces another (strace
// -p, gdb): a tracee inside the tree is refused as traced already, and
// one outside would come back untraced while its tracer waits for it.
// It reads the TracerPid of every process of the machine, once the tree
// is frozen: of its main thread only, as strace and gdb attach every
// thread (a tracer of one other thread alone is missed); a read of every
// thread's status would cost 0.25 s with 5000 threads on the machine.
// ckpt-scan's own threads, which trace the tree, are not in it.
func refuseTracers(members []member) error {
	inTree := map[int]bool{} // every thread of the tree
	for _, m := range members {
		if m.zombie != nil {
			continue
		}
		tids, err := procfs.Tasks(m.pid)
		if err != nil {
			return fmt.Errorf("pid %d: list threads: %w", m.pid, err)
		}
		for _, tid := range tids {
			inTree[tid] = true
		}
	}
	pids, err := procfs.Pids()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		st, err := procfs.ReadStatus(pid)
		if err != nil || st.TracerPID == 0 {
			continue // gone meanwhile, or not traced
		}
		if inTree[st.TracerPID] {
			return fmt.Errorf("%s traces pid %d (%s) (strace -p, a debugger): "+
				"restoring a tracer is not supported yet", tracer(st.TracerPID), pid, st.Name)
		}
	}
	return nil
}
