package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Faults during the dump of a tree (issue 5): every stage killed at
// every point leaves every process of the tree running, untraced and not
// stopped; a process of the tree traced by someone else is refused and
// the others are let go; a tree that forks and reaps all the time is
// either dumped whole and restored, or refused with a message while it
// runs on.

// family is a dumped tree of counters (testdata/counter.c), the root
// first, each counting into a log of its own.
type family []*counting

// single is a family of one counter.
func single(c *counting) family { return family{c} }

// startFamily starts a counter with two counter children, the first of
// which dirties mib MiB of heap (the others none, so the whole tree's
// archive is as big as one counter's of mib MiB): sh starts the children
// and execs the root.
func startFamily(t *testing.T, mib int) family {
	t.Helper()
	prog := compileOnce(t, "counter.c")
	dir := t.TempDir()
	s := start(t, "", "sh", "-c", `"$1" "$2" > "$3/c1.log" & "$1" 0 > "$3/c2.log" & `+
		`exec "$1" 0 > "$3/root.log"`, "sh", prog, strconv.Itoa(mib), dir)
	f := family{{s, filepath.Join(dir, "root.log")}}
	for _, name := range []string{"c1", "c2"} {
		f = append(f, &counting{&subject{}, filepath.Join(dir, name+".log")})
	}
	waitFor(t, 60*time.Second, "the three counters", func() bool {
		return !slices.ContainsFunc(f, func(c *counting) bool { return len(lines(t, c.log)) < 3 })
	})
	// Each child's log is the one its stdout leads to.
	for _, k := range readChildren(t, s.pid) {
		pid, _ := strconv.Atoi(k)
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/1", pid))
		for _, c := range f[1:] {
			if link == c.log {
				c.pid = pid
				t.Cleanup(func() { killPID(pid) })
			}
		}
	}
	if f[1].pid == 0 || f[2].pid == 0 {
		t.Fatalf("the counters' children are not found: %v", readChildren(t, s.pid))
	}
	return f
}

func (f family) pids() []int {
	var pids []int
	for _, c := range f {
		pids = append(pids, c.pid)
	}
	return pids
}

// checkRuns checks every process of the family as counting.checkRuns
// does: released, neither traced nor stopped, counting on.
func (f family) checkRuns(t *testing.T, why string) {
	t.Helper()
	for i, c := range f {
		c.checkRuns(t, fmt.Sprintf("%s: process %d of the tree (pid %d)", why, i, c.pid))
	}
}

// checkRefused checks that neither ckpt-pack --verify nor ckpt-restore
// takes the archive, and that the refused restore left the family alone.
func (f family) checkRefused(t *testing.T, img, why string) {
	t.Helper()
	checkRefused(t, img, f[0], why)
	for _, c := range f {
		if !alive(c.pid) {
			t.Fatalf("%s: pid %d died after the refused restore", why, c.pid)
		}
	}
	if left := restorerLeft(); len(left) > 0 {
		t.Fatalf("%s: processes of ckpt-restore are left: %v", why, left)
	}
}

// killStage runs the dump of a family, kills one stage at a point and
// checks what became of the family and the archive.
func killStage(t *testing.T, kp killPoint, kill bool, f family) {
	t.Helper()
	p := startDump(t, f[0].pid, kill, kp.holds)
	if kp.wait < 0 {
		waitFor(t, 10*time.Second, "ckpt-scan to trace the tree", func() bool {
			return tracerPID(f[0].pid) != 0
		})
	} else {
		p.waitHeld(kp.wait, 60*time.Second)
	}
	if kp.stage == "ckpt-pack" && kp.wait == 3 {
		// ckpt-pack has read its input and writes the archive: wait
		// until it closed its stdin.
		select {
		case <-p.relays[2].gone:
		case <-time.After(30 * time.Second):
			t.Fatalf("ckpt-pack did not close its input: %s", p.stderrs())
		}
		if kill {
			time.Sleep(50 * time.Millisecond)
			for _, pid := range f.pids() {
				if st := procState(pid); st != "t" {
					t.Fatalf("with --kill pid %d should be frozen until the archive is "+
						"complete, it is in state %q", pid, st)
				}
			}
		}
	}
	p.kill(kp.stage)
	p.resume()
	res := p.wait(60 * time.Second)
	why := fmt.Sprintf("%s killed (%s)", kp.stage, kp.name)
	failed(t, p, res, why)
	t.Logf("%s: %s", why, p.stderrs())
	if kp.done {
		// The stage was killed after its work was done, so the archive
		// may be complete and sound; that is no lie. With --kill the
		// tree is then killed, as asked, and the archive must bring it
		// back.
		if _, err := run(t, 30*time.Second, "ckpt-pack --verify "+p.img); err == nil {
			f.runsOrRestores(t, p.img, why)
			return
		}
	}
	f.checkRuns(t, why)
	f.checkRefused(t, p.img, why)
}

