package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/ckpt/ckpt/lib/freeze"
	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/procfs"
)

// member is one process of the dumped tree, in the order the stream lists
// them: every parent before its children.
type member struct {
	pid    int
	zombie *image.Task // set for a zombie: all there is to say of it
}

// freezeTree freezes root, then every process under it, top down. Once a
// parent is frozen it can fork no more, so its children listed then are
// all it will have; each is frozen before its own children are listed.
// A child that exits meanwhile stays a zombie of its frozen parent, and
// is recorded as one. On error, everything frozen is released.
func freezeTree(root freeze.Task) (*freeze.Tree, []member, error) {
	tree, err := freeze.Freeze([]freeze.Task{root})
	if err != nil {
		return nil, nil, err
	}
	members := []member{{pid: root.PID}}
	for i := 0; i < len(members); i++ {
		if members[i].zombie != nil {
			continue
		}
		kids, err := procfs.Children(members[i].pid)
		if err != nil {
			return nil, nil, releaseOnError(tree,
				fmt.Errorf("pid %d: list children: %w", members[i].pid, err))
		}
		for _, kid := range kids {
			m, err := freezeChild(tree, members[i].pid, kid)
			if err != nil {
				return nil, nil, releaseOnError(tree, err)
			}
			members = append(members, m)
		}
	}
	return tree, members, nil
}

// freezeChild freezes child pid of parent, or records it as a zombie.
func freezeChild(tree *freeze.Tree, parent, pid int) (member, error) {
	for {
		st, err := procfs.ReadStat(pid)
		if errors.Is(err, fs.ErrNotExist) {
			return member{}, fmt.Errorf("pid %d: child %d vanished while its parent was frozen",
				parent, pid)
		}
		if err != nil {
			return member{}, err
		}
		if st.State == 'Z' || st.State == 'X' {
			return zombie(st)
		}
		if err := checkMember(st); err != nil {
			return member{}, err
		}
		err = tree.Add(freeze.Task{PID: pid, StartTime: st.StartTime})
		if err == nil {
			return member{pid: pid}, nil
		}
		// It may have exited since the stat: then it is a zombie now.
		if again, serr := procfs.ReadStat(pid); serr == nil && again.State == 'Z' &&
			again.StartTime == st.StartTime {
			continue
		}
		return member{}, fmt.Errorf("pid %d (child of %d): %w", pid, parent, err)
	}
}

// checkMember refuses a process under the root that cannot be dumped, for
// the same reasons as the root (see check).
func checkMember(st *procfs.Stat) error {
	name := fmt.Sprintf("pid %d (%s, child of %d)", st.PID, st.Comm, st.PPID)
	status, err := procfs.ReadStatus(st.PID)
	if err != nil {
		return err
	}
	switch {
	case st.State == 'T':
		return fmt.Errorf("%s is stopped (SIGSTOP, ctrl-Z): stopped processes "+
			"are not supported yet; resume it first (kill -CONT %d)", name, st.PID)
	case status.TracerPID != 0:
		return fmt.Errorf("%s is already traced by %s", name, tracer(status.TracerPID))
	}
	return unsupported(name, st, status)
}

// zombie records a child that has exited and waits for its parent.
func zombie(st *procfs.Stat) (member, error) {
	tids, err := procfs.Tasks(st.PID)
	if err == nil && len(tids) > 1 {
		return member{}, fmt.Errorf("pid %d (%s): its main thread exited while %d other "+
			"threads run: not supported", st.PID, st.Comm, len(tids)-1)
	}
	t := &image.Task{PID: st.PID, PPID: st.PPID, PGID: st.PGRP, SID: st.Session,
		StartTime: st.StartTime, Comm: st.Comm, Zombie: true, ExitStatus: st.ExitCode}
	if st.ExitCode&0x7f == 0x7f {
		return member{}, fmt.Errorf("pid %d (%s): zombie with wait status %#x: not supported",
			st.PID, st.Comm, st.ExitCode)
	}
	return member{pid: st.PID, zombie: t}, nil
}

// checkHelpers says which sessions and groups restore will make again
// with a helper task, their leaders being gone. With --kill, it refuses a
// leader that is gone from the tree but still runs outside it: the
// helper's PID would be taken (a zombie's too, until it is reaped), and
// the tree could not come back here.
func (s *scan) checkHelpers(helpers []*image.Helper) error {
	for _, h := range helpers {
		what := "process group"
		if h.Session {
			what = "session"
		}
		st, err := procfs.ReadStat(h.PID)
		if err == nil && s.opts.kill {
			return fmt.Errorf("%s %d: its leader pid %d (%s) is not in the tree but still "+
				"exists, so restore could not make it again here; dump without --kill",
				what, h.PID, h.PID, st.Comm)
		}
		s.verbosef("%s %d: its leader is gone; restore makes it again with a helper "+
			"cloned from pid %d", what, h.PID, h.Parent)
	}
	return nil
}
