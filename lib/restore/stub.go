package restore

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/ptrace"
	"golang.org/x/sys/unix"
)

// traceOptions are set on the stub and inherited by every task it
// creates: new tasks are traced from their first instruction, and all die
// if the restorer dies before it lets them go.
const traceOptions = unix.PTRACE_O_TRACESYSGOOD | unix.PTRACE_O_TRACEFORK |
	unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_EXITKILL

// startStub forks a traced child that execs this program and stops at its
// first instruction. Nothing of the program runs: the stub is only a
// process to inject system calls into. With newNS the stub is the first
// process, the init, of a new PID namespace, and is named NSInitName:
// once let go it runs this program's main, which is to call NSInit.
func startStub(newNS bool) (int, error) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer devnull.Close()
	fd := devnull.Fd()
	name, sys := "ckpt-restore-stub", &syscall.SysProcAttr{Ptrace: true}
	if newNS {
		name, sys.Cloneflags = NSInitName, unix.CLONE_NEWPID
	}
	pid, err := syscall.ForkExec("/proc/self/exe", []string{name},
		&syscall.ProcAttr{Env: []string{}, Files: []uintptr{fd, fd, fd}, Sys: sys})
	if err != nil {
		return 0, fmt.Errorf("start stub: %w", err)
	}
	ws, err := ptrace.Wait(pid)
	if err != nil {
		return 0, err
	}
	if !ws.Stopped() || ws.StopSignal() != unix.SIGTRAP {
		return 0, fmt.Errorf("stub %d: unexpected first stop %v", pid, ws)
	}
	if err := ptrace.SetOptions(pid, traceOptions); err != nil {
		kill(pid)
		return 0, err
	}
	return pid, nil
}

// kill ends a traced task and reaps it if it is our child.
func kill(pid int) {
	_ = unix.Kill(pid, unix.SIGKILL)
	var ws unix.WaitStatus
	for range 100 {
		p, err := unix.Wait4(pid, &ws, unix.WALL, nil)
		if err != nil || (p == pid && (ws.Exited() || ws.Signaled())) {
			return
		}
	}
}

// mapsRange is one line of /proc/PID/maps, as much as restore needs.
type mapsRange struct {
	start, end uint64
	name       string
}

func readMaps(pid int) ([]mapsRange, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mapsRange
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		a, b, _ := strings.Cut(fields[0], "-")
		s, err1 := strconv.ParseUint(a, 16, 64)
		e, err2 := strconv.ParseUint(b, 16, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("pid %d: bad maps line %q", pid, sc.Text())
		}
		name := ""
		if len(fields) >= 6 {
			name = fields[5]
		}
		out = append(out, mapsRange{s, e, name})
	}
	return out, sc.Err()
}

// waitPIDFree returns once pid is free. A PID held by a zombie that its
// parent has not reaped yet is waited for, up to patience; a live task
// holding it is an error.
func waitPIDFree(pid int, patience time.Duration, note func(string)) error {
	deadline := time.Now().Add(patience)
	said := false
	for {
		state, comm, err := pidState(pid)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if state != "Z" && state != "X" {
			return fmt.Errorf("pid %d is in use by a running process (%s): "+
				"cannot restore it with the same pid", pid, comm)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d is still held by a zombie (%s) after %v: "+
				"its parent has not reaped it", pid, comm, patience)
		}
		if !said && note != nil {
			note(fmt.Sprintf("pid %d is held by a zombie (%s) not reaped yet; "+
				"waiting up to %v", pid, comm, patience))
			said = true
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pidState returns the state letter and comm of pid; an error that
// wraps os.ErrNotExist if no process has it.
func pidState(pid int) (state, comm string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, unix.ESRCH) {
		// Reaped between the open and the read: gone all the same.
		err = fmt.Errorf("pid %d: %w", pid, os.ErrNotExist)
	}
	if err != nil {
		return "", "", err
	}
	s := string(b)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open || close+2 >= len(s) {
		return "", "", fmt.Errorf("pid %d: bad stat line", pid)
	}
	return string(s[close+2]), s[open+1 : close], nil
}

// errPIDTaken is a PID that clone3 found in use.
var errPIDTaken = errors.New("pid taken")

// cloneWithPID creates, from inside task from, a process with the given
// PID (clone3 with set_tid) and returns it at its first stop. It is a
// copy of from, traced from its first instruction, and a child of
// parent: from itself, or from's parent (CLONE_PARENT), whose exit
// signal it then gets too.
func cloneWithPID(from, parent *task, pid int) (*task, error) {
	tidArr, err := from.put(binary32(uint32(pid)))
	if err != nil {
		return nil, err
	}
	flags, exitSignal := uint64(0), uint64(unix.SIGCHLD)
	if from != parent {
		flags, exitSignal = unix.CLONE_PARENT, 0
	}
	// struct clone_args: flags, pidfd, child_tid, parent_tid,
	// exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup.
	args, err := from.words(flags, 0, 0, 0, exitSignal, 0, 0, 0, tidArr, 1, 0)
	if err != nil {
		return nil, err
	}
	got, err := from.call("clone3", unix.SYS_CLONE3, args, 88)
	if errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("pid %d is in use: cannot restore it with the same pid: %w",
			pid, errPIDTaken)
	}
	if err != nil {
		return nil, err
	}
	host, err := parent.hostChild(int(got))
	if err != nil {
		return nil, err
	}
	// The new task stops with SIGSTOP at the instruction after clone3.
	ws, err := ptrace.Wait(host)
	if err != nil {
		return nil, err
	}
	if !ws.Stopped() {
		return nil, fmt.Errorf("pid %d: unexpected first state %v", pid, ws)
	}
	j, err := ptrace.NewInjector(host, from.area)
	if err != nil {
		kill(host)
		return nil, err
	}
	t := newTask(host, j, from.area)
	t.vpid, t.inNS = pid, from.inNS
	if t.inNS {
		t.who = fmt.Sprintf("pid %d (%d here)", pid, host)
	}
	return t, nil
}

func binary32(v uint32) []byte {
	return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
}

// specialKind names the kernel-provided areas restore moves, never maps.
func specialKind(name string) string {
	switch name {
	case "[vdso]":
		return image.VmaVdso
	case "[vvar]":
		return image.VmaVvar
	case "[vvar_vclock]":
		return image.VmaVvarVclock
	case "[vsyscall]":
		return image.VmaVsyscall
	}
	return ""
}
