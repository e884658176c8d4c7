package tests

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fileSize returns the size of path, or 0.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// checkNumbered checks that every line of path is "N\ty" (cat -n) with N
// counting from 1 without a gap or a repeat, but for a last line cut
// short, and returns the last N.
func checkNumbered(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	want := 1
	var last string
	for sc.Scan() {
		if last != "" {
			t.Fatalf("%s: line %d %q is cut short", path, want-1, last)
		}
		l := sc.Text()
		num, rest, ok := strings.Cut(strings.TrimLeft(l, " "), "\t")
		n, err := strconv.Atoi(num)
		switch {
		case !ok:
			last = l // only the last line may lack its tab
			continue
		case err != nil || rest != "y":
			t.Fatalf("%s: line %d is %q", path, want, l)
		case n != want:
			t.Fatalf("%s: line %d is number %d (a gap or a repeat)", path, want, n)
		}
		want++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return want - 1
}

// TestShellPipeline checkpoints sh -c 'yes | cat -n | grep -v x > OUT'
// mid-flight: four processes, two pipes full of data, grep's output
// buffered in its memory. After the restore the numbers in OUT go on
// without a gap or a repeat.
func TestShellPipeline(t *testing.T) {
	dir := t.TempDir()
	outFile := filepath.Join(dir, "OUT")
	s := start(t, "", "sh", "-c", "yes | cat -n | grep -v x > "+outFile)
	var kids []string
	waitFor(t, 10*time.Second, "the pipeline to run", func() bool {
		kids = readChildren(t, s.pid)
		return len(kids) == 3 && fileSize(outFile) > 1<<20
	})
	pids := []int{s.pid}
	for _, k := range kids {
		n, _ := strconv.Atoi(k)
		pids = append(pids, n)
		t.Cleanup(func() { killPID(n) })
	}
	img := dump(t, s.pid)
	<-s.exited
	waitFor(t, 10*time.Second, "the killed pipeline to be reaped", func() bool {
		for _, p := range pids {
			if procState(p) != "" {
				return false
			}
		}
		return true
	})
	before := fileSize(outFile)
	restore(t, img, s.pid)
	for _, p := range pids {
		if !alive(p) {
			t.Fatalf("pid %d does not run after the restore", p)
		}
	}
	waitFor(t, 10*time.Second, "OUT to grow", func() bool { return fileSize(outFile) > before+1<<20 })
	for i := len(pids) - 1; i >= 0; i-- {
		killPID(pids[i])
	}
	n := checkNumbered(t, outFile)
	t.Logf("OUT: %d lines, %d bytes at the dump", n, before)
}
