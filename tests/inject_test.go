package tests

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Killing ckpt-scan while it injects system calls into the subject (issue
// 5, docs/ckpt-scan.md): wherever it dies, the subject runs on with its
// registers, extended state, signal mask, handlers and sigaltstack as
// they were, and the system call it was in goes on as if nothing had
// happened.

// sleepMS is how long the subject of mode sleep sleeps at a time.
const sleepMS = 600

// injectSubject is a running testdata/inject.c.
type injectSubject struct {
	*subject
	mode  string
	log   string
	stdin *os.File // writes to its stdin, in mode read
	sig   string   // SigBlk, SigIgn, SigCgt as first seen
	pings int
}

func startInject(t *testing.T, mode string) *injectSubject {
	t.Helper()
	prog := compileOnce(t, "inject.c")
	s := &injectSubject{mode: mode, log: filepath.Join(t.TempDir(), "inject.log")}
	out, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	args := []string{mode}
	if mode == "sleep" {
		args = append(args, strconv.Itoa(sleepMS))
	}
	cmd := exec.Command(prog, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if mode == "read" {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		cmd.Stdin, s.stdin = r, w
		t.Cleanup(func() { w.Close() })
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.subject = &subject{cmd: cmd, pid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { killPID(s.pid) })
	switch mode {
	case "sleep":
		s.waitLines(t, "the first sleep", "slept ", 1)
	case "rseq":
		s.waitLines(t, "the first round", "", 1)
		if l := lines(t, s.log); l[0] == "no rseq" {
			t.Skip("glibc registered no rseq area")
		}
		s.waitLines(t, "the first round", "rseq ", 1)
	case "spin":
		s.waitLines(t, "the first round", "spin ", 1)
	case "read":
		s.ping(t, "the first read")
	}
	s.sig = s.signalState(t)
	return s
}

// signalState returns the signal lines of /proc/PID/status that say what
// is blocked, ignored and caught.
func (s *injectSubject) signalState(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		t.Fatalf("the subject is gone: %v", err)
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "SigBlk:") || strings.HasPrefix(l, "SigIgn:") ||
			strings.HasPrefix(l, "SigCgt:") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "; ")
}

// count returns how many lines of the log start with prefix, and fails
// on a BAD line.
func (s *injectSubject) count(t *testing.T, prefix string) int {
	t.Helper()
	n := 0
	for _, l := range lines(t, s.log) {
		if strings.HasPrefix(l, "BAD") {
			t.Fatalf("the subject (%s) found its state changed: %q", s.mode, l)
		}
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// waitLines waits until the log holds at least n lines that start with
// prefix.
func (s *injectSubject) waitLines(t *testing.T, why, prefix string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.count(t, prefix) < n {
		if time.Now().After(deadline) || !alive(s.pid) {
			l := lines(t, s.log)
			t.Fatalf("%s: waited in vain for %d lines %q (state %q); log ends %q",
				why, n, prefix, procState(s.pid), l[max(len(l)-5, 0):])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ping writes a line to the subject in mode read and waits for it to
// come back.
func (s *injectSubject) ping(t *testing.T, why string) {
	t.Helper()
	s.pings++
	msg := fmt.Sprintf("ping %d", s.pings)
	if _, err := fmt.Fprintln(s.stdin, msg); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("read %d 0 %s", len(msg)+1, msg)
	s.waitLines(t, why, want, 1)
}

// dumpPoint is when a ckpt-scan was killed.
type dumpPoint struct {
	why      string
	sleeping time.Time // mode sleep: when the sleep that it cut began
	killed   time.Time
	slept    int // mode sleep: slept lines before it
}

// before waits for the moment to start ckpt-scan: in mode sleep, well
// into a sleep, so that a sleep started again from scratch, or cut
// short, shows.
func (s *injectSubject) before(t *testing.T, why string) *dumpPoint {
	t.Helper()
	d := &dumpPoint{why: why}
	if s.mode != "sleep" {
		return d
	}
	d.slept = s.count(t, "slept ")
	s.waitLines(t, why, "sleeping", d.slept+1)
	d.sleeping = time.Now()
	time.Sleep(time.Duration(300+rand.IntN(150)) * time.Millisecond)
	return d
}

// after checks that the subject was let go, runs, and is as it was.
func (s *injectSubject) after(t *testing.T, d *dumpPoint) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for tracerPID(s.pid) != 0 || procState(s.pid) == "t" || procState(s.pid) == "T" {
		if !alive(s.pid) {
			t.Fatalf("%s: the subject died: %s", d.why, s.exit())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the subject is not released: state %q, TracerPid %d",
				d.why, procState(s.pid), tracerPID(s.pid))
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond) // time to crash, if it would
	if !alive(s.pid) {
		t.Fatalf("%s: the subject died: %s", d.why, s.exit())
	}
	switch s.mode {
	case "sleep":
		s.checkSleep(t, d)
	case "spin", "rseq":
		n := s.count(t, s.mode+" ")
		s.waitLines(t, d.why, s.mode+" ", n+2)
	case "read":
		s.ping(t, d.why)
	}
	if !alive(s.pid) {
		t.Fatalf("%s: the subject died: %s", d.why, s.exit())
	}
	// The rseq subject's SIGALRM handler runs every 5 ms, and while it
	// runs SIGALRM is blocked: a changed state must last to count.
	got := s.signalState(t)
	for i := 0; got != s.sig && i < 20; i++ {
		time.Sleep(7 * time.Millisecond)
		got = s.signalState(t)
	}
	if got != s.sig {
		t.Fatalf("%s: the signal state changed: %s, was %s", d.why, got, s.sig)
	}
}

// exit says how the subject ended, once it is reaped.
func (s *injectSubject) exit() string {
	select {
	case <-s.exited:
		return s.cmd.ProcessState.String()
	case <-time.After(5 * time.Second):
		return "state " + procState(s.pid)
	}
}

var sleptLine = regexp.MustCompile(`^slept (\d+) (-?\d+) (\d+)$`)

// checkSleep checks that the sleep the dump cut ended neither early
// (EINTR) nor late (started again), give or take the time the subject
// stood frozen.
func (s *injectSubject) checkSleep(t *testing.T, d *dumpPoint) {
	t.Helper()
	s.waitLines(t, d.why, "slept ", d.slept+1)
	var slept []string
	for _, l := range lines(t, s.log) {
		if strings.HasPrefix(l, "slept ") {
			slept = append(slept, l)
		}
	}
	m := sleptLine.FindStringSubmatch(slept[d.slept])
	if m == nil {
		t.Fatalf("%s: bad line %q", d.why, slept[d.slept])
	}
	ms, _ := strconv.Atoi(m[1])
	if m[2] != "0" {
		t.Fatalf("%s: the sleep ended with %s, errno %s, after %d ms", d.why, m[2], m[3], ms)
	}
	frozen := int(d.killed.Sub(d.sleeping).Milliseconds())
	if limit := max(sleepMS, frozen) + 250; ms < sleepMS || ms > limit {
		t.Fatalf("%s: the sleep of %d ms took %d ms (ckpt-scan killed %d ms after it began): "+
			"not restarted with the time left", d.why, sleepMS, ms, frozen)
	}
}

// scan is a ckpt-scan started on the subject, with the test hook
// (cmd/ckpt-scan/testhook.go) set to hook unless it is empty: "N" pauses
// after step N, "N/run" says when it is there and runs on, "-1" only
// counts the steps.
type scan struct {
	cmd    *exec.Cmd
	lines  chan string
	done   chan struct{}
	stderr []string
}

func startScan(t *testing.T, pid int, hook string) *scan {
	t.Helper()
	cmd := exec.Command(tool("ckpt-scan"), strconv.Itoa(pid))
	if hook != "" {
		cmd.Env = append(os.Environ(), "CKPT_SCAN_TEST_PAUSE="+hook)
	}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killPID(cmd.Process.Pid) })
	s := &scan{cmd: cmd, lines: make(chan string, 100), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
		_ = cmd.Wait()
		close(s.done)
	}()
	return s
}

// waitLine waits for a line of stderr that contains what; it fails if
// ckpt-scan ends first.
func (s *scan) waitLine(t *testing.T, what string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				t.Fatalf("ckpt-scan ended before saying %q: %q", what, s.stderr)
			}
			s.stderr = append(s.stderr, l)
			if strings.Contains(l, what) {
				return l
			}
		case <-timeout:
			t.Fatalf("ckpt-scan did not say %q in 20s: %q", what, s.stderr)
		}
	}
}

