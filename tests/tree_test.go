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

// procStat is what a test checks of a process in /proc/PID/stat.
type procStat struct {
	state           string
	ppid, pgid, sid int
}

func readProcStat(t *testing.T, pid int) procStat {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("pid %d: %v", pid, err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	atoi := func(x string) int { n, _ := strconv.Atoi(x); return n }
	return procStat{state: f[0], ppid: atoi(f[1]), pgid: atoi(f[2]), sid: atoi(f[3])}
}

// lastCount returns the last number a counter wrote to its log.
func lastCount(t *testing.T, log string) int {
	t.Helper()
	l := lines(t, log)
	if len(l) == 0 {
		return -1
	}
	n, err := strconv.Atoi(l[len(l)-1])
	if err != nil {
		t.Fatalf("%s: last line %q", log, l[len(l)-1])
	}
	return n
}

// sameDescription reports whether fd of pid1 and fd of pid2 are one open
// file description (kcmp KCMP_FILE).
func sameDescription(pid1, pid2, fd int) bool {
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(pid1), uintptr(pid2), 0,
		uintptr(fd), uintptr(fd), 0)
	return errno == 0 && r == 0
}

// fdPos returns the offset of fd of pid from fdinfo.
func fdPos(t *testing.T, pid, fd int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := strings.CutPrefix(strings.Split(string(b), "\n")[0], "pos:")
	n, _ := strconv.Atoi(strings.TrimSpace(v))
	return n
}

// TestTree checkpoints a tree of seven processes (testdata/tree.c): two
// zombies, a group leader with a child in its group, a session leader, a
// plain child, all sharing one open file description. After the restore
// every process has its PID, parent, group and session, the zombies are
// zombies with their exit statuses, the counters go on, and the shared
// offset is still shared.
func TestTree(t *testing.T) {
	prog := compileC(t, "tree.c")
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	s := start(t, out, prog, dir)
	var pids []int
	waitFor(t, 20*time.Second, "READY", func() bool {
		for _, l := range lines(t, out) {
			if f, ok := strings.CutPrefix(l, "READY "); ok {
				for _, x := range strings.Fields(f) {
					n, _ := strconv.Atoi(x)
					pids = append(pids, n)
				}
				return true
			}
		}
		return false
	})
	for _, pid := range pids {
		t.Cleanup(func() { killPID(pid) })
	}
	names := []string{"root", "a", "a1", "b", "e"}
	root := pids[0]
	before := map[int]procStat{}
	for _, pid := range pids {
		before[pid] = readProcStat(t, pid)
	}
	waitFor(t, 10*time.Second, "the counters", func() bool {
		for _, n := range names {
			if lastCount(t, filepath.Join(dir, n+".log")) < 3 {
				return false
			}
		}
		return true
	})

	img := dump(t, root)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the dumped root still runs after ckpt-scan --kill")
	}
	last := map[string]int{}
	for _, n := range names {
		last[n] = lastCount(t, filepath.Join(dir, n+".log"))
	}
	// Wait until init has reaped the killed tree, as a restore on
	// another machine would find it.
	waitFor(t, 10*time.Second, "the killed tree to be reaped", func() bool {
		return !slices.ContainsFunc(pids, func(p int) bool { return procState(p) != "" })
	})
	restore(t, img, root)

	// The root led no session (the test's is outside the tree): it leads
	// one now, and those that were in the test's session are in it.
	mapID := func(id int) int {
		if id == before[root].sid {
			return root
		}
		return id
	}
	for i, pid := range pids {
		was, now := before[pid], readProcStat(t, pid)
		want := procStat{state: now.state, ppid: was.ppid, pgid: mapID(was.pgid), sid: mapID(was.sid)}
		if pid == root {
			want.ppid = now.ppid // adopted by init, or a subreaper
		}
		if now != want {
			t.Errorf("process %d (pid %d): %+v after the restore, want %+v (was %+v)",
				i, pid, now, want, was)
		}
		zombie := i >= 5
		if zombie != (now.state == "Z") {
			t.Errorf("process %d (pid %d): state %s after the restore", i, pid, now.state)
		}
	}
	for _, n := range names {
		log := filepath.Join(dir, n+".log")
		waitFor(t, 10*time.Second, n+" to count on", func() bool {
			return lastCount(t, log) > last[n]+3
		})
		l := lines(t, log)
		for j := 1; j < len(l); j++ {
			a, _ := strconv.Atoi(l[j-1])
			b, _ := strconv.Atoi(l[j])
			if b != a+1 {
				t.Fatalf("%s: %d follows %d (the count restarted, skipped or repeated)", log, b, a)
			}
		}
	}
	checkShared(t, pids)
	checkReaped(t, out, pids)
}

