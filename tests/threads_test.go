package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// taskTIDs returns the TIDs listed in /proc/PID/task, sorted.
func taskTIDs(t *testing.T, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var tids []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, n)
		}
	}
	slices.Sort(tids)
	return tids
}

// threadComm returns /proc/PID/task/TID/comm.
func threadComm(pid, tid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", pid, tid))
	return strings.TrimSpace(string(b))
}

const threadsPy = `import threading, time
lock = threading.Lock()
n = 0
def work(k):
    global n
    while True:
        with lock:
            print(n, k, flush=True)
            n += 1
        time.sleep(0.01 * (k + 1))
for k in range(4):
    threading.Thread(target=work, args=(k,), daemon=True).start()
while True:
    time.sleep(1)
`

// checkLocked checks that every line of a threadsPy log is "N K" with N
// going 0, 1, 2, ... without a gap or repeat, and returns the threads K
// seen from line from on.
func checkLocked(t *testing.T, log []string, from int) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for i, l := range log {
		n, k, ok := strings.Cut(l, " ")
		if !ok || n != strconv.Itoa(i) {
			t.Fatalf("line %d of the log is %q, want %d and a thread (gap or repeat)", i, l, i)
		}
		if i >= from {
			seen[k] = true
		}
	}
	return seen
}

// TestThreadsPython checkpoints python3 with four threads that count under
// a lock and sleep, and checks that the restored process has the same
// TIDs and that every thread goes on counting without a gap or repeat.
func TestThreadsPython(t *testing.T) {
	log := filepath.Join(t.TempDir(), "count.log")
	s := start(t, log, "python3", "-c", threadsPy)
	waitFor(t, 10*time.Second, "40 lines of count", func() bool { return len(lines(t, log)) >= 40 })
	tids := taskTIDs(t, s.pid)
	if len(tids) != 5 {
		t.Fatalf("python3 has threads %v, want 5", tids)
	}

	img := dump(t, s.pid)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the dumped process is still running after ckpt-scan --kill")
	}
	before := len(lines(t, log))
	checkLocked(t, lines(t, log), 0)

	restore(t, img, s.pid)
	if got := taskTIDs(t, s.pid); !slices.Equal(got, tids) {
		t.Fatalf("restored threads %v, want %v", got, tids)
	}
	waitFor(t, 10*time.Second, "60 more lines of count", func() bool {
		return len(lines(t, log)) >= before+60
	})
	seen := checkLocked(t, lines(t, log), before)
	for k := range 4 {
		if !seen[strconv.Itoa(k)] {
			t.Errorf("thread %d did not count after restore", k)
		}
	}
	for _, tid := range tids {
		if got := tracerPID(tid); got != 0 {
			t.Errorf("restored thread %d is still traced by %d", tid, got)
		}
	}
}

// threadsRound is what one round of testdata/threads.c printed, by
// thread: "worker K", "waiter", "timed".
type threadsRound map[string]threadLine

type threadLine struct {
	tid   int
	ok    bool // every check of a worker said OK
	count int
}

// readRound collects round r of threads.c's output in out, waiting until
// nwork workers and both waiters have printed it.
func readRound(t *testing.T, out string, r, nwork int) threadsRound {
	t.Helper()
	var got threadsRound
	waitFor(t, 20*time.Second, fmt.Sprintf("round %d of %d threads", r, nwork+2), func() bool {
		got = threadsRound{}
		for _, l := range lines(t, out) {
			f := strings.Fields(l)
			if len(f) < 3 || f[1] != strconv.Itoa(r) {
				continue
			}
			key, rest := f[0], f[2:]
			if f[0] == "worker" {
				key, rest = "worker "+f[2], f[3:]
			}
			got[key] = parseThreadLine(t, l, rest)
		}
		return len(got) == nwork+2
	})
	return got
}

func parseThreadLine(t *testing.T, l string, fields []string) threadLine {
	t.Helper()
	tl := threadLine{ok: true}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "tid":
			tl.tid, _ = strconv.Atoi(v)
		case "count":
			tl.count, _ = strconv.Atoi(v)
		default:
			tl.ok = tl.ok && v == "OK"
		}
	}
	if tl.tid == 0 {
		t.Fatalf("no tid in %q", l)
	}
	return tl
}

