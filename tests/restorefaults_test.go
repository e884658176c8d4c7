package tests

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Faults during a restore (issue 5): a PID that is taken, a file changed
// or removed since the dump, a mapping that cannot be had, a ghost whose
// directory is read-only. Each restore fails with a clear message,
// undoes all it made (processes, ghosts, hidden links), leaves the
// archive as it was, and restores once the cause is fixed.

// switches returns the voluntary context switches of pid: a process
// that sleeps and wakes runs them up.
func switches(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "voluntary_ctxt_switches:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return -1
}

// runsOn checks that pid runs, untraced and not stopped, and wakes up
// again and again (it sleeps in a loop, as counter.c does).
func runsOn(t *testing.T, pid int, why string) {
	t.Helper()
	if !alive(pid) || tracerPID(pid) != 0 || procState(pid) == "t" || procState(pid) == "T" {
		t.Fatalf("%s: pid %d is in state %q, traced by %d", why, pid, procState(pid), tracerPID(pid))
	}
	n := switches(pid)
	waitFor(t, 10*time.Second, fmt.Sprintf("%s: pid %d to run on", why, pid), func() bool {
		return switches(pid) >= n+5
	})
}

// sum returns the SHA-256 of a file.
func sum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// restoreFails runs ckpt-restore on img, checks that it fails with a
// message matching want, that no process of the tree (gone) runs, that
// nothing of ckpt-restore is left, and that img did not change.
func restoreFails(t *testing.T, img, want string, gone []int) {
	t.Helper()
	before := sum(t, img)
	stderr, err := run(t, 60*time.Second, "ckpt-restore "+img)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("ckpt-restore: %v, want exit status 1: %s", err, stderr)
	}
	last := strings.TrimSpace(stderr)
	last = last[strings.LastIndexByte(last, '\n')+1:]
	if !regexp.MustCompile(want).MatchString(last) {
		t.Fatalf("ckpt-restore said %q, want %q", stderr, want)
	}
	t.Logf("refused as it should: %s", last)
	for _, pid := range gone {
		if alive(pid) {
			t.Fatalf("pid %d runs after the failed restore (state %s)", pid, procState(pid))
		}
	}
	if left := restorerLeft(); len(left) > 0 {
		t.Fatalf("processes of ckpt-restore are left: %v", left)
	}
	if sum(t, img) != before {
		t.Fatal("the failed restore changed the archive")
	}
}

// waitGone waits until none of pids exists, zombies included, as a
// restore needs them.
func waitGone(t *testing.T, pids ...int) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("pids %v to be reaped", pids), func() bool {
		return !slices.ContainsFunc(pids, func(p int) bool { return procState(p) != "" })
	})
}

// dumpNoKill checkpoints pid and leaves it running.
func dumpNoKill(t *testing.T, pid int) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "img")
	line := fmt.Sprintf("ckpt-scan %d | ckpt-files | ckpt-mem | ckpt-pack -o %s", pid, img)
	if stderr, err := run(t, 120*time.Second, line); err != nil {
		t.Fatalf("dump of pid %d: %v\n%s", pid, err, stderr)
	}
	return img
}

// TestRestorePIDTaken restores a process whose PID its original still
// holds (dumped without --kill): refused, the original untouched; once
// the original is gone the same archive restores.
func TestRestorePIDTaken(t *testing.T) {
	prog := compileOnce(t, "counter.c")
	s := start(t, "", prog, "0")
	runsOn(t, s.pid, "before the dump")
	img := dumpNoKill(t, s.pid)
	restoreFails(t, img, fmt.Sprintf(`pid %d is in use`, s.pid), nil)
	runsOn(t, s.pid, "the original after the refused restore")

	killPID(s.pid)
	<-s.exited
	waitGone(t, s.pid)
	restore(t, img, s.pid)
	runsOn(t, s.pid, "restored")
}

