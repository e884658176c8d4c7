// Package pipeline measures the whole dump and restore of a process with
// a lot of dirtied anonymous memory (half random, half a repeating
// pattern): time frozen, dump wall time, archive size, restore wall time,
// and the peak RSS of every stage.
//
//	go test ./bench/pipeline                    # peak RSS bound, 1 GiB
//	go test ./bench/pipeline -run '^$' -bench . # the figures; see run.sh
//
// The subject checksums its memory before the dump and again, on
// SIGUSR1, after the restore: every figure is of a restore that worked.
package pipeline

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ckpt/ckpt/lib/pages/pagestest"
)

// subjectSrc maps argv[1] MiB, fills the first half with random bytes and
// the second with a repeating pattern, and prints "SUM <checksum>" at the
// start and on every SIGUSR1.
const subjectSrc = `
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }

static uint64_t sum(const uint64_t *m, size_t words) {
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < words; i++)
		h = (h ^ m[i]) * 1099511628211ull;
	return h;
}

int main(int argc, char **argv) {
	size_t size = (size_t)atol(argv[1]) << 20, words = size / 8;
	uint64_t *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return 1;
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < words / 2; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		m[i] = x;
	}
	for (size_t i = words / 2; i < words; i++)
		m[i] = 0x0101010101010101ull * (i % 32 + 1);
	signal(SIGUSR1, on_usr1);
	for (;;) {
		printf("SUM %016llx\n", (unsigned long long)sum(m, words));
		fflush(stdout);
		while (!go)
			pause();
		go = 0;
	}
}
`

var binDir string // the ckpt tools, built by TestMain

func TestMain(m *testing.M) { pagestest.MainWithTools(m, "bench/pipeline", &binDir) }

// figures is what one dump and restore measured.
type figures struct {
	frozen, dump, restore time.Duration
	archive               int64
	peak                  map[string]int64 // bytes, by tool
}

// stages of the dump, in pipeline order; ckpt-restore comes after.
var stages = []string{"ckpt-scan", "ckpt-files", "ckpt-mem", "ckpt-pack"}

// subject is the running C program. Its output goes to a file (ckpt
// does not dump pipes yet).
type subject struct {
	pid  int
	out  string
	seen int // lines of out already returned by next
}

