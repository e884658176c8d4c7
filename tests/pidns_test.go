package tests

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// counted reads pidns.c's state (count, getpid) from process pid here.
func counted(t *testing.T, pid int, addr uint64) (count, self int64) {
	t.Helper()
	b := make([]byte, 16)
	local := []unix.Iovec{{Base: &b[0]}}
	local[0].SetLen(len(b))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(b)}}
	if _, err := unix.ProcessVMReadv(pid, local, remote, 0); err != nil {
		t.Fatalf("read the state of pid %d: %v", pid, err)
	}
	return int64(binary.LittleEndian.Uint64(b)), int64(binary.LittleEndian.Uint64(b[8:]))
}

// nsPIDs returns the NSpid line of /proc/PID/status: the PID in each
// namespace, outermost first.
func nsPIDs(t *testing.T, pid int) []int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^NSpid:\s*(.*)$`).FindSubmatch(b)
	var ids []int
	for _, f := range strings.Fields(string(m[1])) {
		n, _ := strconv.Atoi(f)
		ids = append(ids, n)
	}
	return ids
}

// TestPIDNS dumps a parent and child without --kill and restores a copy
// with --pidns while the original runs: the copy has the saved PIDs in
// its namespace, its own memory (its count goes on from the dump's, the
// original's from its own), and getpid() in it says the saved PID.
func TestPIDNS(t *testing.T) {
	prog := compileC(t, "pidns.c")
	out := filepath.Join(t.TempDir(), "out")
	s := start(t, out, prog)
	var parent, child int
	var addr uint64
	waitFor(t, 20*time.Second, "READY", func() bool {
		l := lines(t, out)
		if len(l) == 0 {
			return false
		}
		_, err := fmt.Sscanf(l[0], "READY %d %d 0x%x", &parent, &child, &addr)
		return err == nil
	})
	t.Cleanup(func() { killPID(child) })
	img := filepath.Join(t.TempDir(), "img")
	line := fmt.Sprintf("ckpt-scan %d | ckpt-files | ckpt-mem | ckpt-pack > %s", parent, img)
	if stderr, err := run(t, 60*time.Second, line); err != nil {
		t.Fatalf("dump: %v\n%s", err, stderr)
	}
	stderr, err := run(t, 60*time.Second, "ckpt-restore -v --pidns "+img)
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, stderr)
	}
	var init, root int
	if _, err := fmt.Sscanf(stderr[strings.Index(stderr, "its init is pid"):],
		"its init is pid %d here, the root pid %d here", &init, &root); err != nil {
		t.Fatalf("ckpt-restore -v does not say where the copy is: %v\n%s", err, stderr)
	}
	t.Cleanup(func() { killPID(init) }) // ends the namespace and all in it
	if ids := nsPIDs(t, root); len(ids) != 2 || ids[0] != root || ids[1] != parent {
		t.Fatalf("the copy's root has NSpid %v, want [%d %d]", ids, root, parent)
	}
	kids := readChildren(t, root)
	if len(kids) != 1 {
		t.Fatalf("the copy's root has children %v", kids)
	}
	copyChild, _ := strconv.Atoi(kids[0])
	if ids := nsPIDs(t, copyChild); len(ids) != 2 || ids[1] != child {
		t.Fatalf("the copy's child has NSpid %v, want [%d %d]", ids, copyChild, child)
	}
	if ids := nsPIDs(t, init); len(ids) != 2 || ids[1] != 1 {
		t.Fatalf("the namespace's init has NSpid %v, want [%d 1]", ids, init)
	}
	pairs := [][2]int{{parent, root}, {child, copyChild}}
	for _, p := range pairs {
		orig, cp := p[0], p[1]
		o1, _ := counted(t, orig, addr)
		c1, self := counted(t, cp, addr)
		if self != int64(orig) {
			t.Errorf("getpid() in the copy of %d says %d", orig, self)
		}
		waitFor(t, 10*time.Second, "both to count on", func() bool {
			o2, _ := counted(t, orig, addr)
			c2, _ := counted(t, cp, addr)
			return o2 > o1+20 && c2 > c1+20
		})
	}
	if !alive(s.pid) {
		t.Error("the original stopped running")
	}
}
