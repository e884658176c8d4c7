package tests

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// shmTree is the subject of testdata/shm_tree.c, started.
type shmTree struct {
	s        *subject
	out      string
	pids     []int // the parent, then its two children
	sysv     int   // shmid of the segment with a key
	dest     int   // shmid of the segment marked for removal
	memfdFds []int // the counter, the sealed one, the read-only one
}

// startShmTree starts testdata/shm_tree.c with SysV key key.
func startShmTree(t *testing.T, key uint32) *shmTree {
	t.Helper()
	prog := compileC(t, "shm_tree.c")
	out := filepath.Join(t.TempDir(), "out")
	t.Cleanup(func() { removeKey(key) })
	s := start(t, out, prog, fmt.Sprintf("%x", key))
	waitFor(t, 20*time.Second, "READY", func() bool { return len(lines(t, out)) >= 1 })
	f := strings.Fields(lines(t, out)[0])
	if len(f) != 8 || f[0] != "READY" {
		t.Fatalf("subject says %q", lines(t, out)[0])
	}
	n := make([]int, 7)
	for i := range n {
		n[i], _ = strconv.Atoi(f[i+1])
	}
	for _, pid := range n[:2] {
		t.Cleanup(func() { killPID(pid) })
	}
	return &shmTree{s: s, out: out, pids: []int{s.pid, n[0], n[1]}, sysv: n[2], dest: n[3],
		memfdFds: n[4:7]}
}

// removeKey removes the SysV segment with key, if there is one.
func removeKey(key uint32) {
	if id, err := unix.SysvShmGet(int(int32(key)), 0, 0); err == nil {
		_, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
	}
}

// report asks the subject for a report and returns it, split into its
// counters: "total" and one [3]int64 of slots per object.
func report(t *testing.T, pid int, out string) map[string][]int64 {
	t.Helper()
	n := len(lines(t, out))
	_ = syscall.Kill(pid, syscall.SIGUSR1)
	waitFor(t, 20*time.Second, "a report", func() bool { return len(lines(t, out)) > n })
	l := lines(t, out)[n]
	f := strings.Fields(l)
	if f[0] != "OK" {
		t.Fatalf("the subject's counters disagree: %s", l)
	}
	r := map[string][]int64{}
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		for _, x := range strings.Split(v, ",") {
			n, err := strconv.ParseInt(x, 10, 64)
			if err != nil {
				t.Fatalf("report %q: %v", l, err)
			}
			r[k] = append(r[k], n)
		}
	}
	return r
}

// checkGrows checks that every counter of every object (the slots each
// process writes, as the parent reads them) went up from a to b.
func checkGrows(t *testing.T, a, b map[string][]int64, objects ...string) {
	t.Helper()
	for _, o := range objects {
		for i := range a[o] {
			if b[o][i] <= a[o][i] {
				t.Errorf("%s slot %d went from %d to %d: process %d's writes are not seen",
					o, i, a[o][i], b[o][i], i)
			}
		}
	}
}

// shmState is what a test compares of the shared memory of a process
// before and after the restore.
type shmState struct {
	links []string // readlink of the memfd fds
	seals []int    // F_GET_SEALS of each
	maps  []string // maps lines of shared objects, inodes left out but for SysV
}

func readShmState(t *testing.T, pid int, fds []int) shmState {
	t.Helper()
	var st shmState
	for _, fd := range fds {
		path := fmt.Sprintf("/proc/%d/fd/%d", pid, fd)
		link, err := os.Readlink(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
		f.Close()
		if err != nil {
			t.Fatalf("%s: F_GET_SEALS: %v", path, err)
		}
		st.links, st.seals = append(st.links, link), append(st.seals, seals)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || !strings.HasSuffix(f[1], "s") {
			continue
		}
		if !strings.HasPrefix(f[5], "/SYSV") {
			f[4] = "-"
		}
		st.maps = append(st.maps, strings.Join(f, " "))
	}
	return st
}

// sysvRow returns the row of /proc/sysvipc/shm for shmid, without the
// times and PIDs: key, shmid, perms, size, nattch, uid, gid.
func sysvRow(t *testing.T, shmid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) > 8 && f[1] == strconv.Itoa(shmid) {
			return strings.Join([]string{f[0], f[1], f[2], f[3], f[6], f[7], f[8]}, " ")
		}
	}
	return ""
}

