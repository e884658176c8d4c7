package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/procfs"
	"github.com/ckpt/ckpt/lib/ptrace"
	"github.com/ckpt/ckpt/lib/stage"
	"golang.org/x/sys/unix"
)

const (
	regOrigRax = 15 // index of orig_rax in user_regs_struct
	rseqSig    = 0x53053053
	saRestorer = 0x04000000
	ssDisable  = 2 // SS_DISABLE: no alternate signal stack
)

func TestScanSleep(t *testing.T) {
	needRoot(t)
	s := startSubject(t, "sleep", "1000")
	got, stderr, err := scanInProcess(t, strconv.Itoa(s.pid))
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	s.checkRunsOn(t)

	if got.header.RootPID != s.pid || got.header.Control != "" || got.header.Kill {
		t.Errorf("header %+v", got.header)
	}
	task := got.task
	if task.PID != s.pid || task.Comm != "sleep" || task.StartTime != s.start || task.PPID == 0 {
		t.Errorf("task pid %d comm %q start %d ppid %d", task.PID, task.Comm, task.StartTime, task.PPID)
	}
	if task.SID != s.pid || task.PGID != s.pid {
		t.Errorf("setsid subject: sid %d pgid %d, want %d", task.SID, task.PGID, s.pid)
	}
	if len(task.Threads) != 1 {
		t.Fatalf("%d threads", len(task.Threads))
	}
	th := task.Threads[0]
	if th.TID != s.pid || len(th.Regs) != 27 || len(th.Xstate) < 512 {
		t.Errorf("thread %d: %d regs, %d bytes of xstate", th.TID, len(th.Regs), len(th.Xstate))
	}
	if th.Regs[regOrigRax] != unix.SYS_CLOCK_NANOSLEEP && th.Regs[regOrigRax] != unix.SYS_NANOSLEEP {
		t.Errorf("sleep stopped in syscall %d, want clock_nanosleep", int64(th.Regs[regOrigRax]))
	}
	if th.Rseq.Addr != 0 && th.Rseq.Sig != rseqSig {
		t.Errorf("rseq %+v", th.Rseq)
	}
	if th.ClearChildTid == 0 || th.AltStack.Flags != ssDisable {
		t.Errorf("clear_child_tid %#x altstack %+v", th.ClearChildTid, th.AltStack)
	}
	checkVmas(t, &task)
	checkMM(t, &task)
	// Descriptors the test inherited without close-on-exec may follow.
	if fds := fdNumbers(got.fds); len(fds) < 3 || !slices.Equal(fds[:3], []int{0, 1, 2}) {
		t.Fatalf("fds %v, want 0 1 2 first", fds)
	}
	for _, fd := range got.fds[:3] {
		if fd.Link != "/dev/null" || fd.Mode&unix.S_IFMT != unix.S_IFCHR || fd.MntID == 0 {
			t.Errorf("fd %+v, want /dev/null", fd)
		}
	}
}

func fdNumbers(fds []image.Fd) []int {
	var n []int
	for _, fd := range fds {
		n = append(n, fd.Fd)
	}
	return n
}

// checkVmas looks for the libc text, the stack and the vdso.
func checkVmas(t *testing.T, task *image.Task) {
	t.Helper()
	var libc, stack, vdso bool
	for _, v := range task.Vmas {
		switch {
		case strings.Contains(v.Name, "/libc.so") && v.Prot&unix.PROT_EXEC != 0:
			libc = v.Kind == image.VmaFile && v.Ino != 0 && v.Dev != 0 && !v.Shared
		case v.Name == "[stack]":
			stack = v.Kind == image.VmaAnon && slices.Contains(v.Flags, "gd")
		case v.Name == "[vdso]":
			vdso = v.Kind == image.VmaVdso
		}
	}
	if !libc || !stack || !vdso {
		t.Errorf("libc text %v, stack %v, vdso %v in %d vmas", libc, stack, vdso, len(task.Vmas))
	}
}

// checkMM checks the mm fields against the mappings.
func checkMM(t *testing.T, task *image.Task) {
	t.Helper()
	mm := task.MM
	if mm.StartCode == 0 || mm.EndCode <= mm.StartCode || mm.ArgEnd <= mm.ArgStart ||
		mm.EnvEnd <= mm.EnvStart || mm.Brk < mm.StartBrk {
		t.Errorf("mm %+v", mm)
	}
	for _, v := range task.Vmas {
		if v.Name == "[heap]" && v.End != mm.Brk && (mm.Brk+4095)&^4095 != v.End {
			t.Errorf("brk %#x, heap ends at %#x", mm.Brk, v.End)
		}
	}
	if n := len(mm.Auxv); n < 4 || mm.Auxv[n-2] != 0 {
		t.Errorf("auxv %v", mm.Auxv)
	}
}

