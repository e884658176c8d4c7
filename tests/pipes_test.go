package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pipesSubject starts testdata/pipes.c in mode all: two pipes and a named
// pipe with bytes in flight (40000 bytes, a full 1 MiB pipe, 5000 bytes)
// and the write end of a pipe without a reader. It returns the subject,
// its output file, the named pipe and the fd links of the subject.
func pipesSubject(t *testing.T) (*subject, string, string, map[string]string) {
	t.Helper()
	prog := compileC(t, "pipes.c")
	dir := t.TempDir()
	out, fifo := filepath.Join(dir, "out"), filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	s := start(t, out, prog, "all", fifo)
	waitFor(t, 30*time.Second, "READY", func() bool { return len(lines(t, out)) >= 1 })
	var fds [6]int
	if _, err := fmt.Sscanf(lines(t, out)[0], "READY %d %d %d %d %d %d", &fds[0], &fds[1],
		&fds[2], &fds[3], &fds[4], &fds[5]); err != nil {
		t.Fatalf("subject says %q: %v", lines(t, out)[0], err)
	}
	links := map[string]string{}
	for i, name := range []string{"a0", "a1", "b0", "b1", "f", "c1"} {
		links[name] = fdLink(t, s.pid, fds[i])
	}
	return s, out, fifo, links
}

