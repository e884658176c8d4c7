// Package tree measures a dump and restore of many processes and of many
// threads: time frozen, dump and restore wall time. Run bench/tree/run.sh.
package tree

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

var binDir string

func TestMain(m *testing.M) { pagestest.MainWithTools(m, "bench/tree", &binDir) }

// subjectSrc makes argv[1] processes in all (the first and argv[1]-1
// children) or, with argv[2] "threads", one process of argv[1] threads;
// each sleeps in a loop. It prints READY once all exist.
const subjectSrc = `
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *sleeper(void *arg) {
	(void)arg;
	for (;;)
		usleep(100000);
	return NULL;
}

int main(int argc, char **argv) {
	int n = atoi(argv[1]);
	int threads = argc > 2 && !strcmp(argv[2], "threads");
	for (int i = 1; i < n; i++) {
		if (threads) {
			pthread_t t;
			if (pthread_create(&t, NULL, sleeper, NULL))
				return 1;
		} else if (fork() == 0) {
			sleeper(NULL);
		}
	}
	printf("READY\n");
	fflush(stdout);
	sleeper(NULL);
}
`

var frozenRE = regexp.MustCompile(`killed after ([0-9.]+[µmn]?s) frozen`)

// figures is one dump and restore.
type figures struct{ frozen, dump, restore time.Duration }

func measure(b *testing.B, bin string, args ...string) figures {
	b.Helper()
	dir := b.TempDir()
	out := filepath.Join(dir, "out")
	f, err := os.Create(out)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	pid := cmd.Process.Pid
	go func() { _ = cmd.Wait() }()
	// Kill the whole session, by its leader's PID, whatever happens.
	b.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if data, _ := os.ReadFile(out); strings.Contains(string(data), "READY") {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the subject did not get ready in 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	img := filepath.Join(dir, "img")
	tool := func(name string) string { return filepath.Join(binDir, name) }
	line := fmt.Sprintf("%s -v --kill %d | %s | %s | %s > %s", tool("ckpt-scan"), pid,
		tool("ckpt-files"), tool("ckpt-mem"), tool("ckpt-pack"), img)
	var fig figures
	start := time.Now()
	stderr, err := exec.Command("bash", "-c", "set -o pipefail; "+line+" 2>&1").CombinedOutput()
	fig.dump = time.Since(start)
	if err != nil {
		b.Fatalf("dump: %v\n%s", err, stderr)
	}
	m := frozenRE.FindSubmatch(stderr)
	if m == nil {
		b.Fatalf("ckpt-scan -v did not say how long it froze the tree:\n%s", stderr)
	}
	fig.frozen, _ = time.ParseDuration(string(m[1]))
	// Wait until init has reaped the killed tree (a couple of seconds
	// here): restore would wait for the PIDs, but that is not its cost.
	for _, p := range append(strings.Fields(string(kids)), strconv.Itoa(pid)) {
		for {
			if _, err := os.Stat("/proc/" + p); err != nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	start = time.Now()
	rc := exec.Command(tool("ckpt-restore"), "--pid-wait", "30s", img)
	if out, err := rc.CombinedOutput(); err != nil {
		b.Fatalf("restore: %v\n%s", err, out)
	}
	fig.restore = time.Since(start)
	kids, _ = os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	tids, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	want, _ := strconv.Atoi(args[0])
	got := len(strings.Fields(string(kids))) + 1
	if len(args) > 1 {
		got = len(tids)
	}
	if got != want {
		b.Fatalf("restored %d, want %d", got, want)
	}
	return fig
}

func bench(b *testing.B, args ...string) {
	pagestest.RequireRoot(b)
	bin := pagestest.BuildC(b, subjectSrc)
	var worst figures
	for range b.N {
		f := measure(b, bin, args...)
		worst.frozen = max(worst.frozen, f.frozen)
		worst.dump = max(worst.dump, f.dump)
		worst.restore = max(worst.restore, f.restore)
	}
	b.ReportMetric(float64(worst.frozen.Microseconds())/1000, "ms-frozen")
	b.ReportMetric(float64(worst.dump.Microseconds())/1000, "ms-dump")
	b.ReportMetric(float64(worst.restore.Microseconds())/1000, "ms-restore")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkTree100 dumps and restores a tree of 100 processes.
func BenchmarkTree100(b *testing.B) { bench(b, "100") }

// BenchmarkThreads200 dumps and restores one process of 200 threads.
func BenchmarkThreads200(b *testing.B) { bench(b, "200", "threads") }
