package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// subject is a process started by a test. Its exit is collected in the
// background so that, once killed by a dump, it does not stay a zombie.
type subject struct {
	cmd    *exec.Cmd
	pid    int
	exited chan struct{}
}

// start starts a subject with default signal dispositions, stdin from
// /dev/null and stdout and stderr appended to out (when not empty).
func start(t *testing.T, out string, name string, args ...string) *subject {
	t.Helper()
	return startOut(t, out, &syscall.SysProcAttr{Setpgid: true}, name, args...)
}

// startAttr starts a subject like start, with its output discarded and
// attr for its process group and session.
func startAttr(t *testing.T, attr *syscall.SysProcAttr, name string, args ...string) *subject {
	t.Helper()
	return startOut(t, "", attr, name, args...)
}

func startOut(t *testing.T, out string, attr *syscall.SysProcAttr, name string,
	args ...string) *subject {
	t.Helper()
	cmd := exec.Command(name, args...)
	if out != "" {
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	cmd.SysProcAttr = attr
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

// killPID kills a process this test started (or restored) by its PID.
func killPID(pid int) {
	if pid > 1 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// run runs a shell command line with a deadline and returns its stderr.
func run(t *testing.T, timeout time.Duration, line string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -o pipefail; "+line)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return stderr.String(), fmt.Errorf("%q did not finish in %v", line, timeout)
	}
	return stderr.String(), err
}

// dump checkpoints pid with --kill into a new archive and returns its path.
func dump(t *testing.T, pid int) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "img")
	line := fmt.Sprintf("ckpt-scan --kill %d | ckpt-files | ckpt-mem | ckpt-pack > %s", pid, img)
	if stderr, err := run(t, 120*time.Second, line); err != nil {
		t.Fatalf("dump of pid %d: %v\n%s", pid, err, stderr)
	}
	return img
}

// restore restores an archive and registers the restored PID for killing.
func restore(t *testing.T, img string, pid int) {
	t.Helper()
	t.Cleanup(func() { killPID(pid) })
	if stderr, err := run(t, 60*time.Second, "ckpt-restore "+img); err != nil {
		t.Fatalf("restore: %v\n%s", err, stderr)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procState returns the state letter of pid from /proc, or "" if gone.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return string(s[i+2])
}

// alive reports whether pid runs (is neither gone nor a zombie).
func alive(pid int) bool {
	s := procState(pid)
	return s != "" && s != "Z" && s != "X"
}

// tracerPID returns TracerPid from /proc/PID/status.
func tracerPID(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "TracerPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return -1
}

// compileC compiles a C source from testdata into a binary in a temp dir.
func compileC(t *testing.T, src string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(src, ".c"))
	cmd := exec.Command("gcc", "-O2", "-Wall", "-o", out, filepath.Join("testdata", src))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", src, err, b)
	}
	return out
}

// lines returns the lines of a file.
func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
