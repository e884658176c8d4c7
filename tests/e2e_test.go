package tests

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const counterPy = `import time, itertools
for i in itertools.count():
    print(i, flush=True)
    time.sleep(0.05)
`

// checkCount checks that log holds 0, 1, 2, ... without a gap or repeat.
func checkCount(t *testing.T, log []string) {
	t.Helper()
	for i, l := range log {
		if l != strconv.Itoa(i) {
			t.Fatalf("line %d of the log is %q, want %d (gap or repeat)", i, l, i)
		}
	}
}

// TestPythonCounter checkpoints a python3 counter that appends to a log
// and checks that the restored one, with the same PID, goes on counting
// from where it stopped.
func TestPythonCounter(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "count.log")
	s := start(t, log, "python3", "-c", counterPy)
	waitFor(t, 10*time.Second, "20 lines of count", func() bool { return len(lines(t, log)) >= 20 })

	img := dump(t, s.pid)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the dumped process is still running after ckpt-scan --kill")
	}
	before := len(lines(t, log))
	checkCount(t, lines(t, log))

	restore(t, img, s.pid)
	if !alive(s.pid) {
		t.Fatalf("pid %d is not running after restore", s.pid)
	}
	comm, _ := os.ReadFile("/proc/" + strconv.Itoa(s.pid) + "/comm")
	if strings.TrimSpace(string(comm)) != "python3" {
		t.Fatalf("pid %d is %q, not python3", s.pid, comm)
	}
	waitFor(t, 10*time.Second, "20 more lines of count", func() bool {
		return len(lines(t, log)) >= before+20
	})
	checkCount(t, lines(t, log))
	if got := tracerPID(s.pid); got != 0 {
		t.Fatalf("restored process is still traced by %d", got)
	}
}

// TestHeap256 checkpoints a C program holding 256 MiB of patterned heap, a
// stack value and values in r12 and xmm15, and has it check them all after
// restore.
func TestHeap256(t *testing.T) {
	prog := compileC(t, "heap.c")
	out := filepath.Join(t.TempDir(), "heap.out")
	s := start(t, out, prog, "256")
	waitFor(t, 30*time.Second, "READY", func() bool { return len(lines(t, out)) >= 1 })
	// One check round before the dump proves the checker itself.
	_ = syscall.Kill(s.pid, syscall.SIGUSR1)
	waitFor(t, 30*time.Second, "first check", func() bool { return len(lines(t, out)) >= 2 })
	if l := lines(t, out)[1]; !strings.HasPrefix(l, "OK round=0") {
		t.Fatalf("check before dump: %s", l)
	}

	img := dump(t, s.pid)
	<-s.exited
	restore(t, img, s.pid)
	_ = syscall.Kill(s.pid, syscall.SIGUSR1)
	waitFor(t, 30*time.Second, "check after restore", func() bool { return len(lines(t, out)) >= 3 })
	if l := lines(t, out)[2]; !strings.HasPrefix(l, "OK round=1 bad=0") {
		t.Fatalf("check after restore: %s", l)
	}
}

// TestSleep restores `sleep 1000` while it sleeps, from the archive on
// stdin: it keeps sleeping and still ends on SIGTERM.
func TestSleep(t *testing.T) {
	s := start(t, "", "sleep", "1000")
	waitFor(t, 5*time.Second, "sleep to sleep", func() bool { return procState(s.pid) == "S" })
	img := dump(t, s.pid)
	<-s.exited
	t.Cleanup(func() { killPID(s.pid) })
	if stderr, err := run(t, 60*time.Second, "ckpt-restore < "+img); err != nil {
		t.Fatalf("restore from stdin: %v\n%s", err, stderr)
	}
	time.Sleep(500 * time.Millisecond)
	if st := procState(s.pid); st != "S" {
		t.Fatalf("restored sleep is in state %q, want S (sleeping)", st)
	}
	if err := syscall.Kill(s.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "sleep to end on SIGTERM", func() bool { return !alive(s.pid) })
}
