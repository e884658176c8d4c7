package restore

import (
	"fmt"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// prThpDisableExceptAdvised is PR_SET_THP_DISABLE's flag (Linux 6.18)
// that keeps huge pages where madvise(MADV_HUGEPAGE) asks for them.
const prThpDisableExceptAdvised = 1 << 1

// suidDumpRoot is PR_GET_DUMPABLE's 2, which prctl cannot set.
const suidDumpRoot = 2

// restoreThreadPrctl gives a thread its parent-death signal and timer
// slack. It comes after the thread's credentials: changing them clears
// the parent-death signal.
func (t *task) restoreThreadPrctl(th *image.Thread) error {
	if th.PDeathSig != 0 {
		if _, err := t.call(fmt.Sprintf("prctl PR_SET_PDEATHSIG %d", th.PDeathSig),
			unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, uint64(th.PDeathSig), 0, 0, 0); err != nil {
			return err
		}
	}
	if th.TimerSlack != 0 {
		// For a real-time thread the kernel ignores it, and its slack is
		// 0 again once detach gives it its policy.
		if _, err := t.call(fmt.Sprintf("prctl PR_SET_TIMERSLACK %d", th.TimerSlack),
			unix.SYS_PRCTL, unix.PR_SET_TIMERSLACK, th.TimerSlack, 0, 0, 0); err != nil {
			return err
		}
	}
	return nil
}

// restorePrctl gives a process its subreaper flag, its transparent huge
// page setting and whether it is dumpable. It comes after every thread's
// credentials: changing them resets dumpable.
func (t *task) restorePrctl(p *image.Prctl) error {
	if p == nil {
		return nil
	}
	if p.ChildSubreaper {
		if _, err := t.call("prctl PR_SET_CHILD_SUBREAPER", unix.SYS_PRCTL,
			unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return err
		}
	}
	off, flags := uint64(0), uint64(0)
	if p.THPDisable&1 != 0 {
		off, flags = 1, uint64(p.THPDisable&prThpDisableExceptAdvised)
	}
	if _, err := t.call(fmt.Sprintf("prctl PR_SET_THP_DISABLE %d %#x", off, flags),
		unix.SYS_PRCTL, unix.PR_SET_THP_DISABLE, off, flags, 0, 0); err != nil {
		return err
	}
	if p.Dumpable != suidDumpRoot {
		_, err := t.call(fmt.Sprintf("prctl PR_SET_DUMPABLE %d", p.Dumpable), unix.SYS_PRCTL,
			unix.PR_SET_DUMPABLE, uint64(p.Dumpable), 0, 0, 0)
		return err
	}
	// Only a change of credentials under fs.suid_dumpable=2 gives it.
	got, err := t.call("prctl PR_GET_DUMPABLE", unix.SYS_PRCTL, unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil {
		return err
	}
	if got != suidDumpRoot {
		return fmt.Errorf("%s: it was dumpable for root only (2, from fs.suid_dumpable), "+
			"which prctl cannot set, and is %d here: restoring that is not supported", t.who, got)
	}
	return nil
}