func fdLink(t *testing.T, pid, fd int) string {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// checkLinks checks that the ends of each pipe are one pipe, the pipes
// three different ones, and the named pipe at its path.
func checkLinks(t *testing.T, links map[string]string, fifo string) {
	t.Helper()
	a, b, c := links["a0"], links["b0"], links["c1"]
	if !strings.HasPrefix(a, "pipe:[") || links["a1"] != a || links["b1"] != b ||
		a == b || b == c || a == c || links["f"] != fifo {
		t.Errorf("fd links %v: want two pairs of one pipe each, another pipe, and %s", links,
			fifo)
	}
}

// signalCheck asks the subject to check its pipes and returns its answer,
// line n of out.
func signalCheck(t *testing.T, pid int, out string, n int) string {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the subject's check", func() bool { return len(lines(t, out)) >= n })
	return lines(t, out)[n-1]
}

// TestPipes checkpoints a process with pipes full of bytes, kills it and
// restores it: every pipe comes back with its buffer size, its bytes in
// flight byte for byte, and its fds with their flags; the pipes carry
// bytes on; a write to the pipe whose reader was gone gets EPIPE.
func TestPipes(t *testing.T) {
	s, out, fifo, before := pipesSubject(t)
	checkLinks(t, before, fifo)
	img := dump(t, s.pid)
	<-s.exited
	restore(t, img, s.pid)

	checkLinks(t, restoredLinks(t, s.pid, out), fifo)
	if got := signalCheck(t, s.pid, out, 2); got != "OK round=1 a=40000 b=1048576 f=5000" {
		t.Fatalf("after restore: %s", got)
	}
}

// restoredLinks reads the links of the fds the subject listed in its
// READY line.
func restoredLinks(t *testing.T, pid int, out string) map[string]string {
	t.Helper()
	var fds [6]int
	if _, err := fmt.Sscanf(lines(t, out)[0], "READY %d %d %d %d %d %d", &fds[0], &fds[1],
		&fds[2], &fds[3], &fds[4], &fds[5]); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{}
	for i, name := range []string{"a0", "a1", "b0", "b1", "f", "c1"} {
		links[name] = fdLink(t, pid, fds[i])
	}
	return links
}

// TestPipesLeftRunning dumps the process without --kill: it runs on and
// finds every byte in its pipes, unread by the dump. Then it is killed,
// and the image restores it as it was at the dump, bytes in flight again.
func TestPipesLeftRunning(t *testing.T) {
	s, out, fifo, links := pipesSubject(t)
	checkLinks(t, links, fifo)
	img := filepath.Join(t.TempDir(), "img")
	begin := time.Now()
	line := fmt.Sprintf("ckpt-scan %d | ckpt-files -v | ckpt-mem | ckpt-pack > %s", s.pid, img)
	stderr, err := run(t, 60*time.Second, line)
	if err != nil {
		t.Fatalf("dump: %v\n%s", err, stderr)
	}
	t.Logf("dump of a process with %s in flight in pipes took %v: %s", "1.0 MiB + 45000 bytes",
		time.Since(begin).Round(time.Millisecond), strings.TrimSpace(stderr))
	if !strings.Contains(stderr, "3 pipe") || !strings.Contains(stderr, "1 fifo") {
		t.Errorf("ckpt-files -v says %q, want 3 pipes and 1 fifo", stderr)
	}
	waitFor(t, 10*time.Second, "the tree to be let go", func() bool { return tracerPID(s.pid) == 0 })
	if got := signalCheck(t, s.pid, out, 2); got != "OK round=1 a=40000 b=1048576 f=5000" {
		t.Fatalf("the subject left running after the dump: %s", got)
	}

	killPID(s.pid)
	<-s.exited
	// The output file grew since the dump, by the check above.
	t.Cleanup(func() { killPID(s.pid) })
	if stderr, err := run(t, 60*time.Second, "ckpt-restore --accept-changed "+img); err != nil {
		t.Fatalf("restore: %v\n%s", err, stderr)
	}
	checkLinks(t, restoredLinks(t, s.pid, out), fifo)
	if got := signalCheck(t, s.pid, out, 3); got != "OK round=1 a=40000 b=1048576 f=5000" {
		t.Fatalf("after restore: %s", got)
	}
}

// genInto runs `pipes gen n` with stdout w, to its end: a writer that
// fills a pipe and exits.
func genInto(t *testing.T, prog string, w *os.File, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gen := exec.CommandContext(ctx, prog, "gen", fmt.Sprint(n))
	gen.Stdout = w
	if err := gen.Run(); err != nil {
		t.Fatalf("pipes gen: %v", err)
	}
}

// startStdin starts a subject like start, with stdin from in.
func startStdin(t *testing.T, out string, in *os.File, name string, args ...string) *subject {
	t.Helper()
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(name, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &subject{cmd: cmd, pid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { killPID(s.pid) })
	return s
}

// stdinSubject starts `pipes stdin 40000` with its stdin the read end of
// a pipe that a writer filled with 40000 bytes before it exited. The
// write end is returned, still open, when keep is true; else it is closed,
// and only the subject holds the pipe.
func stdinSubject(t *testing.T, keep bool) (*subject, string, *os.File) {
	t.Helper()
	prog := compileC(t, "pipes.c")
	out := filepath.Join(t.TempDir(), "out")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	genInto(t, prog, w, 40000)
	if !keep {
		w.Close()
		w = nil
	} else {
		t.Cleanup(func() { w.Close() })
	}
	s := startStdin(t, out, r, prog, "stdin", "40000")
	r.Close()
	waitFor(t, 30*time.Second, "READY", func() bool { return len(lines(t, out)) >= 1 })
	return s, out, w
}

// TestPipeStdin checkpoints a process whose stdin is a pipe with 40000
// bytes waiting from a writer that is gone: after restore it reads them
// all, then end of file.
func TestPipeStdin(t *testing.T) {
	s, out, _ := stdinSubject(t, false)
	img := dump(t, s.pid)
	<-s.exited
	restore(t, img, s.pid)
	if l := fdLink(t, s.pid, 0); !strings.HasPrefix(l, "pipe:[") {
		t.Errorf("stdin is %s after restore, want a pipe", l)
	}
	if got := signalCheck(t, s.pid, out, 2); got != "OK stdin n=40000 eof" {
		t.Fatalf("after restore: %s", got)
	}
}

// TestPipeHeldOutside: the other end of the subject's stdin is held by
// this test, outside the dumped tree. The dump is refused with a message
// that names it, and the subject runs on with its bytes in flight.
func TestPipeHeldOutside(t *testing.T) {
	s, out, w := stdinSubject(t, true)
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(w.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("ckpt-scan --kill %d | ckpt-files | ckpt-mem | ckpt-pack > %s", s.pid,
		filepath.Join(t.TempDir(), "img"))
	stderr, err := run(t, 60*time.Second, line)
	if err == nil {
		t.Fatalf("the dump succeeded: %s", stderr)
	}
	want := fmt.Sprintf("ckpt-files: pid %d fd 0: pipe:[%d]: the other end is held by pid %d "+
		"(%s) outside the dumped tree", s.pid, st.Ino, os.Getpid(), strings.TrimSpace(string(comm)))
	if !strings.Contains(stderr, want) {
		t.Fatalf("the dump says %q, want %q", stderr, want)
	}
	waitFor(t, 10*time.Second, "the tree to be let go", func() bool { return tracerPID(s.pid) == 0 })
	if !alive(s.pid) {
		t.Fatal("the subject is gone after the refused dump")
	}
	w.Close()
	if got := signalCheck(t, s.pid, out, 2); got != "OK stdin n=40000 eof" {
		t.Fatalf("after the refused dump: %s", got)
	}
}

// TestPipesTree checkpoints a parent and its child joined by pipes: P,
// from the parent's write end to the child's read end, an open of its own;
// and S, both ends inherited by the child, one open file description each
// shared by both. After the restore P is one pipe with its bytes in flight
// and two descriptions, S one pipe whose descriptions are shared again,
// and what the parent writes the child reads.
func TestPipesTree(t *testing.T) {
	prog := compileC(t, "pipes.c")
	out := filepath.Join(t.TempDir(), "out")
	s := start(t, out, prog, "tree", "-")
	waitFor(t, 30*time.Second, "PARENT and CHILD", func() bool { return len(lines(t, out)) >= 2 })
	var parent, child, p1, s0, s1, q int
	for _, l := range lines(t, out) {
		if strings.HasPrefix(l, "PARENT") {
			fmt.Sscanf(l, "PARENT %d %d %d %d %d", &parent, &child, &p1, &s0, &s1)
		} else {
			fmt.Sscanf(l, "CHILD %d %d", &child, &q)
		}
	}
	if parent != s.pid || child == 0 || q == 0 {
		t.Fatalf("the subject says %q", lines(t, out))
	}
	t.Cleanup(func() { killPID(child) })
	check := func(when string) {
		t.Helper()
		if a, b := fdLink(t, parent, p1), fdLink(t, child, q); a != b ||
			!strings.HasPrefix(a, "pipe:[") || sameDescriptionOf(parent, p1, child, q) {
			t.Errorf("%s: P is %s in the parent and %s in the child, want one pipe, "+
				"two descriptions", when, a, b)
		}
		for _, fd := range []int{s0, s1} {
			if a, b := fdLink(t, parent, fd), fdLink(t, child, fd); a != b ||
				!sameDescription(parent, child, fd) || a == fdLink(t, parent, p1) {
				t.Errorf("%s: fd %d of S is %s in the parent and %s in the child, want "+
					"one description", when, fd, a, b)
			}
		}
	}
	check("before the dump")

	img := dump(t, s.pid)
	<-s.exited
	restore(t, img, s.pid)
	check("after restore")
	if got := signalCheck(t, parent, out, 3); got != "OK parent" {
		t.Fatalf("the parent after restore: %s", got)
	}
	if got := signalCheck(t, child, out, 4); got != "OK child" {
		t.Fatalf("the child after restore: %s", got)
	}
}

// sameDescriptionOf reports whether fd1 of pid1 and fd2 of pid2 are one
// open file description (kcmp KCMP_FILE).
func sameDescriptionOf(pid1, fd1, pid2, fd2 int) bool {
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(pid1), uintptr(pid2), 0,
		uintptr(fd1), uintptr(fd2), 0)
	return errno == 0 && r == 0
}