// runsOrRestores checks that the family runs on, or, if it was killed
// (ckpt-scan --kill, once the archive was complete), that the archive
// restores it and it counts on from where it stopped.
func (f family) runsOrRestores(t *testing.T, img, why string) {
	t.Helper()
	if !slices.ContainsFunc(f.pids(), func(p int) bool { return !alive(p) }) {
		f.checkRuns(t, why)
		return
	}
	waitGone(t, f.pids()...)
	last := make([]int, len(f))
	for i, c := range f {
		last[i] = c.count(t)
	}
	restore(t, img, f[0].pid)
	for i, c := range f {
		t.Cleanup(func() { killPID(c.pid) })
		c.checkRuns(t, why+": restored")
		if n := lines(t, c.log); len(n) == 0 || c.count(t) <= last[i] {
			t.Fatalf("%s: pid %d counts %d after the restore, %d before", why, c.pid,
				c.count(t), last[i])
		}
	}
}

func TestKillStageTree(t *testing.T) {
	for _, kp := range killPoints {
		for _, kill := range []bool{false, true} {
			name := kp.name
			if kill {
				name += "/kill"
			}
			t.Run(name, func(t *testing.T) { killStage(t, kp, kill, startFamily(t, kp.mib)) })
		}
	}
}

// TestScanTracedChild runs ckpt-scan on a tree one of whose processes
// strace traces: it refuses and names the process and its tracer; the
// other processes run on untraced, and strace still traces its own.
func TestScanTracedChild(t *testing.T) {
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("strace is not installed (.ci/run installs it)")
	}
	f := startFamily(t, 0)
	traced := f[2].pid
	st := start(t, "", "strace", "-o", "/dev/null", "-p", strconv.Itoa(traced))
	waitFor(t, 10*time.Second, "strace to attach", func() bool { return tracerPID(traced) != 0 })
	tracer := tracerPID(traced)
	for _, kill := range []string{"", "--kill "} {
		_, stderr, err := scanOut(t, fmt.Sprintf("set -o pipefail; ckpt-scan %s%d | cat > /dev/null",
			kill, f[0].pid))
		if err == nil {
			t.Fatalf("ckpt-scan %sdumped a tree with a traced process: %q", kill, stderr)
		}
		want := fmt.Sprintf("already traced by pid %d", st.pid)
		if !strings.Contains(stderr, want) || !strings.Contains(stderr, strconv.Itoa(traced)) {
			t.Fatalf("ckpt-scan said %q, want it to name pid %d and say %q", stderr, traced, want)
		}
		if got := tracerPID(traced); got != tracer {
			t.Fatalf("TracerPid of %d is %d after the refusal, was %d", traced, got, tracer)
		}
		family{f[0], f[1]}.checkRuns(t, "ckpt-scan "+kill+"refused the tree")
	}
	killPID(st.pid)
	<-st.exited
	f.checkRuns(t, "strace gone")
}

