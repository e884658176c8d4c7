package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Inspecting a dumped tree (issue 5): ckpt-show prints the tree, every
// process under its parent, zombies marked with how they ended, from a
// stream in a pipeline as from an archive; --json has every task record;
// ckpt-pack --verify counts the tasks.

// startTree starts testdata/tree.c and returns its PIDs: root a a1 b e
// z1 z2 (z1 exited with 7, z2 was killed by SIGTERM; both unreaped).
func startTree(t *testing.T) []int {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	start(t, out, compileC(t, "tree.c"), dir)
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
	return pids
}

// showLines runs a shell line ending in ckpt-show and returns its stdout.
func showLines(t *testing.T, line string) string {
	t.Helper()
	stdout, stderr, err := scanOut(t, "set -o pipefail; "+line)
	if err != nil {
		t.Fatalf("%s: %v\n%s", line, err, stderr)
	}
	return stdout
}

// treeSection returns the lines of the summary's tree section.
func treeSection(t *testing.T, summary string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(summary, "\ntree\n")
	if !ok {
		t.Fatalf("no tree section in:\n%s", summary)
	}
	sect, _, _ := strings.Cut(rest, "\n\n")
	return strings.Split(sect, "\n")
}

func TestShowTree(t *testing.T) {
	pids := startTree(t)
	root, a, a1 := pids[0], pids[1], pids[2]
	// Each process, its depth in the tree and what is said after its
	// name.
	want := map[int]struct {
		depth int
		note  string
	}{
		root: {0, ""}, a: {1, ""}, a1: {2, ""}, pids[3]: {1, ""}, pids[4]: {1, ""},
		pids[5]: {1, " (zombie, exit code 7)"}, pids[6]: {1, " (zombie, killed by signal 15)"},
	}
	img := filepath.Join(t.TempDir(), "img")
	dump := fmt.Sprintf("ckpt-scan %d | ckpt-files | ckpt-mem | ckpt-pack -o %s", root, img)
	if stderr, err := run(t, 60*time.Second, dump); err != nil {
		t.Fatalf("dump: %v\n%s", err, stderr)
	}
	for _, line := range []string{
		fmt.Sprintf("ckpt-scan %d | ckpt-files | ckpt-show", root),
		"ckpt-show " + img,
	} {
		tree := treeSection(t, showLines(t, line))
		if len(tree) != len(want) {
			t.Fatalf("%s: the tree has %d lines, want %d:\n%s", line, len(tree), len(want),
				strings.Join(tree, "\n"))
		}
		for i, l := range tree {
			f := strings.Fields(l)
			pid, _ := strconv.Atoi(f[0])
			w, ok := want[pid]
			if !ok {
				t.Fatalf("%s: line %q is no process of the tree", line, l)
			}
			wantLine := strings.Repeat("  ", w.depth+1) + f[0] + " tree" + w.note
			if l != wantLine {
				t.Errorf("%s: tree line %d is %q, want %q", line, i, l, wantLine)
			}
			if i > 0 && w.depth == 2 && !strings.HasPrefix(tree[i-1], "    "+strconv.Itoa(a)+" ") {
				t.Errorf("%s: %d is not listed under its parent %d:\n%s", line, pid, a,
					strings.Join(tree, "\n"))
			}
		}
	}

	// --json: every task record, the zombies with their status.
	js := exec.Command(tool("ckpt-show"), "--json", img)
	b, err := js.Output()
	if err != nil {
		t.Fatalf("ckpt-show --json: %v", err)
	}
	tasks, zombies := 0, map[int]int{}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var rec struct {
			Kind string
			Body struct {
				PID        int  `json:"pid"`
				Zombie     bool `json:"zombie"`
				ExitStatus int  `json:"exit_status"`
			}
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("ckpt-show --json: %v: %s", err, sc.Bytes())
		}
		if rec.Kind == "task" {
			tasks++
			if rec.Body.Zombie {
				zombies[rec.Body.PID] = rec.Body.ExitStatus
			}
		}
	}
	if tasks != 7 || len(zombies) != 2 || zombies[pids[5]] != 7<<8 || zombies[pids[6]] != 15 {
		t.Errorf("ckpt-show --json: %d tasks, zombies %v; want 7, {%d: %d, %d: 15}",
			tasks, zombies, pids[5], 7<<8, pids[6])
	}

	stderr, err := run(t, 30*time.Second, "ckpt-pack --verify "+img)
	if err != nil || !strings.Contains(stderr, " 7 tasks,") || !strings.Contains(stderr, "task 7,") {
		t.Errorf("ckpt-pack --verify: %v: %q, want it to count 7 tasks", err, stderr)
	}
	for _, pid := range pids[:5] {
		if !alive(pid) || tracerPID(pid) != 0 {
			t.Errorf("pid %d is not running untraced after the dump without --kill", pid)
		}
	}
	if _, err := os.Stat(img); err != nil {
		t.Fatal(err)
	}
}