// TestRestoreChildPIDTaken dumps a tree of three counters with --kill,
// then has another process take the PID of the first child
// (testdata/pidtaker.c). The restore creates the root, cannot create the
// child, and kills the root again; nothing of the tree is left. Once
// the taker is gone, the same archive restores the whole tree.
func TestRestoreChildPIDTaken(t *testing.T) {
	f := startFamily(t, 8)
	img := dump(t, f[0].pid)
	<-f[0].exited
	waitGone(t, f.pids()...)

	taken := f[1].pid
	out, err := exec.Command(compileOnce(t, "pidtaker.c"), strconv.Itoa(taken)).CombinedOutput()
	if err != nil {
		t.Fatalf("take pid %d: %v: %s", taken, err, out)
	}
	t.Cleanup(func() { killPID(taken) })
	restoreFails(t, img, fmt.Sprintf(`pid %d is in use by a running process \(pidtaker\)`,
		taken), []int{f[0].pid, f[2].pid})
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", taken)); string(comm) != "pidtaker\n" {
		t.Fatalf("pid %d is %q after the failed restore, not the taker", taken, comm)
	}

	killPID(taken)
	waitGone(t, taken)
	last := make([]int, len(f))
	for i, c := range f {
		last[i] = c.count(t)
	}
	restore(t, img, f[0].pid)
	f.checkRuns(t, "restored once the pid was free")
	for i, c := range f {
		if c.count(t) <= last[i] {
			t.Errorf("pid %d counts %d after the restore, %d before", c.pid, c.count(t), last[i])
		}
		if i > 0 && readProcStat(t, c.pid).ppid != f[0].pid {
			t.Errorf("pid %d has parent %d, want %d", c.pid, readProcStat(t, c.pid).ppid, f[0].pid)
		}
	}
}

// TestRestoreFileChanged dumps a process holding a file open three
// times, and each time, before the restore, changes the file (appended
// to), removes it, or puts another file at its name. Each restore is
// refused by name; once the file is put back as it was, it restores and
// the fd reads the file.
func TestRestoreFileChanged(t *testing.T) {
	prog := compileOnce(t, "counter.c")
	dir := t.TempDir()
	file, keep := filepath.Join(dir, "data"), filepath.Join(t.TempDir(), "keep")
	content := []byte("the file as it was at the dump\n")
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(file, keep); err != nil { // the inode, kept aside
		t.Fatal(err)
	}
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	mtime := st.ModTime()
	s := start(t, "", "sh", "-c", `exec 3<"$1"; exec "$2" 0`, "sh", file, prog)
	waitFor(t, 10*time.Second, "the counter", func() bool {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", s.pid))
		return link == file && procState(s.pid) == "S"
	})
	pid := s.pid
	cases := []struct {
		name       string
		breakIt    func() error
		want       string
		fix        func() error
		acceptOnly bool
	}{
		{"appended", func() error {
			f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write([]byte("more\n"))
			return err
		}, `file .*/data changed since the dump \(size \d+, was \d+`, func() error {
			if err := os.Truncate(file, int64(len(content))); err != nil {
				return err
			}
			return os.Chtimes(file, mtime, mtime)
		}, false},
		{"removed", func() error { return os.Remove(file) },
			`file .*/data: no such file or directory`,
			func() error { return os.Link(keep, file) }, false},
		{"replaced", func() error {
			if err := os.Remove(file); err != nil {
				return err
			}
			return os.WriteFile(file, content, 0o644)
		}, `file .*/data was replaced since the dump`, func() error {
			if err := os.Remove(file); err != nil {
				return err
			}
			return os.Link(keep, file)
		}, false},
	}
	for i, c := range cases {
		img := dump(t, pid)
		waitGone(t, pid)
		if err := c.breakIt(); err != nil {
			t.Fatal(err)
		}
		restoreFails(t, img, c.want, []int{pid})
		if err := c.fix(); err != nil {
			t.Fatal(err)
		}
		restore(t, img, pid)
		runsOn(t, pid, fmt.Sprintf("restored after the file was %s and put back (round %d)", c.name, i))
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fd/3", pid)); err != nil ||
			!bytes.Equal(b, content) {
			t.Fatalf("fd 3 of the restored process reads %q, %v", b, err)
		}
	}
}

