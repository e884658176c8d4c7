package tests

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ckpt/ckpt/lib/archive"
	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stream"
)

// buildGo builds the Go program in testdata/NAME into a temp dir.
func buildGo(t *testing.T, name string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./testdata/"+name)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, b)
	}
	return out
}

// ticks returns the numbers of the "tick N COUNT" lines of a gosubject
// file, and the last COUNT.
func ticks(t *testing.T, path string) ([]int, int) {
	t.Helper()
	var ns []int
	count := 0
	for _, l := range lines(t, path) {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "tick" {
			continue
		}
		n, err1 := strconv.Atoi(f[1])
		c, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: bad line %q", path, l)
		}
		ns = append(ns, n)
		count = c
	}
	return ns, count
}

// TestGoProgram dumps and restores a Go program: several threads, the
// runtime's epoll and eventfd, signal handlers on alternate stacks,
// goroutines, a time.Ticker and a file it appends to. After the restore
// it goes on ticking from where it stopped, its goroutines go on
// counting, and signal.Notify still delivers a SIGUSR1.
func TestGoProgram(t *testing.T) {
	prog := buildGo(t, "gosubject")
	out := filepath.Join(t.TempDir(), "ticks")
	s := start(t, "", prog, out)
	waitFor(t, 30*time.Second, "10 ticks", func() bool {
		ns, _ := ticks(t, out)
		return len(ns) >= 10
	})
	img := dump(t, s.pid)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the dumped Go program still runs after ckpt-scan --kill")
	}
	got := readImageFiles(t, img)
	if got.kinds[image.FileEpoll] != 1 || got.kinds[image.FileEventfd] != 1 {
		t.Errorf("image holds %v, want the runtime's epoll and eventfd", got.kinds)
	}
	tids := imageTIDs(t, img)
	if len(tids) < 2 {
		t.Fatalf("the Go program had %d threads, want several", len(tids))
	}
	before, countBefore := ticks(t, out)

	restore(t, img, s.pid)
	waitFor(t, 30*time.Second, "10 more ticks", func() bool {
		ns, _ := ticks(t, out)
		return len(ns) >= len(before)+10
	})
	ns, count := ticks(t, out)
	for i, n := range ns {
		if n != i {
			t.Fatalf("tick %d is numbered %d: the ticks after the restore do not go on "+
				"from %d", i, n, len(before)-1)
		}
	}
	if count <= countBefore {
		t.Errorf("the goroutines counted %d after the restore, %d before", count, countBefore)
	}
	// The runtime may start more threads once it runs again.
	after := taskTIDs(t, s.pid)
	for _, tid := range tids {
		if !slices.Contains(after, tid) {
			t.Errorf("thread %d is missing after the restore: %v, image %v", tid, after, tids)
		}
	}

	if err := syscall.Kill(s.pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "usr1 0", func() bool {
		return slices.Contains(lines(t, out), "usr1 0")
	})
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", s.pid)); err != nil ||
		strings.TrimSpace(string(b)) != "gosubject" {
		t.Errorf("comm %q, %v", b, err)
	}
	// It still ends cleanly on SIGTERM, through its own handler.
	if err := syscall.Kill(s.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "bye, and the exit", func() bool {
		return slices.Contains(lines(t, out), "bye") && !alive(s.pid)
	})
}

// imageTIDs returns the TIDs of the one task record of an archive,
// sorted.
func imageTIDs(t *testing.T, img string) []int {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ar, err := archive.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	r := stream.NewReader(ar)
	var tids []int
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kind != image.KindTask {
			continue
		}
		var task image.Task
		if err := rec.Decode(&task); err != nil {
			t.Fatal(err)
		}
		for _, th := range task.Threads {
			tids = append(tids, th.TID)
		}
	}
	slices.Sort(tids)
	return tids
}