// checkShared checks that fd 3 is one description in every live process
// and that a write through one moves the offset of the others.
func checkShared(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids[1:5] {
		if !sameDescription(pids[0], pid, 3) {
			t.Errorf("fd 3 of pid %d and of the root are not one description", pid)
		}
	}
	pos := fdPos(t, pids[0], 3)
	if err := unix.Kill(pids[2], unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the write through a1's fd", func() bool {
		return fdPos(t, pids[0], 3) == pos+10
	})
}

// checkReaped has the root reap its zombies and checks their statuses:
// exit code 7, and SIGTERM.
func checkReaped(t *testing.T, out string, pids []int) {
	t.Helper()
	if err := unix.Kill(pids[0], unix.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprintf("REAPED %d %d", pids[5], 7<<8),
		fmt.Sprintf("REAPED %d %d", pids[6], int(unix.SIGTERM))}
	waitFor(t, 10*time.Second, "the zombies to be reaped", func() bool {
		l := lines(t, out)
		return slices.Contains(l, want[0]) && slices.Contains(l, want[1])
	})
	for _, z := range pids[5:] {
		if procState(z) != "" {
			t.Errorf("zombie %d is still there after its parent reaped it", z)
		}
	}
}

// TestTreeShell checkpoints a shell loop whose child changes all the
// time: sh -c 'while :; do date +%s%N; sleep 0.2; done' > LOG.
func TestTreeShell(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	s := start(t, log, "sh", "-c", "while :; do date +%s%N; sleep 0.2; done")
	waitFor(t, 10*time.Second, "the first lines", func() bool { return len(lines(t, log)) >= 3 })
	img := dump(t, s.pid)
	<-s.exited
	n := len(lines(t, log))
	restore(t, img, s.pid)
	waitFor(t, 10*time.Second, "the loop to go on", func() bool { return len(lines(t, log)) >= n+3 })
	prev := int64(0)
	for _, l := range lines(t, log) {
		v, err := strconv.ParseInt(l, 10, 64)
		if err != nil || v <= prev {
			t.Fatalf("log line %q after %d: not a later time", l, prev)
		}
		prev = v
	}
	if kids := readChildren(t, s.pid); len(kids) > 1 {
		t.Errorf("the restored shell has %d children: %v", len(kids), kids)
	}
}

func readChildren(t *testing.T, pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// cpusAllowed returns Cpus_allowed_list of /proc/PID/status.
func cpusAllowed(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("pid %d: no Cpus_allowed_list", pid)
	return ""
}

// TestAffinity restores a process pinned to the last CPU with its CPU
// affinity, not the restorer's.
func TestAffinity(t *testing.T) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	if all.Count() < 2 {
		t.Skip("needs two CPUs to tell a pinned process from one that is not")
	}
	last := 0
	for c := range 1024 {
		if all.IsSet(c) {
			last = c
		}
	}
	s := start(t, "", "taskset", "-c", strconv.Itoa(last), "sleep", "1000")
	waitFor(t, 10*time.Second, "sleep", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", s.pid))
		return strings.TrimSpace(string(b)) == "sleep"
	})
	if got := cpusAllowed(t, s.pid); got != strconv.Itoa(last) {
		t.Fatalf("taskset gave CPUs %s", got)
	}
	img := dump(t, s.pid)
	<-s.exited
	restore(t, img, s.pid)
	if got := cpusAllowed(t, s.pid); got != strconv.Itoa(last) {
		t.Errorf("the restored process may run on CPUs %s, want %d", got, last)
	}
}

// outsideGroupPy is a process L that forks R, which leads a group of its
// own and forks M, which joins L's group: dumped from R, M is in a group
// whose leader is outside the tree and still runs.
const outsideGroupPy = `import os, time
l = os.getpid()
if os.fork() == 0:
    os.setpgid(0, 0)
    m = os.fork()
    if m == 0:
        os.setpgid(0, l)
        while True:
            time.sleep(1)
    time.sleep(0.3)
    print("READY", os.getpid(), m, flush=True)
    while True:
        time.sleep(1)
while True:
    time.sleep(1)
`

