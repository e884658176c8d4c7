package freeze

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ckpt/ckpt/lib/procfs"
	"github.com/ckpt/ckpt/lib/stage"
	"golang.org/x/sys/unix"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to trace processes")
	}
}

// subject is a sleep started for one test, killed by PID at the end.
// It is not a child of the test: a tracer in the parent's thread group
// would see its ptrace stops consumed by the parent's wait for its exit.
type subject struct {
	pid   int
	start uint64
}

func startSleep(t *testing.T) *subject {
	t.Helper()
	// setsid -f forks; the child prints its PID and becomes the sleep.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "setsid", "-f", "sh", "-c",
		"echo $$; exec sleep 1000 >/dev/null 2>&1 </dev/null").Output()
	if err != nil {
		t.Fatalf("start sleep: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("start sleep: %q: %v", out, err)
	}
	s := &subject{pid: pid}
	st, err := procfs.ReadStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	s.start = st.StartTime
	t.Cleanup(func() {
		if st, err := procfs.ReadStat(pid); err == nil && st.StartTime == s.start {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	})
	return s
}

func (s *subject) task() []Task { return []Task{{PID: s.pid, StartTime: s.start}} }

// state returns the state letter and tracer of the subject.
func (s *subject) state(t *testing.T) (byte, int) {
	t.Helper()
	st, err := procfs.ReadStatus(s.pid)
	if err != nil {
		t.Fatal(err)
	}
	return st.State, st.TracerPID
}

func (s *subject) checkFrozen(t *testing.T) {
	t.Helper()
	if state, tracer := s.state(t); state != 't' || tracer != os.Getpid() {
		t.Fatalf("frozen subject: state %c tracer %d, want t and %d", state, tracer, os.Getpid())
	}
}

// checkRunsOn waits until the subject is neither stopped nor traced.
func (s *subject) checkRunsOn(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		state, tracer := s.state(t)
		if state != 't' && state != 'T' && state != 'Z' && tracer == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("subject still state %c tracer %d after release", state, tracer)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *subject) checkKilled(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := procfs.ReadStat(s.pid)
		if err != nil || st.StartTime != s.start || st.State == 'Z' || st.State == 'X' {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("subject still state %c 5s after the kill", st.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func lock(t *testing.T) {
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
}

func TestFreezeRelease(t *testing.T) {
	needRoot(t)
	lock(t)
	s := startSleep(t)
	tree, err := Freeze(s.task())
	if err != nil {
		t.Fatal(err)
	}
	s.checkFrozen(t)
	if th := tree.Threads(s.pid); len(th) != 1 || th[0] != s.pid {
		t.Errorf("threads %v", th)
	}
	if err := tree.Release(); err != nil {
		t.Fatal(err)
	}
	s.checkRunsOn(t)
	if tree.Frozen() <= 0 || tree.Frozen() > 5*time.Second {
		t.Errorf("frozen for %v", tree.Frozen())
	}
}

func TestFreezeReusedPID(t *testing.T) {
	needRoot(t)
	lock(t)
	s := startSleep(t)
	_, err := Freeze([]Task{{PID: s.pid, StartTime: s.start + 1}})
	var re *ReusedError
	if !errors.As(err, &re) || re.PID != s.pid {
		t.Fatalf("Freeze with a wrong start time: %v, want a ReusedError", err)
	}
	s.checkRunsOn(t)
}

func TestFreezeKill(t *testing.T) {
	needRoot(t)
	lock(t)
	s := startSleep(t)
	tree, err := Freeze(s.task())
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.Kill(); err != nil {
		t.Fatal(err)
	}
	s.checkKilled(t)
}

// hold freezes a subject and runs Hold with a deadline.
func hold(t *testing.T, gone <-chan error, ctl *Control) (*subject, Outcome, error) {
	t.Helper()
	s := startSleep(t)
	tree, err := Freeze(s.task())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeoutCause(context.Background(), 10*time.Second,
		errors.New("test deadline"))
	defer cancel()
	out, err := tree.Hold(ctx, gone, ctl)
	return s, out, err
}

func TestHoldReleaseWhenReaderGone(t *testing.T) {
	needRoot(t)
	lock(t)
	gone := make(chan error, 1)
	gone <- nil
	s, out, err := hold(t, gone, nil)
	if out != Released || err != nil {
		t.Fatalf("Hold = %v, %v", out, err)
	}
	s.checkRunsOn(t)
}

func listen(t *testing.T) *Control {
	t.Helper()
	ctl, err := Listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	return ctl
}

func TestHoldKillOnComplete(t *testing.T) {
	needRoot(t)
	lock(t)
	ctl := listen(t)
	answer := make(chan string, 1)
	go func() {
		c, err := stage.Dial(ctl.Path, "ckpt-pack")
		if err != nil {
			answer <- err.Error()
			return
		}
		defer c.Close()
		what, err := c.Complete()
		if err != nil {
			what = err.Error()
		}
		answer <- what
	}()
	s, out, err := hold(t, make(chan error), ctl)
	if out != Killed || err != nil {
		t.Fatalf("Hold = %v, %v", out, err)
	}
	s.checkKilled(t)
	select {
	case a := <-answer:
		if a != "killed" {
			t.Errorf("the final stage got %q, want killed", a)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer to complete")
	}
}

func TestHoldFailureResumes(t *testing.T) {
	needRoot(t)
	for _, name := range []string{"close without complete", "nobody connects", "reader gone first"} {
		t.Run(name, func(t *testing.T) {
			lock(t)
			ctl := listen(t)
			gone := make(chan error, 1)
			switch name {
			case "close without complete":
				go func() {
					c, err := stage.Dial(ctl.Path, "ckpt-pack")
					if err == nil {
						c.Close()
					}
					time.Sleep(50 * time.Millisecond)
					gone <- nil
				}()
			case "nobody connects":
				gone <- nil
			case "reader gone first":
				go func() {
					c, err := stage.Dial(ctl.Path, "ckpt-pack")
					time.Sleep(50 * time.Millisecond)
					gone <- nil
					time.Sleep(50 * time.Millisecond)
					if err == nil {
						c.Close()
					}
				}()
			}
			s, out, err := hold(t, gone, ctl)
			if out != Released || !errors.Is(err, ErrDownstreamFailed) {
				t.Fatalf("Hold = %v, %v; want released, %v", out, err, ErrDownstreamFailed)
			}
			s.checkRunsOn(t)
		})
	}
}

func TestHoldSignalReleases(t *testing.T) {
	needRoot(t)
	lock(t)
	s := startSleep(t)
	tree, err := Freeze(s.task())
	if err != nil {
		t.Fatal(err)
	}
	why := errors.New("interrupted by SIGTERM")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(why)
	out, err := tree.Hold(ctx, make(chan error), listen(t))
	if out != Released || !errors.Is(err, why) {
		t.Fatalf("Hold = %v, %v", out, err)
	}
	s.checkRunsOn(t)
}

func TestControlUnknownRequest(t *testing.T) {
	ctl := listen(t)
	conn, err := net.DialTimeout("unix", ctl.Path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	go func() {
		for range ctl.Events() {
		}
	}()
	if _, err := conn.Write([]byte("frobnicate x\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "error unknown request \"frobnicate\"\n" {
		t.Errorf("answer %q, %v", line, err)
	}
}

// TestControlOtherUser: the control socket is abstract (no file to leave
// behind) and serves no peer of another uid: a "complete" from uid 65534
// gets no answer and makes no event.
func TestControlOtherUser(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv to run a peer as another user")
	}
	// A system python3 that any user may run (not a per-user shim).
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("needs /usr/bin/python3 for the peer")
	}
	ctl := listen(t)
	if !strings.HasPrefix(ctl.Path, "@") {
		t.Fatalf("control socket %q is not abstract", ctl.Path)
	}
	py := "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.settimeout(5)\ns.connect('\\0'+sys.argv[1])\n" +
		"try:\n s.sendall(b'complete intruder\\n'); got = s.recv(100)\n" +
		"except OSError: got = b''\nprint(repr(got))\n"
	cmd := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
		"/usr/bin/python3", "-c", py, ctl.Path[1:])
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "b''" {
		t.Fatalf("the other user's peer: %v, got %q, want the connection closed", err, out)
	}
	select {
	case ev := <-ctl.Events():
		t.Fatalf("the other user's peer made an event %+v", ev)
	case <-time.After(200 * time.Millisecond):
	}
}
