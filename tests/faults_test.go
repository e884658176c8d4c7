package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Faults during a dump (issue 5): whatever stage dies, wherever, the
// dumped process runs on, untraced, and no partial archive passes for a
// complete one.

// counting is a counter subject (testdata/counter.c) and its output.
type counting struct {
	*subject
	log string
}

// startCounter starts a counter that dirties mib MiB of heap first.
func startCounter(t *testing.T, mib int) *counting {
	t.Helper()
	prog := compileOnce(t, "counter.c")
	log := filepath.Join(t.TempDir(), "count.log")
	s := start(t, log, prog, strconv.Itoa(mib))
	waitFor(t, 60*time.Second, "the counter to count", func() bool { return len(lines(t, log)) >= 3 })
	return &counting{s, log}
}

// count returns the last number the counter printed.
func (c *counting) count(t *testing.T) int {
	l := lines(t, c.log)
	if len(l) == 0 {
		return -1
	}
	n, err := strconv.Atoi(l[len(l)-1])
	if err != nil {
		// a line being written; the one before is whole
		if len(l) > 1 {
			n, _ = strconv.Atoi(l[len(l)-2])
		}
	}
	return n
}

// checkRuns checks that the subject is neither traced nor stopped, and
// that it counts on.
func (c *counting) checkRuns(t *testing.T, why string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, tr := procState(c.pid), tracerPID(c.pid)
		if tr == 0 && st != "t" && st != "T" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the subject is not released after 10s: state %q, TracerPid %d; log ends %q",
				why, st, tr, lines(t, c.log)[len(lines(t, c.log))-1])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !alive(c.pid) {
		t.Fatalf("%s: the subject died (state %q)", why, procState(c.pid))
	}
	n := c.count(t)
	waitFor(t, 10*time.Second, why+": the counter to advance", func() bool { return c.count(t) >= n+5 })
	if st := procState(c.pid); st == "t" || st == "T" || st == "" || st == "Z" {
		t.Fatalf("%s: the subject is in state %q after counting", why, st)
	}
}

// checkRefused checks that neither ckpt-pack -verify nor ckpt-restore
// accepts the archive, and that the restore did not touch the subject.
func checkRefused(t *testing.T, img string, c *counting, why string) {
	t.Helper()
	if out, err := run(t, 30*time.Second, "ckpt-pack -verify "+img); err == nil {
		t.Fatalf("%s: ckpt-pack -verify accepts the partial archive:\n%s", why, out)
	}
	out, err := run(t, 30*time.Second, "ckpt-restore "+img)
	if err == nil {
		t.Fatalf("%s: ckpt-restore accepts the partial archive:\n%s", why, out)
	}
	if !strings.Contains(out, "ckpt-restore:") {
		t.Fatalf("%s: ckpt-restore failed without saying why: %q", why, out)
	}
	if !alive(c.pid) {
		t.Fatalf("%s: the subject died after the refused restore", why)
	}
}

// failed checks that at least one stage failed.
func failed(t *testing.T, p *pipeline, res map[string]error, why string) {
	t.Helper()
	for _, err := range res {
		if err != nil {
			return
		}
	}
	t.Fatalf("%s: every stage succeeded: %s", why, p.stderrs())
}

// A stage killed with SIGKILL at a point of the dump.
type killPoint struct {
	name  string
	stage string // the stage killed
	holds holdAt // where the relays hold the stream
	wait  int    // the relay to wait for before the kill; -1: when the subject is traced
	mib   int    // the subject's heap
	// done: the stage is killed after its work is done (its end record
	// written), so the archive may be complete and sound.
	done bool
}

var killPoints = []killPoint{
	// ckpt-scan: after it wrote the header, and while ckpt-mem reads the
	// frozen tree. (Killed while it injects system calls:
	// TestKillScanInjecting.)
	{"scan-after-header", "ckpt-scan", holdAt{0: 1}, 0, 8, false},
	{"scan-while-mem-reads", "ckpt-scan", holdAt{2: 40}, 2, 300, false},
	// ckpt-files: before its first record, after the header, while
	// holding the tree after its end record.
	{"files-before-first", "ckpt-files", holdAt{0: 0}, 0, 8, false},
	{"files-after-header", "ckpt-files", holdAt{0: 2}, 0, 8, false},
	{"files-at-end", "ckpt-files", holdAt{1: holdEnd}, 1, 8, true},
	// ckpt-mem: before its first record, mid-way through 300 MiB, and
	// done, waiting for its reader to go.
	{"mem-before-first", "ckpt-mem", holdAt{1: 0}, 1, 8, false},
	{"mem-mid-pages", "ckpt-mem", holdAt{2: 60}, 2, 300, false},
	{"mem-at-end", "ckpt-mem", holdAt{2: holdEnd}, 2, 8, true},
	// ckpt-pack: before its first record, mid-stream, and writing the
	// archive after its input ended (with --kill, the tree still frozen).
	{"pack-before-first", "ckpt-pack", holdAt{2: 0}, 2, 8, false},
	{"pack-mid-stream", "ckpt-pack", holdAt{2: 30}, 2, 300, false},
	{"pack-writing", "ckpt-pack", holdAt{3: 0}, 3, 8, false},
}

func TestKillStage(t *testing.T) {
	for _, kp := range killPoints {
		for _, kill := range []bool{false, true} {
			name := kp.name
			if kill {
				name += "/kill"
			}
			t.Run(name, func(t *testing.T) { testKillStage(t, kp, kill) })
		}
	}
}

func testKillStage(t *testing.T, kp killPoint, kill bool) {
	killStage(t, kp, kill, single(startCounter(t, kp.mib)))
}

var compileMu sync.Mutex

// compileOnce compiles a C source from testdata once per run, into the
// directory of the tools.
func compileOnce(t *testing.T, src string) string {
	t.Helper()
	compileMu.Lock()
	defer compileMu.Unlock()
	out := filepath.Join(bin, strings.TrimSuffix(src, ".c"))
	if _, err := os.Stat(out); err == nil {
		return out
	}
	cmd := exec.Command("gcc", "-O2", "-Wall", "-o", out, filepath.Join("testdata", src))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", src, err, b)
	}
	return out
}