// TestSharedMemoryTree checkpoints three processes that share anonymous
// shared memory, memfds (mapped, only held as an fd and sealed, mapped
// read-only and sealed against writes) and two SysV segments (one marked
// for removal), all counting under one futex lock (testdata/shm_tree.c).
// After restore the counts agree in every object and go on growing in
// all, each process's writes seen by the others; the memfds have their
// names and seals, the segments their shmids, keys, modes and attach
// counts, the maps the same lines. The segment that outlives the killed
// tree is either taken as it is ("kept") or removed before the restore
// and made again with its shmid ("remade").
func TestSharedMemoryTree(t *testing.T) {
	for i, variant := range []string{"kept", "remade"} {
		t.Run(variant, func(t *testing.T) {
			key := 0x6b700000 | uint32(os.Getpid()&0xfff)<<4 | uint32(i)
			testSharedMemoryTree(t, key, variant == "remade")
		})
	}
}

func testSharedMemoryTree(t *testing.T, key uint32, remove bool) {
	st := startShmTree(t, key)
	objects := []string{"anon", "memfd", "sealed", "sysv", "dest"}
	first := report(t, st.s.pid, st.out)
	time.Sleep(200 * time.Millisecond)
	before := report(t, st.s.pid, st.out)
	checkGrows(t, first, before, objects...)

	states := map[int]shmState{}
	for _, pid := range st.pids {
		states[pid] = readShmState(t, pid, st.memfdFds)
	}
	rows := []string{sysvRow(t, st.sysv), sysvRow(t, st.dest)}
	if !strings.HasSuffix(rows[0], " 640 10000 4 0 0") || !strings.HasSuffix(rows[1], " 1600 12288 5 0 0") {
		t.Fatalf("the segments are %q", rows)
	}
	wantLinks := []string{"/memfd:ckpt-counter (deleted)", "/memfd:ckpt-sealed (deleted)",
		"/memfd:ckpt-ro (deleted)"}
	wantSeals := []int{unix.F_SEAL_SEAL, unix.F_SEAL_GROW | unix.F_SEAL_SHRINK, unix.F_SEAL_WRITE}
	if s := states[st.s.pid]; !slices.Equal(s.links, wantLinks) || !slices.Equal(s.seals, wantSeals) {
		t.Fatalf("the subject's memfds are %q with seals %#x", s.links, s.seals)
	}

	img := dump(t, st.s.pid)
	<-st.s.exited
	if remove {
		if _, err := unix.SysvShmCtl(st.sysv, unix.IPC_RMID, nil); err != nil {
			t.Fatalf("remove segment %d: %v", st.sysv, err)
		}
	}
	waitFor(t, 10*time.Second, "the segment marked for removal to go", func() bool {
		return sysvRow(t, st.dest) == ""
	})
	restore(t, img, st.s.pid)

	for _, pid := range st.pids {
		got := readShmState(t, pid, st.memfdFds)
		want := states[pid]
		if !slices.Equal(got.links, want.links) || !slices.Equal(got.seals, want.seals) {
			t.Errorf("pid %d: memfds %q with seals %#x, want %q with %#x", pid, got.links,
				got.seals, want.links, want.seals)
		}
		if !slices.Equal(got.maps, want.maps) {
			t.Errorf("pid %d: shared mappings\n%s\nwant\n%s", pid, strings.Join(got.maps, "\n"),
				strings.Join(want.maps, "\n"))
		}
	}
	if got := []string{sysvRow(t, st.sysv), sysvRow(t, st.dest)}; !slices.Equal(got, rows) {
		t.Errorf("the segments are\n%q\nwant\n%q", got, rows)
	}

	after := report(t, st.s.pid, st.out)
	if after["total"][0] < before["total"][0] {
		t.Errorf("total went back from %d to %d", before["total"][0], after["total"][0])
	}
	time.Sleep(200 * time.Millisecond)
	later := report(t, st.s.pid, st.out)
	checkGrows(t, after, later, objects...)
	if later["ro"][0] <= after["ro"][0] || later["robad"][0] != 0 {
		t.Errorf("child 2's read-only attach: %d checks, then %d, %d bad", after["ro"][0],
			later["ro"][0], later["robad"][0])
	}
}

