package main

import (
	"fmt"
	"strconv"

	"github.com/ckpt/ckpt/lib/freeze"
	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/procfs"
	"github.com/ckpt/ckpt/lib/ptrace"
	"golang.org/x/sys/unix"
)

// collect reads everything about frozen process pid that the task and fd
// records carry.
//
// Preconditions: pid is frozen in tree, by this OS thread.
func collect(pid int, tree *freeze.Tree, inj *injection) (*image.Task, []image.Fd, error) {
	tids := tree.Threads(pid)
	if err := threadsApart(pid, tids); err != nil {
		return nil, nil, err
	}
	task, err := collectTask(pid)
	if err != nil {
		return nil, nil, err
	}
	for _, tid := range tids {
		th, err := collectThread(pid, tid)
		if err != nil {
			return nil, nil, fmt.Errorf("pid %d thread %d: %w", pid, tid, err)
		}
		task.Threads = append(task.Threads, th)
	}
	if err := injectAll(task, inj); err != nil {
		return nil, nil, err
	}
	if err := collectPending(task); err != nil {
		return nil, nil, err
	}
	fds, err := collectFds(pid)
	if err != nil {
		return nil, nil, err
	}
	return task, fds, nil
}

// collectTask reads what /proc says about the process as a whole.
func collectTask(pid int) (*image.Task, error) {
	st, err := procfs.ReadStat(pid)
	if err != nil {
		return nil, err
	}
	status, err := procfs.ReadStatus(pid)
	if err != nil {
		return nil, err
	}
	t := &image.Task{
		PID: pid, PPID: st.PPID, PGID: st.PGRP, SID: st.Session,
		StartTime: st.StartTime, Comm: st.Comm,
		Umask: status.Umask, Creds: status.Creds(), MM: st.MM(),
	}
	links := []struct {
		name string
		dst  *string
	}{{"exe", &t.Exe}, {"cwd", &t.Cwd}, {"root", &t.Root}}
	for _, l := range links {
		if *l.dst, err = procfs.Readlink(pid, l.name); err != nil {
			return nil, err
		}
	}
	if t.Personality, err = procfs.ReadPersonality(pid); err != nil {
		return nil, err
	}
	if t.Rlimits, err = procfs.ReadLimits(pid); err != nil {
		return nil, err
	}
	if t.MM.Auxv, err = procfs.ReadAuxv(pid); err != nil {
		return nil, err
	}
	if t.Vmas, err = procfs.ReadSmaps(pid); err != nil {
		return nil, err
	}
	fileIdentity(pid, t.Vmas)
	if t.Children, err = procfs.Children(pid); err != nil {
		return nil, err
	}
	return t, nil
}

// fileIdentity sets the device and inode of every file mapping from a stat
// of /proc/PID/map_files/START-END, which, unlike maps, gives the device
// that stat of the file's path gives (btrfs subvolumes, overlayfs). Each
// file is stat'ed once. Where map_files cannot be read (it needs
// CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN) the values of maps stay.
func fileIdentity(pid int, vmas []image.Vma) {
	type id struct{ dev, ino uint64 }
	seen := map[id]id{}
	for i := range vmas {
		v := &vmas[i]
		if v.Ino == 0 || (v.Kind != image.VmaFile && !v.Shared) {
			continue
		}
		key := id{v.Dev, v.Ino}
		if got, ok := seen[key]; ok {
			v.Dev, v.Ino = got.dev, got.ino
			continue
		}
		var st unix.Stat_t
		path := procfs.Path(pid, "map_files/"+strconv.FormatUint(v.Start, 16)+"-"+
			strconv.FormatUint(v.End, 16))
		if err := unix.Stat(path, &st); err != nil {
			continue
		}
		seen[key] = id{st.Dev, st.Ino}
		v.Dev, v.Ino = st.Dev, st.Ino
	}
}

