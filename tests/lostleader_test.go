package tests

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// lostLeadersPy is a subreaper root whose child A made a session of its
// own (setsid), forked B (which forked C), B2 and G1, and exited. G1 made
// a group of its own, forked G2 and exited. B, B2 and G2 are now the
// root's children, in session A, whose leader is gone; G2 in group G1,
// whose leader is gone too. Each of B, B2, C and G2 counts in the log;
// the root logs every SIGCHLD it gets.
const lostLeadersPy = `import ctypes, os, signal, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER

def say(*words):  # one write of a whole line: the log is shared
    os.write(1, (" ".join(map(str, words)) + "\n").encode())

signal.signal(signal.SIGCHLD, lambda *a: say("SIGCHLD"))

def count(tag):
    n = 0
    while True:
        say(tag, os.getpid(), n)
        n += 1
        time.sleep(0.05)

def child(fn):
    pid = os.fork()
    if pid == 0:
        try:
            fn()
        finally:
            os._exit(0)
    return pid

def b():
    child(lambda: count("C"))
    count("B")

def group():
    os.setpgid(0, 0)
    child(lambda: count("G2"))

def session():
    os.setsid()
    child(b)
    child(lambda: count("B2"))
    os.waitpid(child(group), 0)

a = child(session)
os.waitpid(a, 0)
time.sleep(0.2)
say("READY", a)
while True:
    time.sleep(1)
`

// lostLeaders is the tree of lostLeadersPy as it was dumped.
type lostLeaders struct {
	out       string
	root      *subject
	a, g1     int            // the gone leaders
	pids      map[string]int // B, B2, C, G2
	sigchld   int            // SIGCHLD lines in the log at the dump
	lastCount map[string]int
}

var countTags = []string{"B", "B2", "C", "G2"}

// startLostLeaders starts lostLeadersPy and waits until its tree is
// built and every counter runs.
func startLostLeaders(t *testing.T) *lostLeaders {
	t.Helper()
	l := &lostLeaders{out: filepath.Join(t.TempDir(), "out"), pids: map[string]int{}}
	l.root = start(t, l.out, "python3", "-c", lostLeadersPy)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		l.scan(t)
		if l.a != 0 && len(l.pids) == len(countTags) {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(l.out)
			t.Fatalf("no READY and every counter after 20s; the log:\n%q", b)
		}
	}
	for _, pid := range l.pids {
		t.Cleanup(func() { killPID(pid) })
	}
	l.g1 = nsIDs(t, l.pids["G2"]).pgid
	l.scan(t)
	if ids := nsIDs(t, l.pids["B"]); ids.sid != l.a || ids.pgid != l.a {
		t.Fatalf("B is in group %d, session %d, want both A (%d)", ids.pgid, ids.sid, l.a)
	}
	for _, gone := range []int{l.a, l.g1} {
		if procState(gone) != "" {
			t.Fatalf("the leader %d still exists", gone)
		}
	}
	return l
}

// scan reads the log: A's PID, each counter's PID and last count, and
// how many SIGCHLDs the root got.
func (l *lostLeaders) scan(t *testing.T) {
	t.Helper()
	l.sigchld, l.lastCount = 0, map[string]int{}
	for _, line := range lines(t, l.out) {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "READY":
			l.a, _ = strconv.Atoi(f[1])
		case len(f) == 1 && f[0] == "SIGCHLD":
			l.sigchld++
		case len(f) == 3:
			pid, _ := strconv.Atoi(f[1])
			n, _ := strconv.Atoi(f[2])
			l.pids[f[0]], l.lastCount[f[0]] = pid, n
		}
	}
}

// ids are a process's PID, group and session as it sees them (in its
// own PID namespace) and its parent's PID here.
type ids struct{ pid, pgid, sid, ppid int }

// nsIDs reads ids from /proc/PID/status: the last NSpid, NSpgid and NSsid
// fields are those of the process's own namespace.
func nsIDs(t *testing.T, pid int) ids {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("pid %d: %v", pid, err)
	}
	field := func(name string) int {
		m := regexp.MustCompile(`(?m)^` + name + `:\s*(.*)$`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("pid %d: no %s in status", pid, name)
		}
		f := strings.Fields(string(m[1]))
		n, _ := strconv.Atoi(f[len(f)-1])
		return n
	}
	return ids{field("NSpid"), field("NSpgid"), field("NSsid"), field("PPid")}
}

// check checks the restored tree, whose root is rootHere and whose
// counters are here (by tag, PIDs here): every counter has its saved
// PID, parent, group and session, and counts on; the gone leaders are
// still gone; the root got no SIGCHLD from the restore's helpers.
func (l *lostLeaders) check(t *testing.T, rootHere int, here map[string]int) {
	t.Helper()
	want := map[string]ids{
		"B":  {l.pids["B"], l.a, l.a, rootHere},
		"B2": {l.pids["B2"], l.a, l.a, rootHere},
		"C":  {l.pids["C"], l.a, l.a, here["B"]},
		"G2": {l.pids["G2"], l.g1, l.a, rootHere},
	}
	for _, tag := range countTags {
		if got := nsIDs(t, here[tag]); got != want[tag] {
			t.Errorf("%s restored with pid, pgid, sid, ppid %v, want %v", tag, got, want[tag])
		}
	}
	// No helper is left, running or a zombie.
	kids := map[int][]string{rootHere: {"B", "B2", "G2"}, here["B"]: {"C"}, here["G2"]: nil}
	for pid, tags := range kids {
		var want []string
		for _, tag := range tags {
			want = append(want, strconv.Itoa(here[tag]))
		}
		if got := readChildren(t, pid); !slices.Equal(sorted(got), sorted(want)) {
			t.Errorf("pid %d has children %v here, want %v", pid, got, want)
		}
	}
	was, sigchld := l.lastCount, l.sigchld
	waitFor(t, 20*time.Second, "every counter to go on", func() bool {
		l.scan(t)
		for _, tag := range countTags {
			if l.lastCount[tag] < was[tag]+5 {
				return false
			}
		}
		return true
	})
	if l.sigchld != sigchld {
		t.Errorf("the root got %d SIGCHLDs after the restore", l.sigchld-sigchld)
	}
}