// TestSharedMemoryKeyTaken: a SysV segment whose key another segment has
// taken by the time of the restore makes the restore fail, naming the
// key, and leave nothing behind: no process, and no segment it made.
func TestSharedMemoryKeyTaken(t *testing.T) {
	key := 0x6b710000 | uint32(os.Getpid()&0xffff)
	st := startShmTree(t, key)
	img := dump(t, st.s.pid)
	<-st.s.exited
	if _, err := unix.SysvShmCtl(st.sysv, unix.IPC_RMID, nil); err != nil {
		t.Fatal(err)
	}
	other, err := unix.SysvShmGet(int(int32(key)), 4096, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the segment marked for removal to go", func() bool {
		return sysvRow(t, st.dest) == ""
	})
	segments := func() []string {
		b, _ := os.ReadFile("/proc/sysvipc/shm")
		return strings.Split(string(b), "\n")[1:]
	}
	was := len(segments())

	stderr, err := run(t, 60*time.Second, "ckpt-restore "+img)
	if err == nil {
		t.Fatal("the restore succeeded")
	}
	want := fmt.Sprintf("shmget key %#x", key)
	if !strings.Contains(stderr, want) || !strings.Contains(stderr, "exists") {
		t.Errorf("the restore says %q, want it to name %q", stderr, want)
	}
	for _, pid := range st.pids {
		if alive(pid) {
			t.Errorf("pid %d runs after a failed restore", pid)
		}
	}
	if now := len(segments()); now != was {
		t.Errorf("%d segments before the restore, %d after", was, now)
	}
	if id, err := unix.SysvShmGet(int(int32(key)), 0, 0); err != nil || id != other {
		t.Errorf("key %#x is segment %d (%v), want %d", key, id, err, other)
	}
	if b, _ := os.ReadFile("/proc/sys/kernel/shm_next_id"); strings.TrimSpace(string(b)) != "-1" {
		t.Errorf("shm_next_id is %s after the failed restore", b)
	}
}