func TestScanPython(t *testing.T) {
	needRoot(t)
	s := startCounter(t)
	st, err := procfs.ReadStat(s.pid)
	if err != nil {
		t.Fatal(err)
	}
	got, stderr, err := scanInProcess(t, "-v", strconv.Itoa(s.pid))
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	t.Log(strings.TrimSpace(stderr))
	s.checkRunsOn(t)

	task := got.task
	if task.PID != s.pid || task.Comm != st.Comm || !strings.Contains(task.Exe, "python") {
		t.Errorf("task pid %d comm %q exe %q", task.PID, task.Comm, task.Exe)
	}
	checkVmas(t, &task)
	checkMM(t, &task)
	if len(task.SigActions) != 64 {
		t.Fatalf("%d sigactions", len(task.SigActions))
	}
	sigint := task.SigActions[unix.SIGINT-1]
	if sigint.Handler <= 1 || sigint.Flags&saRestorer == 0 || sigint.Restorer == 0 {
		t.Errorf("SIGINT: %+v, want python's handler", sigint)
	}
	if term := task.SigActions[unix.SIGTERM-1]; term.Handler != 0 {
		t.Errorf("SIGTERM: %+v, want the default", term)
	}
	if task.Rlimits[unix.RLIMIT_NOFILE].Resource != unix.RLIMIT_NOFILE {
		t.Errorf("rlimits %+v", task.Rlimits)
	}
	var counted bool
	for _, fd := range got.fds {
		if fd.Link == s.out {
			counted = fd.Flags&unix.O_ACCMODE == unix.O_WRONLY && fd.Pos > 0 && fd.Mode&unix.S_IFMT == unix.S_IFREG
		}
	}
	if !counted {
		t.Errorf("no write fd on %s in %+v", s.out, got.fds)
	}
}

func TestRefusals(t *testing.T) {
	needRoot(t)
	pidMax, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pid  func(t *testing.T) int
		want string
	}{
		{"missing", func(t *testing.T) int {
			n, _ := strconv.Atoi(strings.TrimSpace(string(pidMax)))
			return n
		}, "does not exist"},
		{"itself", func(t *testing.T) int { return os.Getpid() }, "is ckpt-scan itself"},
		{"ancestor", func(t *testing.T) int { return os.Getppid() }, "is an ancestor of ckpt-scan"},
		{"kernel thread", func(t *testing.T) int { return 2 }, "is a kernel thread"},
		{"thread", func(t *testing.T) int { return otherThread(t) }, "is a thread of process"},
		{"stopped child", func(t *testing.T) int {
			s := startSubject(t, python3(t), "-c", "import subprocess,time\n"+
				"for _ in range(2): subprocess.Popen(['sleep', '1000'])\ntime.sleep(1000)")
			var kids []int
			// Both must have exec'd sleep: a child stopped before its
			// exec leaves python waiting in vfork, where it cannot be
			// frozen (TestScanVforkParent in tests/).
			waitFor(t, 5*time.Second, "the children to run sleep", func() bool {
				kids, _ = procfs.Children(s.pid)
				for _, k := range kids {
					if st, err := procfs.ReadStat(k); err != nil || st.Comm != "sleep" {
						return false
					}
				}
				return len(kids) == 2
			})
			t.Cleanup(func() {
				for _, k := range kids {
					_ = unix.Kill(k, unix.SIGKILL)
				}
			})
			if err := unix.Kill(kids[1], unix.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "the stop", func() bool {
				st, err := procfs.ReadStat(kids[1])
				return err == nil && st.State == 'T'
			})
			return s.pid
		}, "child of"},
		{"stopped", func(t *testing.T) int {
			s := startSubject(t, "sleep", "1000")
			if err := unix.Kill(s.pid, unix.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "the stop", func() bool { return s.status(t).State == 'T' })
			return s.pid
		}, "is stopped (SIGSTOP, ctrl-Z)"},
		{"traced", func(t *testing.T) int { return tracedSleep(t) },
			fmt.Sprintf("is already traced by pid %d (", os.Getpid())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pid := tt.pid(t)
			_, stderr, err := scanInProcess(t, strconv.Itoa(pid))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("scan of pid %d: %v, want %q\n%s", pid, err, tt.want, stderr)
			}
			t.Log(err)
		})
	}
}

// otherThread returns the TID of a thread of this test process other
// than the main one.
func otherThread(t *testing.T) int {
	tids, err := procfs.Tasks(os.Getpid())
	if err != nil || len(tids) < 2 {
		t.Fatalf("threads of the test: %v, %v", tids, err)
	}
	return tids[1]
}

// tracedSleep starts a sleep that a goroutine of this test traces until
// the test ends.
func tracedSleep(t *testing.T) int {
	s := startSubject(t, "sleep", "1000")
	seized, release := make(chan error), make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := ptrace.Seize(s.pid)
		seized <- err
		if err != nil {
			return
		}
		<-release
		_ = ptrace.Interrupt(s.pid)
		_, _ = ptrace.WaitStop(s.pid)
		_ = ptrace.Detach(s.pid)
	}()
	if err := <-seized; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(release) })
	return s.pid
}

