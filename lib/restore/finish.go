package restore

import (
	"fmt"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/ptrace"
	"golang.org/x/sys/unix"
)

// finish restores everything but memory in every process, creates the
// threads, turns zombies back into zombies, loads every thread's
// registers and lets the tree run.
func (rs *restorer) finish() error {
	if err := rs.setGroups(); err != nil {
		return err
	}
	for _, pr := range rs.procs {
		if pr.tk.Zombie {
			continue
		}
		if err := rs.finishProc(pr); err != nil {
			return err
		}
	}
	// Every file is open in every task: let the ghosts go, remove the
	// hidden links of remaps.
	if err := rs.ghosts.Close(); err != nil {
		return err
	}
	if err := rs.shmem.Close(); err != nil {
		return err
	}
	if err := rs.pipes.Close(); err != nil {
		return err
	}
	for _, pr := range rs.procs {
		if pr.tk.Zombie {
			if err := pr.exitZombie(); err != nil {
				return err
			}
			rs.res.Zombies++
		}
	}
	return rs.release()
}

// finishProc restores one live process's state, threads and registers;
// it stays stopped until release.
func (rs *restorer) finishProc(pr *proc) error {
	t, tk := pr.t, pr.tk
	regs, err := allFinalRegs(tk)
	if err != nil {
		return err
	}
	if err := t.protect(tk.Vmas); err != nil {
		return err
	}
	if err := t.advise(tk.Vmas); err != nil {
		return err
	}
	if err := rs.restoreMM(pr); err != nil {
		return err
	}
	open := func(f *image.File, flags int) (uint64, error) { return rs.openFile(t, f, flags) }
	// Process-wide state first: the threads share it or inherit it.
	steps := []func() error{
		func() error { return t.restoreFds(rs.fds[tk.PID], rs.files, open) },
		func() error { return t.restoreFsState(tk) },
		func() error { return t.restoreRlimits(tk.Rlimits) },
		func() error { return t.restoreSigactions(tk.SigActions) },
		func() error {
			_, err := t.call("personality", unix.SYS_PERSONALITY, uint64(tk.Personality))
			return err
		},
		func() error { return rs.cloneThreads(pr) },
		// Every thread exists: a timer may signal one, a pending
		// signal may be one's alone.
		func() error { return t.restoreTimers(tk) },
		func() error { return t.restorePending(tk) },
		// The main thread's credentials last: clone3 with set_tid
		// needs the restorer's.
		func() error { return t.restoreThread(tk, &tk.Threads[0]) },
		// Once no thread's credentials change any more.
		func() error { return t.restorePrctl(tk.Prctl) },
		// The last injected call removes the injection area itself;
		// the other threads made their last calls already.
		func() error {
			_, err := t.call("munmap injection area", unix.SYS_MUNMAP, t.area, areaSize)
			return err
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	rs.res.Fds += len(rs.fds[tk.PID])
	all := append([]*task{t}, pr.threads...)
	for i, th := range all {
		if err := th.loadRegs(&tk.Threads[i], regs[i]); err != nil {
			return err
		}
	}
	return nil
}

// cloneThreads creates every thread of pr but the main one from inside
// the process, with its TID, and restores its own state.
func (rs *restorer) cloneThreads(pr *proc) error {
	for i := range pr.tk.Threads[1:] {
		th := &pr.tk.Threads[i+1]
		nt, err := pr.t.cloneThread(th.TID)
		if nt != nil {
			pr.threads = append(pr.threads, nt)
		}
		if err != nil {
			return err
		}
		if err := nt.restoreThread(pr.tk, th); err != nil {
			return err
		}
	}
	return nil
}

// release detaches every thread of every live process, children before
// their parents and each process's main thread last: from then on the
// tree runs.
func (rs *restorer) release() error {
	for i := len(rs.procs) - 1; i >= 0; i-- {
		pr := rs.procs[i]
		if pr.tk.Zombie {
			continue
		}
		all := append([]*task{pr.t}, pr.threads...)
		for j := len(all) - 1; j >= 0; j-- {
			if err := pr.detach(all[j], &pr.tk.Threads[j], &rs.cpus); err != nil {
				return fmt.Errorf("%s: %w", all[j].who, err)
			}
		}
		rs.res.Threads += len(all)
	}
	for _, pr := range rs.procs {
		rs.res.PIDs = append(rs.res.PIDs, pr.tk.PID)
	}
	if rs.nsInit != nil {
		rs.res.NSInit, rs.res.RootHere = rs.nsInit.pid, rs.procs[0].t.pid
		if err := rs.nsInit.letGo(&rs.cpus); err != nil {
			return err
		}
		rs.nsInit, rs.stub = nil, 0
	}
	rs.procs = nil
	return nil
}

// detach gives thread t, whose registers are loaded, its CPU affinity and
// lets it run.
func (pr *proc) detach(t *task, th *image.Thread, cpus *unix.CPUSet) error {
	if err := t.setCPUs(th, cpus); err != nil {
		return err
	}
	if err := t.setSched(th.Sched); err != nil {
		return err
	}
	r, _ := ptrace.WordsRegs(th.Regs)
	if r != nil && restarting(r) {
		return ptrace.DetachRestarting(pr.t.pid, t.pid)
	}
	return ptrace.Detach(t.pid)
}

// restoreMM sets the memory descriptor fields and the exe link.
func (rs *restorer) restoreMM(pr *proc) error {
	t, tk := pr.t, pr.tk
	exe, ok := rs.files[tk.ExeFileID]
	if !ok {
		return fmt.Errorf("pid %d: executable %s: no file resolved for it", t.pid, tk.Exe)
	}
	fd, err := rs.openFile(t, exe, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return err
	}
	if err := t.setMM(tk.MM, fd); err != nil {
		return err
	}
	_, err = t.call("close", unix.SYS_CLOSE, fd)
	return err
}

// setGroups puts every process in its process group: helpers make the
// groups whose leaders are gone, group leaders make theirs, the others
// join them (setpgid); then the helpers exit.
func (rs *restorer) setGroups() error {
	helpers, err := rs.tree.GroupHelpers()
	if err != nil {
		return err
	}
	for _, h := range helpers {
		if err := rs.startHelper(h, rs.byPID[h.Parent].t); err != nil {
			return err
		}
	}
	for _, leaders := range []bool{true, false} {
		for _, pr := range rs.procs {
			if (pr.pgid == pr.tk.PID) != leaders {
				continue
			}
			// As the process sees it: in its own PID namespace, if any.
			pgid, err := pr.t.call("getpgid", unix.SYS_GETPGID, 0)
			if err != nil {
				return err
			}
			if int(pgid) == pr.pgid {
				continue
			}
			target := uint64(pr.pgid)
			if leaders {
				target = 0
			}
			if _, err := pr.t.call("setpgid", unix.SYS_SETPGID, 0, target); err != nil {
				return err
			}
		}
	}
	return rs.endHelpers()
}

// abort kills whatever was created so far, children first.
func (rs *restorer) abort() {
	rs.ghosts.Abort()
	rs.shmem.Abort()
	rs.pipes.Abort()
	for i := len(rs.procs) - 1; i >= 0; i-- {
		pr := rs.procs[i]
		var tids []int
		for _, th := range pr.threads {
			tids = append(tids, th.pid)
		}
		killAll(pr.t.pid, tids)
	}
	for _, hp := range rs.helpers {
		kill(hp.t.pid)
	}
	if rs.stub != 0 {
		kill(rs.stub)
	}
}