// TestScanRefusesLiveLeader: ckpt-scan --kill refuses, naming the group
// and its leader, a tree with a group whose leader is outside the tree
// and still runs (restore could not take its PID for the helper that
// makes the group), and the tree runs on: a dump with --kill must never
// end what cannot come back.
func TestScanRefusesLiveLeader(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	s := start(t, out, "python3", "-c", outsideGroupPy)
	var r, m int
	waitFor(t, 20*time.Second, "READY", func() bool {
		l := lines(t, out)
		return len(l) > 0 && func() bool {
			_, err := fmt.Sscanf(l[0], "READY %d %d", &r, &m)
			return err == nil
		}()
	})
	t.Cleanup(func() { killPID(r); killPID(m) })
	img := filepath.Join(t.TempDir(), "img")
	stderr, err := run(t, 60*time.Second, fmt.Sprintf(
		"ckpt-scan --kill %d | ckpt-files | ckpt-mem | ckpt-pack > %s", r, img))
	want := fmt.Sprintf("process group %d: its leader pid %d (python3) is not in the tree "+
		"but still exists", s.pid, s.pid)
	if err == nil || !strings.Contains(stderr, want) {
		t.Fatalf("dump: %v, want a refusal %q:\n%s", err, want, stderr)
	}
	time.Sleep(100 * time.Millisecond)
	for _, pid := range []int{r, m} {
		if st := procState(pid); st != "S" && st != "R" {
			t.Errorf("pid %d is %q after the refused dump, want running", pid, st)
		}
		if tracerPID(pid) != 0 {
			t.Errorf("pid %d is still traced", pid)
		}
	}
}

// TestShellPipelineGroup restores a job-control shell whose pipeline
// lost its first command, the group's leader: the last command comes
// back in that group (a helper makes it), and the shell, which waits for
// it, still reaps it and exits when it is killed.
func TestShellPipelineGroup(t *testing.T) {
	s := start(t, "", "bash", "-c", "set -m; sleep 0.1 | sleep 1000 & wait")
	var kid int
	waitFor(t, 20*time.Second, "the pipeline's leader to end", func() bool {
		kids := readChildren(t, s.pid)
		if len(kids) != 1 {
			return false
		}
		kid, _ = strconv.Atoi(kids[0])
		st := readProcStat(t, kid)
		return st.pgid != kid && procState(st.pgid) == ""
	})
	t.Cleanup(func() { killPID(kid) })
	was := readProcStat(t, kid)
	img := dump(t, s.pid)
	<-s.exited
	restore(t, img, s.pid)
	got := readProcStat(t, kid)
	if got.ppid != s.pid || got.pgid != was.pgid || got.sid != s.pid {
		t.Errorf("sleep restored with ppid %d, pgid %d, sid %d, want %d, %d, %d",
			got.ppid, got.pgid, got.sid, s.pid, was.pgid, s.pid)
	}
	if st := procState(was.pgid); st != "" {
		t.Errorf("pid %d, the gone leader's, is %q after the restore", was.pgid, st)
	}
	killPID(kid)
	waitFor(t, 10*time.Second, "the shell to reap sleep and exit", func() bool {
		return procState(s.pid) == "" && procState(kid) == ""
	})
}

// schedOf returns how pid is scheduled: policy, nice, real-time
// priority and I/O priority.
func schedOf(t *testing.T, pid int) [4]int {
	t.Helper()
	a, err := unix.SchedGetAttr(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	prio, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, 1, uintptr(pid), 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	return [4]int{int(a.Policy), int(a.Nice), int(a.Priority), int(prio)}
}

// TestSched restores processes with their scheduling policy, nice,
// real-time priority and I/O priority, not the restorer's.
func TestSched(t *testing.T) {
	for _, args := range [][]string{
		{"chrt", "-b", "0", "ionice", "-c3", "nice", "-n", "5", "sleep", "1000"},
		{"chrt", "-f", "10", "ionice", "-c2", "-n", "6", "sleep", "1000"},
	} {
		t.Run(args[1], func(t *testing.T) {
			s := start(t, "", args[0], args[1:]...)
			waitFor(t, 10*time.Second, "sleep", func() bool {
				b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", s.pid))
				return strings.TrimSpace(string(b)) == "sleep"
			})
			was := schedOf(t, s.pid)
			if was == schedOf(t, os.Getpid()) {
				t.Fatalf("the subject is scheduled like the test (%v): nothing to check", was)
			}
			img := dump(t, s.pid)
			<-s.exited
			restore(t, img, s.pid)
			if got := schedOf(t, s.pid); got != was {
				t.Errorf("restored with policy, nice, priority, ioprio %v, want %v", got, was)
			}
		})
	}
}
