package main

import (
	"fmt"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/procfs"
)

// checkHeld makes sure, when the header names a holder (ckpt-scan's
// stdout was a pipe), that the holder still runs and still holds every
// thread of pid in a tracing stop. ckpt-mem checks before and after it
// reads a task's memory: if the holder died meanwhile (killed, crashed),
// the task ran while it was read and its pages may be torn, so the dump
// must fail rather than yield an archive that looks sound.
func checkHeld(h *image.Header, pid int) error {
	if h.HolderPID == 0 {
		return nil // nothing holds the tree: it is read as it is now
	}
	st, err := procfs.ReadStat(h.HolderPID)
	if err != nil || st.StartTime != h.HolderStart {
		return fmt.Errorf("pid %d: ckpt-scan (pid %d), which held it frozen, is gone: "+
			"the process may have run on since it was scanned; dump it again", pid, h.HolderPID)
	}
	tids, err := procfs.Tasks(pid)
	if err != nil {
		return fmt.Errorf("pid %d: list threads: %w", pid, err)
	}
	for _, tid := range tids {
		if err := checkThreadHeld(h.HolderPID, pid, tid); err != nil {
			return err
		}
	}
	return nil
}

func checkThreadHeld(holder, pid, tid int) error {
	status, err := procfs.ReadStatus(tid)
	if err != nil {
		return fmt.Errorf("pid %d: thread %d: %w", pid, tid, err)
	}
	tracer := 0
	if status.TracerPID != 0 {
		// TracerPid names the tracing thread; the holder is its process.
		if ts, err := procfs.ReadStatus(status.TracerPID); err == nil {
			tracer = ts.Tgid
		}
	}
	if tracer != holder || status.State != 't' {
		return fmt.Errorf("pid %d: thread %d is no longer held frozen by ckpt-scan (pid %d) "+
			"(state %c, tracer %d): its memory may be torn; dump it again",
			pid, tid, holder, status.State, status.TracerPID)
	}
	return nil
}
