package restore

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// helper is a task made, with the PID of a session or group leader that
// is gone, to make that session or group again (image.Helper). It exits
// once every process is in its group, and its parent reaps it.
type helper struct {
	h      *image.Helper
	t      *task
	parent *task
}

func (h *helper) String() string {
	if h.h.Session {
		return fmt.Sprintf("session %d", h.h.PID)
	}
	return fmt.Sprintf("process group %d", h.h.PID)
}

// startHelper clones the helper h from parent and makes its session, or
// its group in parent's session.
func (rs *restorer) startHelper(h *image.Helper, parent *task) error {
	hp := &helper{h: h, parent: parent}
	fail := func(err error) error {
		return fmt.Errorf("%s, whose leader is gone, is made again by a helper with pid %d "+
			"(cloned from %s): %w", hp, h.PID, parent.who, err)
	}
	if err := rs.waitPIDFree(h.PID, "helper"); err != nil {
		return fail(err)
	}
	t, err := rs.clone(parent, parent, h.PID)
	if err != nil {
		return fail(err)
	}
	hp.t = t
	rs.helpers[h.PID] = hp
	t.who = fmt.Sprintf("helper %d for %s", t.pid, hp)
	if h.Session {
		_, err = t.call("setsid", unix.SYS_SETSID)
	} else {
		_, err = t.call("setpgid", unix.SYS_SETPGID, 0, 0)
	}
	return err
}

// endHelpers makes every helper exit, and its parent reap it and take
// the SIGCHLD its exit sent: the parent sees nothing of it.
func (rs *restorer) endHelpers() error {
	for _, pid := range slices.Sorted(maps.Keys(rs.helpers)) {
		hp := rs.helpers[pid]
		ws, err := hp.t.j.RunToExit(unix.SYS_EXIT_GROUP, 0)
		if err != nil {
			return fmt.Errorf("%s: exit: %w", hp.t.who, err)
		}
		if !ws.Exited() {
			return fmt.Errorf("%s: ended with status %#x, not exit 0", hp.t.who, ws)
		}
		delete(rs.helpers, pid)
		if err := hp.reap(); err != nil {
			return err
		}
		rs.res.Helpers++
	}
	return nil
}

// reap makes the helper's parent reap it, then take the SIGCHLD (blocked
// while calls are injected) that its exit queued.
func (hp *helper) reap() error {
	p := hp.parent
	got, err := p.call("wait4 helper", unix.SYS_WAIT4, uint64(hp.t.vpid), 0,
		unix.WNOHANG|unix.WALL, 0)
	if err != nil {
		return err
	}
	if int(got) != hp.t.vpid {
		return fmt.Errorf("%s: wait4 for its helper %d found nothing to reap", p.who, hp.t.vpid)
	}
	set, err := p.words(1 << (unix.SIGCHLD - 1))
	if err != nil {
		return err
	}
	none, err := p.words(0, 0)
	if err != nil {
		return err
	}
	_, err = p.call("rt_sigtimedwait SIGCHLD", unix.SYS_RT_SIGTIMEDWAIT, set, 0, none, 8)
	if err != nil && !errors.Is(err, unix.EAGAIN) {
		return err
	}
	return nil
}