// startThreads starts testdata/threads.c with nwork workers that sleep
// ms between counts, and returns it with its TIDs from its READY line.
func startThreads(t *testing.T, nwork, ms int) (*subject, string, []int) {
	t.Helper()
	prog := compileC(t, "threads.c")
	out := filepath.Join(t.TempDir(), "threads.out")
	s := start(t, out, prog, strconv.Itoa(nwork), strconv.Itoa(ms))
	waitFor(t, 30*time.Second, "READY", func() bool { return len(lines(t, out)) >= 1 })
	f := strings.Fields(lines(t, out)[0])
	if len(f) != nwork+4 || f[0] != "READY" {
		t.Fatalf("first line %q, want READY and %d TIDs", lines(t, out)[0], nwork+3)
	}
	var tids []int
	for _, x := range f[1:] {
		n, _ := strconv.Atoi(x)
		tids = append(tids, n)
	}
	slices.Sort(tids)
	if got := taskTIDs(t, s.pid); !slices.Equal(got, tids) {
		t.Fatalf("/proc lists threads %v, the program says %v", got, tids)
	}
	return s, out, tids
}

// TestThreadsC checkpoints a C program with four counting workers, each
// with its own TLS value, name, sigaltstack, robust list and rseq, and
// two threads blocked in futex waits (one with a timeout), while the main
// thread waits in sigwait. After restore every thread must have its TID,
// pass its own checks, and the counters go on from where they were.
func TestThreadsC(t *testing.T) {
	const nwork = 4
	s, out, tids := startThreads(t, nwork, 1)
	if err := syscall.Kill(s.pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	first := readRound(t, out, 1, nwork)
	for k, l := range first {
		if !l.ok {
			t.Fatalf("%s fails its checks before the dump (the checker is wrong)", k)
		}
	}

	img := dump(t, s.pid)
	<-s.exited
	restore(t, img, s.pid)
	if got := taskTIDs(t, s.pid); !slices.Equal(got, tids) {
		t.Fatalf("restored threads %v, want %v", got, tids)
	}
	for k := range nwork {
		tid := first[fmt.Sprintf("worker %d", k)].tid
		if got, want := threadComm(s.pid, tid), fmt.Sprintf("worker-%d", k); got != want {
			t.Errorf("thread %d is named %q, want %q", tid, got, want)
		}
	}
	if err := syscall.Kill(s.pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	second := readRound(t, out, 2, nwork)
	for k, l := range second {
		was := first[k]
		switch {
		case l.tid != was.tid:
			t.Errorf("%s has tid %d after restore, %d before", k, l.tid, was.tid)
		case !l.ok:
			t.Errorf("%s fails its checks after restore (tid %d)", k, l.tid)
		case strings.HasPrefix(k, "worker") && l.count <= was.count:
			t.Errorf("%s counted %d after restore, %d before: not going on", k, l.count, was.count)
		}
	}
}

// TestThreads200 checkpoints and restores the C program with 200 workers
// and reports how long the dump, the freeze and the restore took.
func TestThreads200(t *testing.T) {
	const nwork = 200
	s, out, tids := startThreads(t, nwork, 50)
	if err := syscall.Kill(s.pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	first := readRound(t, out, 1, nwork)

	img := filepath.Join(t.TempDir(), "img")
	begin := time.Now()
	stderr, err := run(t, 120*time.Second, fmt.Sprintf(
		"ckpt-scan -v --kill %d | ckpt-files | ckpt-mem | ckpt-pack > %s", s.pid, img))
	if err != nil {
		t.Fatalf("dump: %v\n%s", err, stderr)
	}
	dumped := time.Since(begin)
	<-s.exited
	t.Cleanup(func() { killPID(s.pid) })
	begin = time.Now()
	rstderr, err := run(t, 60*time.Second, "ckpt-restore -v "+img)
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, rstderr)
	}
	restored := time.Since(begin)
	t.Logf("%d threads: dump %v, restore %v; %s", len(tids),
		dumped.Round(time.Millisecond), restored.Round(time.Millisecond),
		strings.ReplaceAll(strings.TrimSpace(stderr+rstderr), "\n", "; "))
	if got := taskTIDs(t, s.pid); !slices.Equal(got, tids) {
		t.Fatalf("restored %d threads, want %d (%v...)", len(got), len(tids), tids[:3])
	}
	if err := syscall.Kill(s.pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	for k, l := range readRound(t, out, 2, nwork) {
		if l.tid != first[k].tid || !l.ok {
			t.Errorf("%s: tid %d (was %d), checks ok %v", k, l.tid, first[k].tid, l.ok)
		}
	}
}
