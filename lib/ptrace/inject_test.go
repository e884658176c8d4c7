package ptrace

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func vdso(t *testing.T, pid int) (uint64, uint64) {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasSuffix(sc.Text(), "[vdso]") {
			r := strings.Fields(sc.Text())[0]
			a, b, _ := strings.Cut(r, "-")
			s, _ := strconv.ParseUint(a, 16, 64)
			e, _ := strconv.ParseUint(b, 16, 64)
			return s, e
		}
	}
	t.Fatal("no vdso")
	return 0, 0
}

// TestInjectIntoSleep injects getpid and a scratch write into a sleeping
// task and checks that it sleeps on unharmed and still ends on SIGTERM.
func TestInjectIntoSleep(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to trace")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer cmd.Process.Kill()
	time.Sleep(100 * time.Millisecond)
	if err := Seize(pid); err != nil {
		t.Fatal(err)
	}
	if err := Interrupt(pid); err != nil {
		t.Fatal(err)
	}
	if _, err := WaitStop(pid); err != nil {
		t.Fatal(err)
	}
	before, _ := GetRegs(pid)
	s, e := vdso(t, pid)
	insn, err := FindSyscall(pid, s, e)
	if err != nil {
		t.Fatal(err)
	}
	j, err := NewInjector(pid, insn)
	if err != nil {
		t.Fatal(err)
	}
	got, err := j.Syscall(unix.SYS_GETPID)
	if err != nil || int(got) != pid {
		t.Fatalf("getpid = %d, %v; want %d", got, err, pid)
	}
	addr, err := j.Scratch(64)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Syscall(unix.SYS_RT_SIGACTION, 15, 0, addr, 8); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Syscall(unix.SYS_CLOSE, 9999); err == nil {
		t.Fatal("close(9999) succeeded")
	}
	if err := j.Restore(); err != nil {
		t.Fatal(err)
	}
	after, _ := GetRegs(pid)
	if *after != *before {
		t.Fatalf("registers changed: %+v vs %+v", after, before)
	}
	if err := Detach(pid); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	var ws unix.WaitStatus
	if p, _ := unix.Wait4(pid, &ws, unix.WNOHANG, nil); p != 0 {
		t.Fatalf("sleep ended early: %v", ws)
	}
	_ = cmd.Process.Signal(unix.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
			t.Fatalf("sleep ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("sleep did not end on SIGTERM")
	}
}
