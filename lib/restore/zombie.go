package restore

import (
	"fmt"

	"github.com/ckpt/ckpt/lib/ptrace"
	"golang.org/x/sys/unix"
)

// exitZombie ends a process that was a zombie at the dump the way it
// ended then: with its exit code, or killed by its signal (no core is
// written). Its parent finds it a zombie and reaps it when it likes, and
// gets a SIGCHLD for it once more.
func (pr *proc) exitZombie() error {
	t, tk := pr.t, pr.tk
	if err := t.setComm(tk.Comm); err != nil {
		return err
	}
	var ws unix.WaitStatus
	var err error
	sig := tk.ExitStatus & 0x7f
	if sig == 0 {
		ws, err = t.j.RunToExit(unix.SYS_EXIT_GROUP, uint64(tk.ExitStatus>>8&0xff))
	} else {
		ws, err = t.dieOf(sig)
	}
	if err != nil {
		return fmt.Errorf("%s (zombie): %w", t.who, err)
	}
	if ws.Exited() && ws.ExitStatus() != tk.ExitStatus>>8&0xff ||
		ws.Signaled() && int(ws.Signal()) != sig {
		return fmt.Errorf("%s (zombie): ended with status %#x, not %#x", t.who, ws, tk.ExitStatus)
	}
	return nil
}

// dieOf makes the task kill itself with sig, without a core dump.
func (t *task) dieOf(sig int) (unix.WaitStatus, error) {
	none, err := t.words(0, 0)
	if err != nil {
		return 0, err
	}
	_, err = t.call("prlimit RLIMIT_CORE", unix.SYS_PRLIMIT64, 0, unix.RLIMIT_CORE, none, 0)
	if err != nil {
		return 0, err
	}
	dfl, err := t.words(0, 0, 0, 0)
	if err != nil {
		return 0, err
	}
	_, err = t.call(fmt.Sprintf("rt_sigaction %d", sig), unix.SYS_RT_SIGACTION,
		uint64(sig), dfl, 0, 8)
	if err != nil {
		return 0, err
	}
	if err := ptrace.SetSigmask(t.pid, 0); err != nil {
		return 0, err
	}
	return t.j.RunToExit(unix.SYS_KILL, uint64(t.vpid), uint64(sig))
}
