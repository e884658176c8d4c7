// Package pagestest helps tests and benchmarks of page dumping: it builds
// small C programs, starts and stops them, and reads their mappings from
// /proc/PID/maps the way ckpt-scan would describe them.
package pagestest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// RequireRoot skips the test unless it runs as root.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root to read another process's page map and memory")
	}
}

// BuildC compiles the C program src with gcc and returns the binary's
// path. It skips the test when gcc is missing.
func BuildC(tb testing.TB, src string) string {
	tb.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		tb.Skip("needs gcc to build the test program")
	}
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.c"), []byte(src), 0o644); err != nil {
		tb.Fatal(err)
	}
	bin := filepath.Join(dir, "p")
	out, err := exec.Command(cc, "-O2", "-o", bin, filepath.Join(dir, "p.c")).CombinedOutput()
	if err != nil {
		tb.Fatalf("gcc: %v\n%s", err, out)
	}
	return bin
}

// Start runs bin with args, waits (up to a minute) for its first line of
// output, stops it with SIGSTOP and waits until it is stopped. It returns
// the process and the fields of that line. The process is killed when the
// test ends.
func Start(tb testing.TB, bin string, args ...string) (*os.Process, []string) {
	tb.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	var s string
	select {
	case s = <-line:
	case <-time.After(time.Minute):
		tb.Fatalf("%s: no ready line after a minute", bin)
	}
	if s == "" {
		tb.Fatalf("%s exited before it was ready", bin)
	}
	if err := Stop(cmd.Process.Pid); err != nil {
		tb.Fatal(err)
	}
	return cmd.Process, strings.Fields(s)
}

// Stop sends SIGSTOP to pid and waits, up to ten seconds, until it shows
// as stopped.
func Stop(pid int) error {
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		return fmt.Errorf("stop pid %d: %w", pid, err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return err
		}
		f := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:])
		if len(f) > 0 && f[0][0] == 'T' {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("pid %d did not stop within ten seconds", pid)
}

// StartTime returns field 22 of /proc/PID/stat.
func StartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("pid %d: short stat", pid)
	}
	return strconv.ParseUint(string(f[19]), 10, 64)
}

// Vmas reads the mappings of pid from /proc/PID/maps. It fills Start,
// End, Prot, Shared, Kind, Name, Pgoff and Ino; a shared mapping of
// "/dev/zero (deleted)" counts as shared anonymous memory.
func Vmas(pid int) ([]image.Vma, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, err
	}
	var vmas []image.Vma
	for line := range strings.Lines(string(b)) {
		v, err := parseMapsLine(line)
		if err != nil {
			return nil, fmt.Errorf("pid %d: maps line %q: %w", pid, line, err)
		}
		vmas = append(vmas, v)
	}
	return vmas, nil
}

// parseMapsLine parses "start-end perms offset dev inode [name]".
func parseMapsLine(line string) (image.Vma, error) {
	var v image.Vma
	f := strings.Fields(line)
	if len(f) < 5 {
		return v, fmt.Errorf("%d fields", len(f))
	}
	lo, hi, _ := strings.Cut(f[0], "-")
	var errs [4]error
	v.Start, errs[0] = strconv.ParseUint(lo, 16, 64)
	v.End, errs[1] = strconv.ParseUint(hi, 16, 64)
	v.Pgoff, errs[2] = strconv.ParseUint(f[2], 16, 64)
	v.Ino, errs[3] = strconv.ParseUint(f[4], 10, 64)
	for _, err := range errs {
		if err != nil {
			return v, err
		}
	}
	perms := f[1]
	for i, p := range []int{unix.PROT_READ, unix.PROT_WRITE, unix.PROT_EXEC} {
		if perms[i] != '-' {
			v.Prot |= p
		}
	}
	v.Shared = perms[3] == 's'
	// The name is the rest of the line after the fifth field, spaces kept.
	rest := line
	for range 5 {
		_, rest, _ = strings.Cut(strings.TrimLeft(rest, " "), " ")
	}
	v.Name = strings.TrimSuffix(strings.TrimLeft(rest, " "), "\n")
	v.Kind = kind(v)
	return v, nil
}

func kind(v image.Vma) string {
	switch v.Name {
	case "[vdso]":
		return image.VmaVdso
	case "[vvar]":
		return image.VmaVvar
	case "[vvar_vclock]":
		return image.VmaVvarVclock
	case "[vsyscall]":
		return image.VmaVsyscall
	}
	if v.Ino == 0 || (v.Shared && v.Name == "/dev/zero (deleted)") {
		return image.VmaAnon
	}
	return image.VmaFile
}

// WatchHWM reads VmHWM of pid every few milliseconds into *peak, until
// stop is called, which reads it once more if pid is still there. The
// kernel's maxrss of a child is no use here: it also counts the memory
// of the test process, whose address space the child shared until exec.
func WatchHWM(pid int, peak *int64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			if v, err := VmHWM(pid); err == nil {
				*peak = max(*peak, v)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		if v, err := VmHWM(pid); err == nil {
			*peak = max(*peak, v)
		}
	}
}

// VmHWM returns the peak resident set size of pid, in bytes.
func VmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kib << 10, err
		}
	}
	return 0, fmt.Errorf("pid %d: no VmHWM in status", pid)
}

// MainWithTools is the TestMain of a benchmark package that runs the ckpt
// tools on real processes: it skips, saying so, unless root; marks every
// inherited descriptor close-on-exec so none leaks into a subject; builds
// the tools into a temporary directory, whose path it stores in *bin;
// runs the tests, removes the directory and exits with their status.
func MainWithTools(m *testing.M, name string, bin *string) {
	if os.Geteuid() != 0 {
		fmt.Printf("%s: skipped: needs root (ptrace, clone3 set_tid)\n", name)
		os.Exit(0)
	}
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		fmt.Fprintln(os.Stderr, "close_range:", err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "ckpt-"+strings.ReplaceAll(name, "/", "-"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*bin = dir
	code := 1
	out, err := exec.Command("go", "build", "-o", dir+"/", "github.com/ckpt/ckpt/cmd/...").
		CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build the tools: %v\n%s", err, out)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}