// TestRestoreMappingRefused restores a process with a 4 GiB mapping under
// an address space limit of 3 GiB (ulimit -v, which the new process
// inherits from ckpt-restore while it is built): the mapping cannot be
// had, the restore says which, and without the limit it restores.
func TestRestoreMappingRefused(t *testing.T) {
	prog := compileOnce(t, "bigmap.c")
	out := filepath.Join(t.TempDir(), "out")
	s := start(t, out, prog, "4")
	waitFor(t, 10*time.Second, "READY", func() bool { return len(lines(t, out)) >= 1 })
	addr := strings.TrimPrefix(lines(t, out)[0], "READY ")
	img := dump(t, s.pid)
	<-s.exited
	waitGone(t, s.pid)

	before := sum(t, img)
	stderr, err := run(t, 60*time.Second, "ulimit -v 3145728; ckpt-restore "+img)
	if err == nil {
		t.Fatalf("the restore under a 3 GiB limit succeeded: %s", stderr)
	}
	want := fmt.Sprintf(`pid %d: mmap %s-0x[0-9a-f]+ .*cannot allocate memory`, s.pid, addr)
	if !regexp.MustCompile(want).MatchString(stderr) {
		t.Fatalf("ckpt-restore said %q, want %q", stderr, want)
	}
	if alive(s.pid) || len(restorerLeft()) > 0 || sum(t, img) != before {
		t.Fatalf("the failed restore left pid %d in state %q, restorer processes %v, or "+
			"changed the archive", s.pid, procState(s.pid), restorerLeft())
	}
	restore(t, img, s.pid)
	runsOn(t, s.pid, "restored without the limit")
}

// TestRestoreGhostReadOnly dumps a process holding an unlinked file on a
// tmpfs, then makes that tmpfs read-only: the ghost cannot be made
// beside its old name, the restore says so, and nothing is left on the
// tmpfs. Made writable again, the restore succeeds and the subject finds
// its file as it was.
func TestRestoreGhostReadOnly(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("ckpt-test", dir, "tmpfs", 0, "size=16m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	r := startFilesIn(t, dir, "ghost")
	img := dump(t, r.s.pid)
	<-r.s.exited
	waitGone(t, r.s.pid)
	listed := dirList(t, dir)

	remount := func(flags uintptr) {
		t.Helper()
		if err := unix.Mount("", dir, "", unix.MS_REMOUNT|flags, ""); err != nil {
			t.Fatalf("remount %s: %v", dir, err)
		}
	}
	remount(unix.MS_RDONLY)
	restoreFails(t, img, `ghost.*read-only file system`, []int{r.s.pid})
	remount(0)
	if got := dirList(t, dir); !slices.Equal(got, listed) {
		t.Fatalf("%s holds %q after the failed restore, held %q", dir, got, listed)
	}
	restore(t, img, r.s.pid)
	r.check("after the restore")
	if got := dirList(t, dir); !slices.Equal(got, listed) {
		t.Fatalf("%s holds %q after the restore, held %q", dir, got, listed)
	}
}

// startFilesIn starts files_subject in mode on dir, as startFiles does on
// a new directory.
func startFilesIn(t *testing.T, dir, mode string) *filesRun {
	t.Helper()
	prog := compileC(t, "files_subject.c")
	r := &filesRun{t: t, dir: dir, out: filepath.Join(t.TempDir(), "out")}
	r.s = start(t, r.out, prog, mode, dir)
	waitFor(t, 60*time.Second, "READY", func() bool {
		return slices.ContainsFunc(lines(t, r.out), func(l string) bool {
			return strings.HasPrefix(l, "READY")
		})
	})
	r.check("before the dump")
	return r
}