// TestDumpForkStorm dumps, again and again, a tree that forks a child
// every millisecond, whose children live a few milliseconds, fork
// grandchildren or exec, and which it reaps (testdata/forker.c). Each
// dump either holds a tree that restores and runs on, or fails with a
// message while the tree runs on.
func TestDumpForkStorm(t *testing.T) {
	prog := compileOnce(t, "forker.c")
	const runs = 6
	dumped := 0
	for i := range runs {
		log := filepath.Join(t.TempDir(), "log")
		s := start(t, log, prog)
		c := &counting{s, log}
		waitFor(t, 10*time.Second, "the forker to count", func() bool { return c.count(t) >= 5 })
		img := filepath.Join(t.TempDir(), "img")
		line := fmt.Sprintf("ckpt-scan --kill %d | ckpt-files | ckpt-mem | ckpt-pack -o %s", s.pid, img)
		stderr, err := run(t, 60*time.Second, line)
		why := fmt.Sprintf("run %d", i)
		if err != nil {
			t.Logf("%s: the dump failed: %s", why, stderr)
			checkMessages(t, stderr, why)
			c.checkRuns(t, why+": the dump failed")
			checkNoneStopped(t, s.pid, why)
			continue
		}
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the forker runs on after ckpt-scan --kill", why)
		}
		last := c.count(t)
		restore(t, img, s.pid)
		c.checkRuns(t, why+": restored")
		if c.count(t) <= last {
			t.Fatalf("%s: the restored forker counts %d, %d before", why, c.count(t), last)
		}
		checkNoneStopped(t, s.pid, why+": restored")
		killTree(s.pid)
		dumped++
	}
	t.Logf("%d of %d dumps held a tree that restored", dumped, runs)
	if dumped == 0 {
		t.Fatalf("no dump of the forking tree succeeded in %d runs", runs)
	}
}

// checkMessages checks that a failed pipeline said why, each line naming
// the tool that said it.
func checkMessages(t *testing.T, stderr, why string) {
	t.Helper()
	msg := strings.TrimSpace(stderr)
	if msg == "" {
		t.Fatalf("%s: the dump failed without a word", why)
	}
	for _, l := range strings.Split(msg, "\n") {
		if !strings.HasPrefix(l, "ckpt-") {
			t.Fatalf("%s: a line of the failed dump names no tool: %q", why, l)
		}
	}
}

// checkNoneStopped checks that no process under pid is left stopped or
// in a ptrace stop.
func checkNoneStopped(t *testing.T, pid int, why string) {
	t.Helper()
	time.Sleep(100 * time.Millisecond)
	for _, p := range descendants(pid) {
		if st := procState(p); st == "t" || st == "T" {
			if tracerPID(p) == 0 || st == "T" {
				t.Fatalf("%s: pid %d under %d is stopped (state %s, TracerPid %d)", why, p,
					pid, st, tracerPID(p))
			}
		}
	}
}

// descendants lists pid and every process under it, as /proc says now.
func descendants(pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", out[i], out[i]))
		for _, f := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(f)
			out = append(out, n)
		}
	}
	return out
}

// killTree kills a tree this test restored: the root first, so that it
// forks no more, then what is left under it.
func killTree(root int) {
	kids := descendants(root)
	killPID(root)
	for _, p := range kids[1:] {
		killPID(p)
	}
}

// TestScanVforkParent dumps a process waiting in vfork for a child that
// stopped before it could exec (testdata/vforker.c): no signal reaches
// the parent there, so it cannot be frozen. ckpt-scan gives up after
// freeze.StopTimeout with a message, instead of waiting forever, and
// leaves both untraced; once the child goes on, so does the parent.
func TestScanVforkParent(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	s := start(t, out, compileOnce(t, "vforker.c"))
	var child int
	waitFor(t, 10*time.Second, "the parent to wait in vfork", func() bool {
		kids := readChildren(t, s.pid)
		if len(kids) == 1 {
			child, _ = strconv.Atoi(kids[0])
		}
		return child != 0 && procState(child) == "T" && procState(s.pid) == "D"
	})
	t.Cleanup(func() { killPID(child) })
	began := time.Now()
	_, stderr, err := scanOut(t, fmt.Sprintf("ckpt-scan %d > /dev/null", s.pid))
	took := time.Since(began)
	want := fmt.Sprintf("thread %d did not stop in 5s", s.pid)
	if err == nil || !strings.Contains(stderr, want) || !strings.Contains(stderr, "vfork") {
		t.Fatalf("ckpt-scan: %v, said %q; want it to fail saying %q", err, stderr, want)
	}
	if took > 10*time.Second {
		t.Errorf("ckpt-scan took %v to give up", took)
	}
	for _, pid := range []int{s.pid, child} {
		if tr := tracerPID(pid); tr != 0 {
			t.Errorf("pid %d is still traced by %d", pid, tr)
		}
	}
	if err := syscall.Kill(child, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the parent to go on once its child execs", func() bool {
		return procState(s.pid) == "S" && tracerPID(s.pid) == 0
	})
}
