package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestScanRefusesUnsupported: ckpt-scan --kill refuses, naming the
// process and what it cannot keep, a process whose state restore could
// not rebuild or would quietly lose, before it runs anything in it, and
// the process runs on, untraced.
func TestScanRefusesUnsupported(t *testing.T) {
	prog := compileC(t, "odd.c")
	tests := []struct {
		name string
		cmd  []string
		want string
	}{
		{"seccomp", []string{prog, "seccomp"}, "runs under seccomp (mode 2)"},
		{"clone files", []string{prog, "clonefiles"}, "shares its fd table (CLONE_FILES) with its parent"},
		{"thread uid", []string{prog, "threaduid"}, "has credentials of its own"},
		{"flock", []string{"sh", "-c", `cd "$1" && exec "$2" lock`, "sh", "DIR", prog},
			"holds a file lock"},
		{"namespace", []string{"unshare", "-u", "sh", "-c", "echo READY; exec sleep 1000"},
			"is in a uts namespace of its own"},
		{"removed cwd", []string{"sh", "-c", `cd "$1" && mkdir gone && cd gone && ` +
			`rmdir ../gone && echo READY && exec sleep 1000`, "sh", "DIR"}, "its cwd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			args := slices.Clone(tt.cmd)
			for i := range args {
				if args[i] == "DIR" {
					args[i] = dir
				}
			}
			s := start(t, out, args[0], args[1:]...)
			waitFor(t, 10*time.Second, "READY", func() bool {
				return slices.Contains(lines(t, out), "READY")
			})
			pids := append([]int{s.pid}, childPIDs(t, s.pid)...)
			for _, p := range pids {
				t.Cleanup(func() { killPID(p) })
			}
			_, stderr, err := scanOut(t, fmt.Sprintf(
				"ckpt-scan --kill %d | ckpt-files | ckpt-mem | ckpt-pack > %s/img", s.pid, dir))
			if err == nil || !strings.Contains(stderr, tt.want) {
				t.Fatalf("dump: %v, want a refusal %q:\n%s", err, tt.want, stderr)
			}
			t.Log(strings.TrimSpace(stderr))
			time.Sleep(50 * time.Millisecond)
			for _, p := range pids {
				if st := procState(p); st != "S" && st != "R" || tracerPID(p) != 0 {
					t.Errorf("pid %d after the refusal: state %q, tracer %d", p, st, tracerPID(p))
				}
			}
		})
	}
}

// childPIDs returns the children of pid.
func childPIDs(t *testing.T, pid int) []int {
	var pids []int
	for _, k := range readChildren(t, pid) {
		n, _ := strconv.Atoi(k)
		pids = append(pids, n)
	}
	return pids
}

// TestReservations restores a process with a 100 GiB PROT_NONE
// reservation and a 1 TiB MAP_NORESERVE mapping (as JVMs and wasm
// runtimes make): more than the machine could commit, so restore must
// not have them counted, and the byte written in the big one is back.
func TestReservations(t *testing.T) {
	prog := compileC(t, "reserve.c")
	out := filepath.Join(t.TempDir(), "out")
	s := start(t, out, prog)
	var none, big uint64
	waitFor(t, 10*time.Second, "READY", func() bool {
		l := lines(t, out)
		if len(l) == 0 {
			return false
		}
		_, err := fmt.Sscanf(l[0], "READY 0x%x 0x%x", &none, &big)
		return err == nil
	})
	img := dump(t, s.pid)
	<-s.exited
	restore(t, img, s.pid)
	b := make([]byte, 1)
	local := []unix.Iovec{{Base: &b[0]}}
	local[0].SetLen(1)
	remote := []unix.RemoteIovec{{Base: uintptr(big + 12345), Len: 1}}
	if _, err := unix.ProcessVMReadv(s.pid, local, remote, 0); err != nil || b[0] != 7 {
		t.Errorf("the restored byte is %d (%v), want 7", b[0], err)
	}
}

// TestTmpfile restores a file made with O_TMPFILE (never had a name): a
// ghost, its bytes and offset back.
func TestTmpfile(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(t.TempDir(), "out")
	py := `import os, sys, time
fd = os.open(sys.argv[1], os.O_TMPFILE | os.O_RDWR, 0o600)
os.write(fd, b"tmpfile bytes")
os.lseek(fd, 3, 0)
print("READY", fd, flush=True)
while True:
    time.sleep(1)
`
	s := start(t, out, "python3", "-c", py, dir)
	var fd int
	waitFor(t, 10*time.Second, "READY", func() bool {
		l := lines(t, out)
		return len(l) > 0 && func() bool { _, err := fmt.Sscanf(l[0], "READY %d", &fd); return err == nil }()
	})
	img := dump(t, s.pid)
	<-s.exited
	restore(t, img, s.pid)
	p := fmt.Sprintf("/proc/%d/fd/%d", s.pid, fd)
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "tmpfile bytes" {
		t.Errorf("%s holds %q (%v)", p, b, err)
	}
	if pos := fdPos(t, s.pid, fd); pos != 3 {
		t.Errorf("%s: offset %d, want 3", p, pos)
	}
}