func TestZombieRefused(t *testing.T) {
	needRoot(t)
	// A child of a sh that never waits: it stays a zombie while the sh
	// sleeps.
	s := startSubject(t, "sh", "-c", "true & exec sleep 1000")
	var zombie int
	waitFor(t, 5*time.Second, "the zombie", func() bool {
		kids, _ := procfs.Children(s.pid)
		for _, k := range kids {
			if st, err := procfs.ReadStat(k); err == nil && st.State == 'Z' {
				zombie = k
				return true
			}
		}
		return false
	})
	_, _, err := scanInProcess(t, strconv.Itoa(zombie))
	if err == nil || !strings.Contains(err.Error(), "is a zombie") {
		t.Fatalf("scan of a zombie: %v", err)
	}
}

func TestArgs(t *testing.T) {
	good := map[string]options{
		"12":           {pid: 12},
		"--kill 12 -v": {pid: 12, kill: true, verbose: true},
		"12 --kill":    {pid: 12, kill: true},
		"-v 12":        {pid: 12, verbose: true},
	}
	for line, want := range good {
		o, err := parseArgs(strings.Fields(line), &strings.Builder{})
		if err != nil || *o != want {
			t.Errorf("%q: %+v, %v", line, o, err)
		}
	}
	for _, line := range []string{"", "12 13", "x", "-12", "0", "--bogus 12"} {
		if _, err := parseArgs(strings.Fields(line), &strings.Builder{}); !errors.Is(err, errUsage) {
			t.Errorf("%q: %v, want a usage error", line, err)
		}
	}
}

func TestKillNeedsPipe(t *testing.T) {
	f, err := os.Create(t.TempDir() + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = run(context.Background(), []string{"--kill", "1"}, nil, f, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "--kill needs stdout to be a pipe") {
		t.Fatalf("--kill into a file: %v", err)
	}
}

// TestHoldUntilReaderGone runs ckpt-scan into a pipe: the counter stays
// frozen while the pipe is open, and runs on once it is closed.
func TestHoldUntilReaderGone(t *testing.T) {
	needRoot(t)
	s := startCounter(t)
	p := startScan(t, "-v", strconv.Itoa(s.pid))
	got := decode(t, p.out)
	if got.task.PID != s.pid {
		t.Fatalf("task %d", got.task.PID)
	}
	n := s.count()
	time.Sleep(100 * time.Millisecond)
	s.checkFrozen(t, p.cmd.Process.Pid)
	if s.count() != n {
		t.Errorf("the counter went on from %d to %d while held", n, s.count())
	}
	p.out.Close()
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr())
	}
	s.checkRunsOn(t)
	t.Log(strings.TrimSpace(p.stderr()))
}

// TestKillOnComplete plays the final stage: it reports a complete archive
// on the control socket, and ckpt-scan kills the frozen process.
func TestKillOnComplete(t *testing.T) {
	needRoot(t)
	s := startCounter(t)
	p := startScan(t, "--kill", strconv.Itoa(s.pid))
	got := decode(t, p.out)
	if !got.header.Kill || got.header.Control == "" {
		t.Fatalf("header %+v", got.header)
	}
	ctl, err := stage.Dial(got.header.Control, "test-final")
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	n := s.count()
	what, err := ctl.Complete()
	if err != nil || what != "killed" {
		t.Fatalf("complete: %q, %v", what, err)
	}
	s.checkDead(t)
	if s.count() != n {
		t.Errorf("the counter went on from %d to %d before the kill", n, s.count())
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr())
	}
	if _, err := os.Stat(got.header.Control); !os.IsNotExist(err) {
		t.Errorf("control socket left behind: %v", err)
	}
}

// TestKillFailureResumes: the final stage goes away without a report, so
// the process runs on and ckpt-scan says the dump failed.
func TestKillFailureResumes(t *testing.T) {
	needRoot(t)
	s := startCounter(t)
	p := startScan(t, "--kill", strconv.Itoa(s.pid))
	got := decode(t, p.out)
	ctl, err := stage.Dial(got.header.Control, "test-final")
	if err != nil {
		t.Fatal(err)
	}
	ctl.Close()
	s.checkFrozen(t, p.cmd.Process.Pid)
	p.out.Close()
	if code := p.wait(t); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, p.stderr())
	}
	if !strings.Contains(p.stderr(), "dump failed downstream: tree resumed, not killed") {
		t.Errorf("stderr: %s", p.stderr())
	}
	s.checkRunsOn(t)
}

// TestSignalsRelease: SIGTERM releases the process; SIGKILL of ckpt-scan
// leaves it to the kernel, which detaches it unharmed.
func TestSignalsRelease(t *testing.T) {
	needRoot(t)
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGKILL} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			s := startCounter(t)
			p := startScan(t, "--kill", strconv.Itoa(s.pid))
			decode(t, p.out)
			s.checkFrozen(t, p.cmd.Process.Pid)
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			code := p.wait(t)
			if sig != unix.SIGKILL {
				want := "interrupted by " + unix.SignalName(sig)
				if code != 1 || !strings.Contains(p.stderr(), want) {
					t.Errorf("exit %d, stderr %q; want 1 and %q", code, p.stderr(), want)
				}
			}
			s.checkRunsOn(t)
		})
	}
}