// TestPosixShm checkpoints two processes sharing POSIX shared memory
// (testdata/posix_shm.c): an object still in /dev/shm, and one removed
// with shm_unlink but still open and mapped. After restore the first is
// the same file, the second comes back as a removed file of /dev/shm
// again, and the counts agree and go on growing in both.
func TestPosixShm(t *testing.T) {
	prog := compileC(t, "posix_shm.c")
	out := filepath.Join(t.TempDir(), "out")
	name := fmt.Sprintf("/ckpt-test-%d", os.Getpid())
	path := "/dev/shm" + name
	t.Cleanup(func() { os.Remove(path); os.Remove(path + "-gone") })
	s := start(t, out, prog, name)
	waitFor(t, 20*time.Second, "READY", func() bool { return len(lines(t, out)) >= 1 })
	var child, goneFd int
	if _, err := fmt.Sscanf(lines(t, out)[0], "READY %d %d", &child, &goneFd); err != nil {
		t.Fatalf("subject says %q: %v", lines(t, out)[0], err)
	}
	t.Cleanup(func() { killPID(child) })

	var fi unix.Stat_t
	if err := unix.Stat(path, &fi); err != nil {
		t.Fatal(err)
	}
	goneLink := fmt.Sprintf("/proc/%d/fd/%d", s.pid, goneFd)
	if l, err := os.Readlink(goneLink); err != nil || l != path+"-gone (deleted)" {
		t.Fatalf("the removed object is %q (%v)", l, err)
	}
	mapsOf := func(pid int) []string {
		var ls []string
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 6 && strings.HasPrefix(f[5], "/dev/shm/") {
				if strings.HasSuffix(l, "(deleted)") {
					f[4] = "-" // a removed file comes back as a new inode
				}
				ls = append(ls, strings.Join(f, " "))
			}
		}
		return ls
	}
	before := report(t, s.pid, out)
	mapsBefore := map[int][]string{s.pid: mapsOf(s.pid), child: mapsOf(child)}
	if len(mapsBefore[child]) != 2 {
		t.Fatalf("the child maps %q", mapsBefore[child])
	}

	img := dump(t, s.pid)
	<-s.exited
	restore(t, img, s.pid)

	for pid, want := range mapsBefore {
		if got := mapsOf(pid); !slices.Equal(got, want) {
			t.Errorf("pid %d maps\n%s\nwant\n%s", pid, strings.Join(got, "\n"),
				strings.Join(want, "\n"))
		}
	}
	if l, err := os.Readlink(goneLink); err != nil || l != path+"-gone (deleted)" {
		t.Errorf("the removed object is %q (%v) after restore", l, err)
	}
	if _, err := os.Stat(path + "-gone"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the removed object has a name again: %v", err)
	}
	var fa unix.Stat_t
	if err := unix.Stat(path, &fa); err != nil || fa.Ino != fi.Ino {
		t.Errorf("%s is inode %d (%v), was %d", path, fa.Ino, err, fi.Ino)
	}
	after := report(t, s.pid, out)
	if after["total"][0] < before["total"][0] {
		t.Errorf("total went back from %d to %d", before["total"][0], after["total"][0])
	}
	time.Sleep(200 * time.Millisecond)
	checkGrows(t, after, report(t, s.pid, out), "linked", "gone")
}

// TestSharedMemoryPIDNS restores a copy of the shm_tree subject with
// --pidns beside the original, which was dumped without --kill and runs
// on. Each tree counts under its own lock in its own objects: were any
// object shared between the two (a SysV segment, say), the subject's own
// check that every total is the sum of its slots would fail. The
// original's segments keep their attach counts.
func TestSharedMemoryPIDNS(t *testing.T) {
	st := startShmTree(t, 0x5eed1234)
	objects := []string{"anon", "memfd", "sealed", "sysv", "dest"}
	report(t, st.s.pid, st.out)
	rows := []string{sysvRow(t, st.sysv), sysvRow(t, st.dest)}
	img := filepath.Join(t.TempDir(), "img")
	line := fmt.Sprintf("ckpt-scan %d | ckpt-files | ckpt-mem | ckpt-pack > %s", st.s.pid, img)
	if stderr, err := run(t, 60*time.Second, line); err != nil {
		t.Fatalf("dump: %v\n%s", err, stderr)
	}
	stderr, err := run(t, 60*time.Second, "ckpt-restore -v --pidns "+img)
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, stderr)
	}
	var init, root int
	i := strings.Index(stderr, "its init is pid")
	if i < 0 {
		t.Fatalf("ckpt-restore -v does not say where the copy is:\n%s", stderr)
	}
	if _, err := fmt.Sscanf(stderr[i:], "its init is pid %d here, the root pid %d here",
		&init, &root); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killPID(init) })
	a, b := report(t, st.s.pid, st.out), report(t, root, st.out)
	time.Sleep(300 * time.Millisecond)
	checkGrows(t, a, report(t, st.s.pid, st.out), objects...)
	checkGrows(t, b, report(t, root, st.out), objects...)
	if got := []string{sysvRow(t, st.sysv), sysvRow(t, st.dest)}; !slices.Equal(got, rows) {
		t.Errorf("the original's segments are\n%q\nwant\n%q", got, rows)
	}
	if !alive(st.s.pid) {
		t.Error("the original stopped running")
	}
}
