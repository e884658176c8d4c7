package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ckpt-scan refuses what it must not dump, and changes nothing.

// scanOut runs a shell line (ckpt-scan in it) and returns its stdout,
// stderr and error.
func scanOut(t *testing.T, line string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", line)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%q did not finish in 20s", line)
	}
	return stdout.String(), stderr.String(), err
}

// freePID returns a PID that no process has now.
func freePID(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	max, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	for pid := max - 1; pid > max/2; pid-- {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			return pid
		}
	}
	t.Fatal("no free pid")
	return 0
}

func TestScanRefuses(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "stream")
	cases := []struct {
		name, line, want string
	}{
		{"no such pid", fmt.Sprintf("ckpt-scan %d > %s", freePID(t), out), "does not exist"},
		{"kernel thread", "ckpt-scan 2 > " + out, "kernel thread"},
		{"itself", "exec ckpt-scan $$ > " + out, "ckpt-scan itself"},
		{"its shell", "ckpt-scan $$ > " + out + "; exit $?", "ancestor of ckpt-scan"},
		{"the test", fmt.Sprintf("ckpt-scan %d > %s", os.Getpid(), out), "ancestor of ckpt-scan"},
		{"pid zero", "ckpt-scan 0 > " + out, "bad PID"},
		{"no pid", "ckpt-scan > " + out, "usage"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			os.Remove(out)
			_, stderr, err := scanOut(t, c.line)
			if err == nil {
				t.Fatalf("ckpt-scan succeeded: %s", stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Fatalf("ckpt-scan said %q, want it to say %q", stderr, c.want)
			}
			if b, _ := os.ReadFile(out); len(b) != 0 {
				t.Fatalf("ckpt-scan wrote %d bytes of stream though it refused", len(b))
			}
		})
	}
}

// TestScanTraced runs ckpt-scan on a process that strace traces: it
// refuses, names the tracer, and leaves the process traced by strace,
// counting.
func TestScanTraced(t *testing.T) {
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("strace is not installed (.ci/run installs it)")
	}
	c := startCounter(t, 0)
	st := start(t, "", "strace", "-o", "/dev/null", "-p", strconv.Itoa(c.pid))
	waitFor(t, 10*time.Second, "strace to attach", func() bool { return tracerPID(c.pid) != 0 })
	tracer := tracerPID(c.pid)
	_, stderr, err := scanOut(t, fmt.Sprintf("ckpt-scan %d | cat > /dev/null", c.pid))
	if err == nil {
		// the pipe's status is cat's; ckpt-scan must have failed
		if !strings.Contains(stderr, "already traced") {
			t.Fatalf("ckpt-scan did not refuse a traced process: %q", stderr)
		}
	}
	if !strings.Contains(stderr, "already traced by pid "+strconv.Itoa(st.pid)) ||
		!strings.Contains(stderr, "strace") {
		t.Fatalf("ckpt-scan said %q, want it to name strace, pid %d", stderr, st.pid)
	}
	if got := tracerPID(c.pid); got != tracer {
		t.Fatalf("TracerPid is %d after the refusal, was %d", got, tracer)
	}
	n := c.count(t)
	waitFor(t, 10*time.Second, "the traced counter to go on", func() bool { return c.count(t) >= n+5 })
	killPID(st.pid)
	<-st.exited
	c.checkRuns(t, "strace gone")
}

// TestScanTracer runs ckpt-scan --kill on strace, which traces a counter
// outside the tree: it refuses, naming both, and strace goes on tracing
// the counter, which counts on.
func TestScanTracer(t *testing.T) {
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("strace is not installed (.ci/run installs it)")
	}
	c := startCounter(t, 0)
	st := start(t, "", "strace", "-o", "/dev/null", "-p", strconv.Itoa(c.pid))
	waitFor(t, 10*time.Second, "strace to attach", func() bool { return tracerPID(c.pid) != 0 })
	tracer := tracerPID(c.pid)
	_, stderr, _ := scanOut(t, fmt.Sprintf("ckpt-scan --kill %d | ckpt-files | ckpt-mem | "+
		"ckpt-pack > /dev/null", st.pid))
	want := fmt.Sprintf("pid %d (strace) traces pid %d (counter)", st.pid, c.pid)
	if !strings.Contains(stderr, want) {
		t.Fatalf("ckpt-scan said %q, want %q", stderr, want)
	}
	if got := tracerPID(c.pid); got != tracer || !alive(st.pid) || tracerPID(st.pid) != 0 {
		t.Fatalf("after the refusal: the counter's TracerPid %d (was %d), strace alive %v, "+
			"its TracerPid %d", got, tracer, alive(st.pid), tracerPID(st.pid))
	}
	n := c.count(t)
	waitFor(t, 10*time.Second, "the traced counter to go on", func() bool { return c.count(t) >= n+5 })
}

// TestFullDisk packs onto a 4 MiB tmpfs that the archive does not fit:
// ckpt-pack says so, the subject runs on (with --kill too) and no
// partial archive is left or passes for one.
func TestFullDisk(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("ckpt-test", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	c := startCounter(t, 32) // 16 MiB of it random: it does not compress
	for _, kill := range []string{"", "--kill "} {
		for _, to := range []string{"-o " + dir + "/img", "> " + dir + "/img"} {
			why := "ckpt-scan " + kill + "... | ckpt-pack " + to
			line := fmt.Sprintf("ckpt-scan %s%d | ckpt-files | ckpt-mem | ckpt-pack %s",
				kill, c.pid, to)
			stderr, err := run(t, 60*time.Second, line)
			if err == nil {
				t.Fatalf("%s: the dump succeeded on a full disk", why)
			}
			if !strings.Contains(stderr, "no space left on device") {
				t.Fatalf("%s: the error does not say the disk is full: %q", why, stderr)
			}
			c.checkRuns(t, why)
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasPrefix(to, "-o") {
					t.Fatalf("%s: %s left in the full directory", why, e.Name())
				}
				checkRefused(t, filepath.Join(dir, e.Name()), c, why)
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
}
