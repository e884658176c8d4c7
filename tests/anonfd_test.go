package tests

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// anonRun is one subject of testdata/anonfd.c.
type anonRun struct {
	t     *testing.T
	out   string
	pid   int
	round int
}

// check sends the subject a SIGUSR1 for its signalfd, then a SIGUSR2 to
// make it check its fds, and fails the test on any BAD line of that
// round.
func (r *anonRun) check(when string) {
	r.t.Helper()
	for _, sig := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGUSR2} {
		if err := syscall.Kill(r.pid, sig); err != nil {
			r.t.Fatalf("signal pid %d: %v", r.pid, err)
		}
	}
	done := fmt.Sprintf("DONE %d", r.round)
	waitFor(r.t, 30*time.Second, "check round "+done, func() bool {
		return slices.Contains(lines(r.t, r.out), done)
	})
	round, ok := 0, 0
	for _, l := range lines(r.t, r.out) {
		switch {
		case strings.HasPrefix(l, "DONE "):
			round++
		case round == r.round && strings.HasPrefix(l, "BAD "):
			r.t.Errorf("%s: %s", when, l)
		case round == r.round && strings.HasPrefix(l, "OK "):
			ok++
		}
	}
	if ok != 18 {
		r.t.Errorf("%s: %d checks passed, want 18", when, ok)
	}
	r.round++
}

// TestAnonFds dumps and restores a process holding two eventfds (one a
// semaphore), a signalfd, three timerfds (one periodic, one expired and
// not read, one absolute) and an epoll watching three of them. The process checks
// them itself before the dump, which proves the checks, and after the
// restore: counters, signal delivery through the signalfd, timer
// interval and expirations, the data epoll_wait returns, fd flags.
func TestAnonFds(t *testing.T) {
	prog := compileC(t, "anonfd.c")
	out := filepath.Join(t.TempDir(), "out")
	s := start(t, out, prog)
	r := &anonRun{t: t, out: out, pid: s.pid}
	waitFor(t, 30*time.Second, "READY", func() bool {
		return slices.ContainsFunc(lines(t, out), func(l string) bool {
			return strings.HasPrefix(l, "READY")
		})
	})
	r.check("before the dump")
	// Let the one-shot timer expire and the periodic one wait to be read.
	time.Sleep(200 * time.Millisecond)

	img := dump(t, s.pid)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the dumped subject still runs after ckpt-scan --kill")
	}
	got := readImageFiles(t, img)
	want := map[string]int{image.FileEventfd: 2, image.FileSignalfd: 1,
		image.FileTimerfd: 3, image.FileEpoll: 1}
	for kind, n := range want {
		if got.kinds[kind] != n {
			t.Errorf("image holds %d %s files, want %d", got.kinds[kind], kind, n)
		}
	}
	checkAnonImage(t, got.files)

	restore(t, img, s.pid)
	r.check("after the restore")
	r.check("again")
}

// checkAnonImage checks the state the archive holds.
func checkAnonImage(t *testing.T, files []image.File) {
	t.Helper()
	var counts []uint64
	var ticks []uint64
	for _, f := range files {
		switch {
		case f.Eventfd != nil:
			counts = append(counts, f.Eventfd.Count)
			if f.Eventfd.Semaphore != (f.Eventfd.Count == 3) {
				t.Errorf("eventfd %+v: only the one with 3 is a semaphore", *f.Eventfd)
			}
		case f.Signalfd != nil:
			if f.Signalfd.Mask != 1<<(syscall.SIGUSR1-1) {
				t.Errorf("signalfd mask %#x, want SIGUSR1 alone", f.Signalfd.Mask)
			}
		case f.Timerfd != nil:
			ticks = append(ticks, f.Timerfd.Ticks)
		case f.Epoll != nil:
			if len(f.Epoll.Targets) != 3 {
				t.Errorf("epoll targets %+v, want 3", f.Epoll.Targets)
			}
		}
	}
	slices.Sort(counts)
	if !slices.Equal(counts, []uint64{3, 5}) {
		t.Errorf("eventfd counters %v, want 3 and 5", counts)
	}
	slices.Sort(ticks)
	if !slices.Equal(ticks, []uint64{0, 1, 1}) {
		t.Errorf("timerfd unread expirations %v, want 0, 1 and 1", ticks)
	}
}

// lingering is a python3 subject whose epoll still watches an eventfd
// through an fd number it closed after EPOLL_CTL_ADD: a dup keeps the
// eventfd open, so the entry stays, but nothing could add it again.
const lingering = `
import os, select, time
e = os.eventfd(0)
keep = os.dup(e)
ep = select.epoll()
ep.register(e, select.EPOLLIN)
os.close(e)
print("READY", ep.fileno(), e, flush=True)
time.sleep(3600)
`