// waitTraced waits, polling without a pause, until ckpt-scan traces pid
// (or is done already).
func (s *scan) waitTraced(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for tracerPID(pid) != s.cmd.Process.Pid {
		select {
		case <-s.done:
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ckpt-scan did not trace the subject in 10s: %q", s.stderr)
		}
	}
}

// kill kills ckpt-scan with SIGKILL and waits for it to be gone.
func (s *scan) kill(t *testing.T) time.Time {
	t.Helper()
	_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL)
	at := time.Now()
	go func() {
		for range s.lines {
		}
	}()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("ckpt-scan did not die of SIGKILL in 10s")
	}
	return at
}

// injectionSteps runs a whole ckpt-scan on pid and returns how many steps
// its injection took.
func injectionSteps(t *testing.T, pid int) int {
	t.Helper()
	s := startScan(t, pid, "-1")
	l := s.waitLine(t, "injection steps")
	var n int
	if _, err := fmt.Sscanf(l, "ckpt-scan: test hook: %d injection steps", &n); err != nil || n < 10 {
		t.Fatalf("cannot read the number of steps from %q", l)
	}
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("ckpt-scan did not end: %q", s.stderr)
	}
	return n
}

// pickSteps returns the first and last few steps and some at random
// between them.
func pickSteps(n int, r *rand.Rand) []int {
	const ends, middle = 8, 16
	var steps []int
	for i := range min(ends, n) {
		steps = append(steps, i, n-1-i)
	}
	for range middle {
		steps = append(steps, ends+r.IntN(max(n-2*ends, 1)))
	}
	slices.Sort(steps)
	return slices.Compact(steps)
}