func sorted(s []string) []string {
	return slices.Sorted(slices.Values(s))
}

// TestLostLeaders restores, in place, a tree with a session and a group
// whose leaders are gone: helpers with the leaders' PIDs make them again
// and exit.
func TestLostLeaders(t *testing.T) {
	l := startLostLeaders(t)
	img := dump(t, l.root.pid)
	<-l.root.exited
	l.scan(t)
	stderr, err := run(t, 60*time.Second, "ckpt-restore -v "+img)
	t.Cleanup(func() { killPID(l.root.pid) })
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "2 helper tasks") {
		t.Errorf("ckpt-restore -v does not say it made 2 helpers:\n%s", stderr)
	}
	l.check(t, l.root.pid, l.pids)
	for _, gone := range []int{l.a, l.g1} {
		if st := procState(gone); st != "" {
			t.Errorf("pid %d, a gone leader's, is %q after the restore", gone, st)
		}
	}
	// The root is still a subreaper: C, orphaned, becomes its child.
	killPID(l.pids["B"])
	waitFor(t, 10*time.Second, "C to be the root's child", func() bool {
		return nsIDs(t, l.pids["C"]).ppid == l.root.pid
	})
}

// TestLostLeadersPIDNS restores the same tree into a new PID namespace
// (the original is killed after the dump, so the log is the copy's):
// the helpers are made, and end, in the namespace.
func TestLostLeadersPIDNS(t *testing.T) {
	l := startLostLeaders(t)
	img := filepath.Join(t.TempDir(), "img")
	line := fmt.Sprintf("ckpt-scan %d | ckpt-files | ckpt-mem | ckpt-pack > %s", l.root.pid, img)
	if stderr, err := run(t, 60*time.Second, line); err != nil {
		t.Fatalf("dump: %v\n%s", err, stderr)
	}
	killPID(l.root.pid)
	<-l.root.exited
	for _, pid := range l.pids {
		killPID(pid)
	}
	waitFor(t, 10*time.Second, "the original to end", func() bool {
		return !slices.ContainsFunc(slices.Collect(maps.Values(l.pids)), alive)
	})
	l.scan(t)
	// The log grew while the original ran on.
	stderr, err := run(t, 60*time.Second, "ckpt-restore -v --pidns --accept-changed "+img)
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, stderr)
	}
	var init, root int
	if _, err := fmt.Sscanf(stderr[strings.Index(stderr, "its init is pid"):],
		"its init is pid %d here, the root pid %d here", &init, &root); err != nil {
		t.Fatalf("ckpt-restore -v does not say where the copy is: %v\n%s", err, stderr)
	}
	t.Cleanup(func() { killPID(init) }) // ends the namespace and all in it
	here := map[string]int{}
	for _, tag := range countTags {
		here[tag] = hostPID(t, root, l.pids[tag])
	}
	l.check(t, root, here)
}

// hostPID returns the PID here of the descendant of pid that is vpid in
// its own namespace.
func hostPID(t *testing.T, pid, vpid int) int {
	t.Helper()
	for _, k := range readChildren(t, pid) {
		kid, _ := strconv.Atoi(k)
		if nsIDs(t, kid).pid == vpid {
			return kid
		}
		if found := hostPID(t, kid, vpid); found != 0 {
			return found
		}
	}
	return 0
}

// TestRestoreHelperPIDTaken dumps the tree with --kill and has another
// process take the PID of the gone group leader. The restore fails when
// it makes that group's helper, the last thing before the tree runs, and
// leaves nothing behind: no process of the tree, no session helper. Once
// the PID is free again, the archive restores.
func TestRestoreHelperPIDTaken(t *testing.T) {
	l := startLostLeaders(t)
	img := dump(t, l.root.pid)
	<-l.root.exited
	tree := append(slices.Collect(maps.Values(l.pids)), l.root.pid)
	waitGone(t, tree...)
	l.scan(t)

	out, err := exec.Command(compileOnce(t, "pidtaker.c"), strconv.Itoa(l.g1)).CombinedOutput()
	if err != nil {
		t.Fatalf("take pid %d: %v: %s", l.g1, err, out)
	}
	t.Cleanup(func() { killPID(l.g1) })
	restoreFails(t, img, fmt.Sprintf(`process group %d, whose leader is gone, is made again `+
		`by a helper with pid %d \(cloned from pid %d\): pid %d is in use by a running `+
		`process \(pidtaker\)`, l.g1, l.g1, l.pids["G2"], l.g1), append(tree, l.a))

	killPID(l.g1)
	waitGone(t, l.g1)
	restore(t, img, l.root.pid)
	l.check(t, l.root.pid, l.pids)
}
