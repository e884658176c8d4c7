package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestVmaFlagsAndDirPos dumps and restores a process with a mapping per
// attribute madvise or mlock sets and a directory read one getdents64
// batch far. The VmFlags of each of those mappings and VmLck must read
// the same after the restore as before the dump, and the program's next
// batch must continue where the first stopped. The "nobody" case drops
// to uid 65534 with RLIMIT_MEMLOCK 0: only a restore that locks memory
// before it sets the credentials can lock it again.
func TestVmaFlagsAndDirPos(t *testing.T) {
	prog := compileC(t, "vmaflags.c")
	dir := filepath.Join(t.TempDir(), "entries")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		name := filepath.Join(dir, fmt.Sprintf("entry-%04d-with-a-longer-name", i))
		if err := os.WriteFile(name, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, uid := range []string{"", "65534"} {
		name := "root"
		if uid != "" {
			name = "nobody"
		}
		t.Run(name, func(t *testing.T) { testVmaFlags(t, prog, dir, uid) })
	}
}

func testVmaFlags(t *testing.T, prog, dir, uid string) {
	out := filepath.Join(t.TempDir(), "out")
	args := []string{dir}
	if uid != "" {
		args = append(args, uid)
	}
	s := start(t, out, prog, args...)
	waitFor(t, 30*time.Second, "READY", func() bool {
		return slices.ContainsFunc(lines(t, out), func(l string) bool {
			return strings.HasPrefix(l, "READY")
		})
	})
	var ranges []string // "start-end" as smaps writes it, per mapping
	var dirFd string
	for _, l := range lines(t, out) {
		f := strings.Fields(l)
		switch {
		case len(f) == 4 && f[0] == "MAP":
			ranges = append(ranges, f[2]+"-"+f[3])
		case len(f) == 2 && f[0] == "DIRFD":
			dirFd = f[1]
		}
	}
	if len(ranges) != 10 || dirFd == "" {
		t.Fatalf("subject said %q", lines(t, out))
	}
	before := vmaFlags(t, s.pid, ranges)
	lckBefore := statusField(t, s.pid, "VmLck:")
	posBefore := fdinfoPos(t, s.pid, dirFd)
	if lckBefore == "0 kB" {
		t.Fatalf("VmLck is %s before the dump: nothing is locked", lckBefore)
	}
	if posBefore == "0" {
		t.Fatalf("the directory's position is 0 after a getdents64 batch")
	}
	t.Logf("before: %v VmLck %s dir pos %s", before, lckBefore, posBefore)

	img := dump(t, s.pid)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the dumped subject still runs after ckpt-scan --kill")
	}
	restore(t, img, s.pid)

	after := vmaFlags(t, s.pid, ranges)
	for i, r := range ranges {
		if before[i] != after[i] {
			t.Errorf("mapping %s: VmFlags %q after the restore, %q before", r, after[i],
				before[i])
		}
	}
	if lck := statusField(t, s.pid, "VmLck:"); lck != lckBefore {
		t.Errorf("VmLck %s after the restore, %s before", lck, lckBefore)
	}
	if pos := fdinfoPos(t, s.pid, dirFd); pos != posBefore {
		t.Errorf("directory fd %s: pos %s after the restore, %s before", dirFd, pos, posBefore)
	}

	if err := syscall.Kill(s.pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "DONE", func() bool {
		return slices.Contains(lines(t, out), "DONE")
	})
	for _, l := range lines(t, out) {
		if strings.HasPrefix(l, "BAD") {
			t.Error(l)
		}
	}
	for _, want := range []string{"OK dir", "OK pattern"} {
		if !slices.Contains(lines(t, out), want) {
			t.Errorf("the restored subject did not say %q", want)
		}
	}
}

// vmaFlags returns the VmFlags line of smaps for each mapping of pid that
// spans exactly one of ranges, or "missing".
func vmaFlags(t *testing.T, pid int, ranges []string) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]string{}
	cur := ""
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmFlags:"); ok {
			flags[cur] = strings.TrimSpace(v)
			continue
		}
		if f := strings.Fields(l); len(f) > 0 && strings.Contains(f[0], "-") &&
			!strings.HasSuffix(f[0], ":") {
			cur = f[0]
		}
	}
	got := make([]string, len(ranges))
	for i, r := range ranges {
		got[i] = "missing"
		if f, ok := flags[r]; ok {
			got[i] = f
		}
	}
	return got
}

// statusField returns the value of a line of /proc/PID/status.
func statusField(t *testing.T, pid int, key string) string {
	t.Helper()
	return procField(t, fmt.Sprintf("/proc/%d/status", pid), key)
}

// fdinfoPos returns the pos line of /proc/PID/fdinfo/FD.
func fdinfoPos(t *testing.T, pid int, fd string) string {
	t.Helper()
	return procField(t, fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd), "pos:")
}

func procField(t *testing.T, path, key string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("%s: no %s line", path, key)
	return ""
}