// TestKillScanInjecting kills ckpt-scan, with SIGKILL, at chosen steps of
// its system call injection (the first and last few, and some at random:
// registers set, at a syscall entry or exit stop, signals blocked, on the
// way back), and at random moments, in a subject sleeping in nanosleep
// (restart block), one blocked in read (restart), one spinning in user
// space and one spinning in an rseq critical section, and checks each
// time that the subject runs on untouched.
func TestKillScanInjecting(t *testing.T) {
	for _, mode := range []string{"sleep", "read", "spin", "rseq"} {
		t.Run(mode, func(t *testing.T) { testKillScanInjecting(t, mode) })
	}
}

func testKillScanInjecting(t *testing.T, mode string) {
	s := startInject(t, mode)
	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 0))
	d := s.before(t, "a whole dump")
	n := injectionSteps(t, s.pid)
	d.killed = time.Now()
	s.after(t, d)
	steps := pickSteps(n, r)
	t.Logf("%d injection steps; seed %d; killing after steps %v", n, seed, steps)
	for _, step := range steps {
		d := s.before(t, fmt.Sprintf("ckpt-scan killed after injection step %d", step))
		sc := startScan(t, s.pid, strconv.Itoa(step))
		d.why += " (" + sc.waitLine(t, "paused after injection step") + ")"
		d.killed = sc.kill(t)
		s.after(t, d)
	}
	// Random moments inside the injection, while the task runs injected
	// code too: killed as soon as the hook says a random step is done,
	// when ckpt-scan has gone on some way.
	for range 12 {
		step := r.IntN(n)
		d := s.before(t, fmt.Sprintf("ckpt-scan killed just after injection step %d", step))
		sc := startScan(t, s.pid, fmt.Sprintf("%d/run", step))
		sc.waitLine(t, fmt.Sprintf("at injection step %d", step))
		d.killed = sc.kill(t)
		s.after(t, d)
	}
	// Random moments of a ckpt-scan without the hook.
	for i := range 6 {
		d := s.before(t, fmt.Sprintf("ckpt-scan killed at a random moment (run %d)", i))
		sc := startScan(t, s.pid, "")
		sc.waitTraced(t, s.pid)
		time.Sleep(time.Duration(r.IntN(5000)) * time.Microsecond)
		d.killed = sc.kill(t)
		s.after(t, d)
	}
	usr1 := s.count(t, "usr1")
	if err := syscall.Kill(s.pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	s.waitLines(t, "SIGUSR1 after the kills", "usr1", usr1+1)
}