// collectThread reads one stopped thread's name, registers and the state
// that ptrace and get_robust_list give from outside.
func collectThread(pid, tid int) (image.Thread, error) {
	th := image.Thread{TID: tid}
	st, err := procfs.ReadTaskStat(pid, tid)
	if err != nil {
		return th, err
	}
	th.Comm = st.Comm
	regs, err := ptrace.GetRegs(tid)
	if err != nil {
		return th, err
	}
	th.Regs = ptrace.RegsWords(regs)
	if th.Xstate, err = ptrace.GetXstate(tid); err != nil {
		return th, err
	}
	if th.SigMask, err = ptrace.GetSigmask(tid); err != nil {
		return th, err
	}
	if th.Rseq, err = ptrace.GetRseq(tid); err != nil {
		return th, err
	}
	if th.RobustList, th.RobustLen, err = ptrace.GetRobustList(tid); err != nil {
		return th, err
	}
	var cpus unix.CPUSet
	if err := unix.SchedGetaffinity(tid, &cpus); err != nil {
		return th, fmt.Errorf("sched_getaffinity: %w", err)
	}
	th.CPUs = cpuWords(&cpus)
	if th.Sched, err = collectSched(tid); err != nil {
		return th, err
	}
	return th, nil
}

// collectFds reads every open descriptor: fdinfo, the link and a stat
// through /proc/PID/fd/N.
func collectFds(pid int) ([]image.Fd, error) {
	nums, err := procfs.Fds(pid)
	if err != nil {
		return nil, err
	}
	fds := make([]image.Fd, 0, len(nums))
	for _, n := range nums {
		fd, err := collectFd(pid, n)
		if err != nil {
			return nil, fmt.Errorf("pid %d fd %d: %w", pid, n, err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

func collectFd(pid, n int) (image.Fd, error) {
	fd := image.Fd{PID: pid, Fd: n}
	info, err := procfs.ReadFdinfo(pid, n)
	if err != nil {
		return fd, err
	}
	fd.Flags, fd.Pos, fd.MntID = info.Flags, info.Pos, info.MntID
	if len(info.Locks) > 0 {
		return fd, fmt.Errorf("holds a file lock (%s): file locks are not supported yet",
			info.Locks[0])
	}
	name := "fd/" + strconv.Itoa(n)
	if fd.Link, err = procfs.Readlink(pid, name); err != nil {
		return fd, err
	}
	var st unix.Stat_t
	if err := unix.Stat(procfs.Path(pid, name), &st); err != nil {
		return fd, fmt.Errorf("stat %s: %w", procfs.Path(pid, name), err)
	}
	fd.Dev, fd.Ino, fd.Mode, fd.Nlink = st.Dev, st.Ino, st.Mode, st.Nlink
	fd.Size, fd.Rdev = st.Size, st.Rdev
	return fd, nil
}

// cpuWords returns a CPU set as image.Thread.CPUs: its words, trailing
// zero words left out.
func cpuWords(set *unix.CPUSet) []uint64 {
	words := make([]uint64, 0, len(set))
	for _, w := range set {
		words = append(words, uint64(w))
	}
	for len(words) > 0 && words[len(words)-1] == 0 {
		words = words[:len(words)-1]
	}
	return words
}

// ioprioWhoProcess is IOPRIO_WHO_PROCESS: ioprio_get of one thread.
const ioprioWhoProcess = 1

// collectSched reads how a thread is scheduled, from outside.
func collectSched(tid int) (*image.Sched, error) {
	a, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return nil, fmt.Errorf("sched_getattr: %w", err)
	}
	prio, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
	if errno != 0 {
		return nil, fmt.Errorf("ioprio_get: %w", errno)
	}
	return &image.Sched{Policy: a.Policy, Flags: a.Flags, Nice: a.Nice, Priority: a.Priority,
		Runtime: a.Runtime, Deadline: a.Deadline, Period: a.Period, UtilMin: a.Util_min,
		UtilMax: a.Util_max, IOPrio: int(prio)}, nil
}
