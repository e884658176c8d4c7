package tests

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// procIDs returns the process group and session of pid, from /proc.
func procIDs(t *testing.T, pid int) (pgid, sid int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	pgid, _ = strconv.Atoi(f[2])
	sid, _ = strconv.Atoi(f[3])
	return pgid, sid
}

// TestSessionLeader restores a sleep started with setsid: it comes back
// leading its own session and process group.
func TestSessionLeader(t *testing.T) {
	s := startAttr(t, &syscall.SysProcAttr{Setsid: true}, "sleep", "1000")
	if pg, sid := procIDs(t, s.pid); pg != s.pid || sid != s.pid {
		t.Fatalf("before the dump: pgid %d sid %d, want both %d", pg, sid, s.pid)
	}
	img := dump(t, s.pid)
	<-s.exited
	restore(t, img, s.pid)
	if pg, sid := procIDs(t, s.pid); pg != s.pid || sid != s.pid {
		t.Fatalf("after the restore: pgid %d sid %d, want both %d", pg, sid, s.pid)
	}
}

// TestShellJob restores a process whose session leader was outside the
// dump (this test): it comes back in a session of its own, as documented.
func TestShellJob(t *testing.T) {
	s := start(t, "", "sleep", "1000")
	_, sid := procIDs(t, s.pid)
	if sid == s.pid {
		t.Fatalf("the subject leads its session already")
	}
	img := dump(t, s.pid)
	<-s.exited
	restore(t, img, s.pid)
	if pg, sid := procIDs(t, s.pid); pg != s.pid || sid != s.pid {
		t.Fatalf("after the restore: pgid %d sid %d, want both %d (a session of its own)",
			pg, sid, s.pid)
	}
}

// TestRestoreWaitsForZombie restores while the killed subject is still an
// unreaped zombie of this test: ckpt-restore says it waits, and goes on
// once the zombie is reaped.
func TestRestoreWaitsForZombie(t *testing.T) {
	cmd := exec.Command("sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { killPID(pid) })
	img := dump(t, pid)
	waitFor(t, 10*time.Second, "the subject to be a zombie", func() bool {
		return procState(pid) == "Z"
	})

	type result struct {
		stderr string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		stderr, err := run(t, 60*time.Second, "ckpt-restore --pid-wait 30s "+img)
		done <- result{stderr, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("restore finished while the zombie held pid %d: %v\n%s", pid, r.err, r.stderr)
	case <-time.After(time.Second):
	}
	_ = cmd.Wait()
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("restore did not finish 30s after the zombie was reaped")
	}
	if r.err != nil {
		t.Fatalf("restore: %v\n%s", r.err, r.stderr)
	}
	if !strings.Contains(r.stderr, "zombie") {
		t.Errorf("restore did not say it waited for the zombie: %q", r.stderr)
	}
	if !alive(pid) {
		t.Fatalf("pid %d is not running after restore", pid)
	}
}

// TestRestoreZombieTimeout gives up, with a clear error and nothing
// created, when the zombie is not reaped in time.
func TestRestoreZombieTimeout(t *testing.T) {
	cmd := exec.Command("sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { killPID(pid); _ = cmd.Wait() })
	img := dump(t, pid)
	waitFor(t, 10*time.Second, "the subject to be a zombie", func() bool {
		return procState(pid) == "Z"
	})
	stderr, err := run(t, 30*time.Second, "ckpt-restore --pid-wait 500ms "+img)
	if err == nil {
		t.Fatalf("restore succeeded with pid %d held by a zombie", pid)
	}
	if !strings.Contains(stderr, "zombie") || !strings.Contains(stderr, strconv.Itoa(pid)) {
		t.Errorf("unclear error: %q", stderr)
	}
	if procState(pid) != "Z" {
		t.Errorf("pid %d is %q after the failed restore, want still the zombie", pid,
			procState(pid))
	}
}
