package restore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// restoreTimers arms the interval timers and recreates the POSIX timers
// with their old IDs. It runs in the leader once every thread exists
// (a timer may signal one thread) and before the credentials are dropped
// (asking for timer IDs needs CAP_CHECKPOINT_RESTORE).
func (t *task) restoreTimers(tk *image.Task) error {
	for _, it := range tk.ITimers {
		v, err := t.words(append(pair(it.Interval, 1e6), pair(it.Value, 1e6)...)...)
		if err != nil {
			return err
		}
		if _, err := t.call(fmt.Sprintf("setitimer %d", it.Which), unix.SYS_SETITIMER,
			uint64(it.Which), v, 0); err != nil {
			return err
		}
	}
	if len(tk.PosixTimers) == 0 {
		return nil
	}
	// Linux 6.15+: timer_create takes the ID it is given in *timerid.
	_, err := t.call("prctl PR_TIMER_CREATE_RESTORE_IDS", unix.SYS_PRCTL,
		unix.PR_TIMER_CREATE_RESTORE_IDS, unix.PR_TIMER_CREATE_RESTORE_IDS_ON)
	if errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("%w: POSIX timers with their IDs need Linux 6.15 or newer "+
			"(PR_TIMER_CREATE_RESTORE_IDS)", err)
	}
	if err != nil {
		return err
	}
	for _, tm := range tk.PosixTimers {
		if err := t.createTimer(tm); err != nil {
			return err
		}
	}
	_, err = t.call("prctl PR_TIMER_CREATE_RESTORE_IDS off", unix.SYS_PRCTL,
		unix.PR_TIMER_CREATE_RESTORE_IDS, unix.PR_TIMER_CREATE_RESTORE_IDS_OFF)
	return err
}

// pair is seconds and a fraction (of which perSecond make one) packed as
// two words, the halves of a timeval or timespec.
func pair(v, perSecond int64) []uint64 {
	return []uint64{uint64(v / perSecond), uint64(v % perSecond)}
}

// createTimer makes one POSIX timer with its ID, clock and notification,
// and arms it with its time left and interval.
func (t *task) createTimer(tm image.PosixTimer) error {
	// struct sigevent: value, signo and notify, then the thread ID.
	ev := make([]byte, 64)
	binary.LittleEndian.PutUint64(ev, tm.SigValue)
	binary.LittleEndian.PutUint32(ev[8:], uint32(tm.Signo))
	binary.LittleEndian.PutUint32(ev[12:], uint32(tm.Notify))
	binary.LittleEndian.PutUint32(ev[16:], uint32(tm.TID))
	evp, err := t.put(ev)
	if err != nil {
		return err
	}
	idp, err := t.put(binary.LittleEndian.AppendUint32(nil, uint32(tm.ID)))
	if err != nil {
		return err
	}
	name := fmt.Sprintf("timer_create of timer %d", tm.ID)
	if _, err := t.call(name, unix.SYS_TIMER_CREATE, uint64(tm.Clock), evp, idp); err != nil {
		return err
	}
	if tm.Value == 0 {
		return nil
	}
	spec := append(pair(tm.Interval, 1e9), pair(tm.Value, 1e9)...)
	sp, err := t.words(spec...)
	if err != nil {
		return err
	}
	_, err = t.call(fmt.Sprintf("timer_settime of timer %d", tm.ID), unix.SYS_TIMER_SETTIME,
		uint64(tm.ID), 0, sp, 0)
	return err
}

// restorePending queues the signals that were pending again, for the
// process and for each thread, oldest first. It runs in the leader: a
// task may queue any siginfo to itself. They stay pending, blocked by the
// injector, until the threads get their own masks back.
func (t *task) restorePending(tk *image.Task) error {
	for _, info := range tk.SharedPending {
		if err := t.queue(info, 0); err != nil {
			return err
		}
	}
	for _, th := range tk.Threads {
		for _, info := range th.Pending {
			if err := t.queue(info, th.TID); err != nil {
				return err
			}
		}
	}
	return nil
}

// queue queues one siginfo for the process (tid 0) or one of its threads.
func (t *task) queue(info []byte, tid int) error {
	if len(info) != image.SigInfoSize {
		return fmt.Errorf("pid %d: a pending signal's siginfo has %d bytes, want %d",
			t.pid, len(info), image.SigInfoSize)
	}
	sig := uint64(binary.LittleEndian.Uint32(info))
	p, err := t.put(info)
	if err != nil {
		return err
	}
	if tid == 0 {
		_, err = t.call(fmt.Sprintf("rt_sigqueueinfo %d", sig), unix.SYS_RT_SIGQUEUEINFO,
			uint64(t.vpid), sig, p)
		return err
	}
	_, err = t.call(fmt.Sprintf("rt_tgsigqueueinfo %d to thread %d", sig, tid),
		unix.SYS_RT_TGSIGQUEUEINFO, uint64(t.vpid), uint64(tid), sig, p)
	return err
}