// TestAnonFdsLingeringTarget: the dump is refused, naming the task, the
// epoll fd and the closed target fd, and the subject runs on.
func TestAnonFdsLingeringTarget(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	s := start(t, out, "python3", "-c", lingering)
	var ready []string
	waitFor(t, 30*time.Second, "READY", func() bool {
		for _, l := range lines(t, out) {
			if strings.HasPrefix(l, "READY") {
				ready = strings.Fields(l)
				return true
			}
		}
		return false
	})
	if len(ready) != 3 {
		t.Fatalf("subject said %q", ready)
	}
	img := filepath.Join(t.TempDir(), "img")
	line := fmt.Sprintf("ckpt-scan --kill %d | ckpt-files | ckpt-mem | ckpt-pack > %s", s.pid, img)
	stderr, err := run(t, 60*time.Second, line)
	if err == nil {
		t.Fatal("an epoll with a closed target fd was dumped")
	}
	want := fmt.Sprintf("ckpt-files: pid %d fd %s: anon_inode:[eventpoll]: epoll target fd %s "+
		"(", s.pid, ready[1], ready[2])
	if !strings.Contains(stderr, want) || !strings.Contains(stderr, "is no longer open") {
		t.Errorf("stderr %q, want it to contain %q and say the target is no longer open",
			stderr, want)
	}
	waitFor(t, 10*time.Second, "the subject to run again", func() bool {
		return alive(s.pid) && tracerPID(s.pid) == 0
	})
}

// forkRound has the parent, then the child, of anonfd_fork check their
// fds, and fails the test on any BAD line.
func forkRound(t *testing.T, out string, pids [2]int, round int, when string) {
	t.Helper()
	for i, who := range []string{"parent", "child"} {
		if err := syscall.Kill(pids[i], syscall.SIGUSR2); err != nil {
			t.Fatalf("signal the %s, pid %d: %v", who, pids[i], err)
		}
		done := fmt.Sprintf("DONE %s %d", who, round)
		waitFor(t, 30*time.Second, done, func() bool {
			return slices.Contains(lines(t, out), done)
		})
	}
	counts := map[string]int{}
	for _, l := range lines(t, out) {
		f := strings.Fields(l)
		switch {
		case len(f) == 3 && f[0] == "DONE":
			counts["DONE "+f[1]]++
		case len(f) > 2 && counts["DONE "+f[1]] == round && f[0] == "BAD":
			t.Errorf("%s: %s", when, l)
		case len(f) > 2 && counts["DONE "+f[1]] == round && f[0] == "OK":
			counts[f[1]]++
		}
	}
	if counts["parent"] != 4 || counts["child"] != 4 {
		t.Errorf("%s: %d checks of the parent and %d of the child passed, want 4 each",
			when, counts["parent"], counts["child"])
	}
}

// kcmpFile reports whether fd1 of pid1 and fd2 of pid2 are one open file
// description.
func kcmpFile(t *testing.T, pid1, fd1, pid2, fd2 int) bool {
	t.Helper()
	r, _, errno := syscall.Syscall6(unix.SYS_KCMP, uintptr(pid1), uintptr(pid2),
		0 /* KCMP_FILE */, uintptr(fd1), uintptr(fd2), 0)
	if errno != 0 {
		t.Fatalf("kcmp pid %d fd %d, pid %d fd %d: %v", pid1, fd1, pid2, fd2, errno)
	}
	return r == 0
}

// TestAnonFdsFork: an eventfd, a timerfd and an epoll watching both,
// shared by a process and its child, are one description each again
// after the restore: the counter the parent writes is the one the child
// reads, and both epoll_waits report both targets.
func TestAnonFdsFork(t *testing.T) {
	prog := compileC(t, "anonfd_fork.c")
	out := filepath.Join(t.TempDir(), "out")
	s := start(t, out, prog)
	var pids [2]int
	waitFor(t, 30*time.Second, "READY", func() bool {
		for _, l := range lines(t, out) {
			if _, err := fmt.Sscanf(l, "READY %d %d", &pids[0], &pids[1]); err == nil {
				return true
			}
		}
		return false
	})
	t.Cleanup(func() { killPID(pids[1]) })
	forkRound(t, out, pids, 0, "before the dump")

	img := dump(t, s.pid)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the dumped subject still runs after ckpt-scan --kill")
	}
	got := readImageFiles(t, img)
	if got.kinds[image.FileEventfd] != 1 || got.kinds[image.FileTimerfd] != 1 ||
		got.kinds[image.FileEpoll] != 1 {
		t.Errorf("image holds %v, want one eventfd, timerfd and epoll", got.kinds)
	}
	waitFor(t, 10*time.Second, "the child to be gone", func() bool { return !alive(pids[1]) })

	restore(t, img, s.pid)
	for fd := 3; fd <= 5; fd++ {
		if !kcmpFile(t, pids[0], fd, pids[1], fd) {
			t.Errorf("fd %d of the parent and the child are two descriptions after the restore", fd)
		}
	}
	forkRound(t, out, pids, 1, "after the restore")
}
