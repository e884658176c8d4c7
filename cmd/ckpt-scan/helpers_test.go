package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/procfs"
	"github.com/ckpt/ckpt/lib/stream"
	"golang.org/x/sys/unix"
)

// asMain makes the test binary run as ckpt-scan itself, for the tests
// that need it as a separate process (pipes, signals, being killed).
const asMain = "CKPT_SCAN_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to trace processes")
	}
}

// subject is a process started for one test, and killed by PID (checked
// against its start time) at the end. It is not a child of the test: the
// test also traces, and a tracer's thread group would see the subject's
// ptrace stops consumed by the wait for its exit.
type subject struct {
	pid   int
	start uint64
	out   string // the file it writes to, if any
}

// startSubject starts argv detached (setsid -f) with stdin, stdout and
// stderr on /dev/null.
func startSubject(t *testing.T, argv ...string) *subject {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sh := `echo $$; exec "$@" </dev/null >/dev/null 2>&1`
	args := append([]string{"-f", "sh", "-c", sh, "sh"}, argv...)
	out, err := exec.CommandContext(ctx, "setsid", args...).Output()
	if err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("start %v: %q", argv, out)
	}
	s := &subject{pid: pid}
	// Wait until the program runs and then sleeps: its loader is done.
	waitFor(t, 10*time.Second, "the subject to start", func() bool {
		st, err := procfs.ReadStat(pid)
		if err != nil {
			return false
		}
		s.start = st.StartTime
		return st.Comm != "sh" && st.State == 'S'
	})
	t.Cleanup(func() { s.kill() })
	return s
}

func (s *subject) kill() {
	if st, err := procfs.ReadStat(s.pid); err == nil && st.StartTime == s.start {
		_ = unix.Kill(s.pid, unix.SIGKILL)
	}
}

// The counter prints a number every 20 ms to the file given, and installs
// a Python handler for SIGINT whatever the disposition it started with.
const counterPy = `
import itertools, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
f = open(sys.argv[1], "w", buffering=1)
for i in itertools.count():
    print(i, file=f)
    time.sleep(0.02)
`

func python3(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	return py
}

// startCounter starts the python3 counter and waits for its first line.
func startCounter(t *testing.T) *subject {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "counter.py")
	if err := os.WriteFile(script, []byte(counterPy), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "count")
	s := startSubject(t, python3(t), script, out)
	s.out = out
	waitFor(t, 10*time.Second, "the counter to count", func() bool { return s.count() > 0 })
	return s
}

// count returns the last number the counter printed, -1 if none.
func (s *subject) count() int {
	b, _ := os.ReadFile(s.out)
	lines := strings.Fields(string(b))
	if len(lines) == 0 {
		return -1
	}
	n, err := strconv.Atoi(lines[len(lines)-1])
	if err != nil {
		return -1
	}
	return n
}

// status reads the subject's /proc/PID/status.
func (s *subject) status(t *testing.T) *procfs.Status {
	t.Helper()
	st, err := procfs.ReadStatus(s.pid)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// checkRunsOn checks that the subject is neither traced nor stopped, and,
// for the counter, that it counts on.
func (s *subject) checkRunsOn(t *testing.T) {
	t.Helper()
	waitFor(t, 5*time.Second, "the subject to be released", func() bool {
		st := s.status(t)
		return st.TracerPID == 0 && st.State != 't' && st.State != 'T'
	})
	if s.out != "" {
		n := s.count()
		waitFor(t, 5*time.Second, "the counter to go on", func() bool { return s.count() > n+2 })
	}
}

// checkFrozen checks that the subject is in a tracing stop, traced by
// tracer.
func (s *subject) checkFrozen(t *testing.T, tracer int) {
	t.Helper()
	st := s.status(t)
	// TracerPid is the tracing thread; its Tgid is the process.
	by, err := procfs.ReadStatus(st.TracerPID)
	if st.State != 't' || err != nil || by.Tgid != tracer {
		t.Fatalf("subject state %c tracer thread %d, want t and a thread of %d",
			st.State, st.TracerPID, tracer)
	}
}

// checkDead waits until the subject is a zombie or gone.
func (s *subject) checkDead(t *testing.T) {
	t.Helper()
	waitFor(t, 5*time.Second, "the subject to die", func() bool {
		st, err := procfs.ReadStat(s.pid)
		return err != nil || st.StartTime != s.start || st.State == 'Z' || st.State == 'X'
	})
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// scanned is a decoded stream.
type scanned struct {
	header *image.Header
	task   image.Task
	fds    []image.Fd
}

// decode reads a whole stream as ckpt-scan writes it.
func decode(t *testing.T, r io.Reader) *scanned {
	t.Helper()
	sr := stream.NewReader(r)
	h, err := sr.Header()
	if err != nil {
		t.Fatal(err)
	}
	s := &scanned{header: h}
	for {
		rec, err := sr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch rec.Kind {
		case image.KindTask:
			if err := rec.Decode(&s.task); err != nil {
				t.Fatal(err)
			}
		case image.KindFd:
			var fd image.Fd
			if err := rec.Decode(&fd); err != nil {
				t.Fatal(err)
			}
			s.fds = append(s.fds, fd)
		default:
			t.Fatalf("unexpected %s record", rec.Kind)
		}
	}
	return s
}

// scanInProcess runs ckpt-scan in this process into a buffer.
func scanInProcess(t *testing.T, args ...string) (*scanned, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, stderr bytes.Buffer
	err := run(ctx, args, nil, &out, &stderr)
	if err != nil {
		return nil, stderr.String(), err
	}
	return decode(t, &out), stderr.String(), nil
}

// scanProcess is ckpt-scan run as a separate process, its stdout a pipe
// to the test.
type scanProcess struct {
	cmd     *exec.Cmd
	out     *os.File // read end of its stdout
	errPath string   // its stderr
	done    chan error
}

func startScan(t *testing.T, args ...string) *scanProcess {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &scanProcess{out: r, errPath: filepath.Join(t.TempDir(), "stderr"), done: make(chan error, 1)}
	stderr, err := os.Create(p.errPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Env = append(os.Environ(), asMain+"=1")
	p.cmd.Stdout, p.cmd.Stderr = w, stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	stderr.Close()
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		r.Close()
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits for ckpt-scan to exit and returns its exit code.
func (p *scanProcess) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(10 * time.Second):
		t.Fatalf("ckpt-scan did not exit within 10s; stderr:\n%s", p.stderr())
		return -1
	}
}

// stderr returns what ckpt-scan wrote to stderr so far.
func (p *scanProcess) stderr() string {
	b, _ := os.ReadFile(p.errPath)
	return string(b)
}