func startSubject(tb testing.TB, bin string, mib int) *subject {
	tb.Helper()
	s := &subject{out: filepath.Join(tb.TempDir(), "out")}
	out, err := os.Create(s.out)
	if err != nil {
		tb.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(bin, strconv.Itoa(mib))
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	s.pid = cmd.Process.Pid
	go func() { _ = cmd.Wait() }() // reap it once the dump kills it
	tb.Cleanup(func() { _ = syscall.Kill(s.pid, syscall.SIGKILL) })
	return s
}

// next returns the subject's next line, failing after a deadline.
func (s *subject) next(tb testing.TB) string {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(s.out)
		if err != nil {
			tb.Fatal(err)
		}
		if l := strings.Split(string(b), "\n"); len(l) > s.seen+1 {
			s.seen++
			return l[s.seen-1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.Fatalf("pid %d printed nothing for 60s", s.pid)
	return ""
}

// dumpRestore dumps the subject with --kill into dir/img, restores it and
// checks its checksum, and returns the figures.
func dumpRestore(tb testing.TB, s *subject, sum, dir string) figures {
	tb.Helper()
	f := figures{peak: map[string]int64{}}
	img := filepath.Join(dir, "img")
	cmds, errs := pipeline(tb, s.pid, img)
	stops := make([]func(), len(cmds))
	start := time.Now()
	for i, c := range cmds {
		if err := c.Start(); err != nil {
			tb.Fatal(err)
		}
		var p int64
		stops[i] = pagestest.WatchHWM(c.Process.Pid, &p)
		defer func(i int) { f.peak[stages[i]] = p }(i)
		closeParentEnds(c)
	}
	for i, c := range cmds {
		err := waitDeadline(c, 120*time.Second)
		stops[i]()
		if err != nil {
			var all strings.Builder
			for _, e := range errs {
				all.WriteString(e.String())
			}
			tb.Fatalf("%s: %v\n%s", stages[i], err, all.String())
		}
	}
	f.dump = time.Since(start)
	f.frozen = frozenFor(tb, errs[0].String())
	st, err := os.Stat(img)
	if err != nil {
		tb.Fatal(err)
	}
	f.archive = st.Size()

	// The killed subject's PID must be free before restore takes it;
	// ckpt-restore waits for it, but that wait is not restore's cost.
	for alive(s.pid) {
		time.Sleep(5 * time.Millisecond)
	}
	rc := exec.Command(filepath.Join(binDir, "ckpt-restore"), img)
	var rerr strings.Builder
	rc.Stderr = &rerr
	start = time.Now()
	if err := rc.Start(); err != nil {
		tb.Fatal(err)
	}
	var rp int64
	stop := pagestest.WatchHWM(rc.Process.Pid, &rp)
	err = waitDeadline(rc, 120*time.Second)
	f.restore = time.Since(start)
	stop()
	f.peak["ckpt-restore"] = rp
	tb.Cleanup(func() { _ = syscall.Kill(s.pid, syscall.SIGKILL) })
	if err != nil {
		tb.Fatalf("ckpt-restore: %v\n%s", err, rerr.String())
	}
	if err := syscall.Kill(s.pid, syscall.SIGUSR1); err != nil {
		tb.Fatalf("signal the restored pid %d: %v", s.pid, err)
	}
	if got := s.next(tb); got != sum {
		tb.Fatalf("restored pid %d says %q, before the dump %q", s.pid, got, sum)
	}
	return f
}

// pipeline makes the four dump stages, piped one into the next, the last
// writing img. Their stderr is collected.
func pipeline(tb testing.TB, pid int, img string) ([]*exec.Cmd, []*strings.Builder) {
	tb.Helper()
	out, err := os.Create(img)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { out.Close() })
	var cmds []*exec.Cmd
	var errs []*strings.Builder
	for i, name := range stages {
		var args []string
		if i == 0 {
			args = []string{"-v", "--kill", strconv.Itoa(pid)}
		}
		c := exec.Command(filepath.Join(binDir, name), args...)
		e := &strings.Builder{}
		c.Stderr = e
		if i > 0 {
			r, w, err := os.Pipe()
			if err != nil {
				tb.Fatal(err)
			}
			cmds[i-1].Stdout, c.Stdin = w, r
		}
		cmds, errs = append(cmds, c), append(errs, e)
	}
	cmds[len(cmds)-1].Stdout = out
	return cmds, errs
}

// closeParentEnds closes this process's copies of a started command's
// pipe ends, so that each stage sees its neighbour go away.
func closeParentEnds(c *exec.Cmd) {
	for _, f := range []any{c.Stdin, c.Stdout} {
		if p, ok := f.(*os.File); ok && strings.HasPrefix(p.Name(), "|") {
			p.Close()
		}
	}
}

func waitDeadline(c *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		_ = c.Process.Kill()
		return fmt.Errorf("did not finish in %v", d)
	}
}

var frozenRE = regexp.MustCompile(`killed after ([0-9.]+[µm]?s) frozen`)

// frozenFor reads the time frozen from ckpt-scan -v.
func frozenFor(tb testing.TB, scanErr string) time.Duration {
	tb.Helper()
	m := frozenRE.FindStringSubmatch(scanErr)
	if m == nil {
		tb.Fatalf("ckpt-scan -v did not say how long it froze the subject:\n%s", scanErr)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

// TestPeakRSS dumps and restores a 1 GiB process and checks that no stage
// needs more than 100 MiB: memory use must not grow with the process.
func TestPeakRSS(t *testing.T) {
	pagestest.RequireRoot(t)
	bin := pagestest.BuildC(t, subjectSrc)
	s := startSubject(t, bin, 1024)
	sum := s.next(t)
	f := dumpRestore(t, s, sum, t.TempDir())
	for _, name := range append(stages, "ckpt-restore") {
		t.Logf("%-12s peak RSS %5.1f MiB", name, float64(f.peak[name])/(1<<20))
		if f.peak[name] == 0 || f.peak[name] >= 100<<20 {
			t.Errorf("%s: peak RSS %d bytes, want more than 0 and under 100 MiB",
				name, f.peak[name])
		}
	}
}

// BenchmarkDumpRestore dumps and restores a process of CKPT_BENCH_MIB MiB
// (1024 by default) and reports the figures of the slowest run.
func BenchmarkDumpRestore(b *testing.B) {
	mib := 1024
	if v := os.Getenv("CKPT_BENCH_MIB"); v != "" {
		var err error
		if mib, err = strconv.Atoi(v); err != nil {
			b.Fatalf("CKPT_BENCH_MIB=%q: %v", v, err)
		}
	}
	bin := pagestest.BuildC(b, subjectSrc)
	var worst figures
	worst.peak = map[string]int64{}
	for b.Loop() {
		b.StopTimer()
		s := startSubject(b, bin, mib)
		sum := s.next(b)
		b.StartTimer()
		f := dumpRestore(b, s, sum, b.TempDir())
		b.StopTimer()
		_ = syscall.Kill(s.pid, syscall.SIGKILL)
		worst.frozen = max(worst.frozen, f.frozen)
		worst.dump = max(worst.dump, f.dump)
		worst.restore = max(worst.restore, f.restore)
		worst.archive = max(worst.archive, f.archive)
		for k, v := range f.peak {
			worst.peak[k] = max(worst.peak[k], v)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(worst.frozen.Milliseconds()), "frozen-ms")
	b.ReportMetric(worst.dump.Seconds(), "dump-s")
	b.ReportMetric(worst.restore.Seconds(), "restore-s")
	b.ReportMetric(float64(worst.archive)/(1<<20), "archive-MiB")
	for k, v := range worst.peak {
		b.ReportMetric(float64(v)/(1<<20), strings.TrimPrefix(k, "ckpt-")+"-RSS-MiB")
	}
}
