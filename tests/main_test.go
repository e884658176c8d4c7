// Package tests checkpoints and restores real programs end to end, through
// the tools built from this tree. The tests run as root (as CI does); they
// touch only processes they start, and kill those by PID when done.
package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// bin is the directory holding the ckpt tools built for this run.
var bin string

func TestMain(m *testing.M) {
	if os.Getuid() != 0 {
		fmt.Println("tests: skipped: the end-to-end tests need root (ptrace, clone3 set_tid)")
		os.Exit(0)
	}
	// Descriptors this test binary inherited (from a CI runner or a shell)
	// must not leak into the subjects, which would then hold a pipe whose
	// other end a process outside them holds: ckpt refuses that.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		fmt.Fprintln(os.Stderr, "tests: close_range:", err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "ckpt-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	build := exec.Command("go", "build", "-o", dir+"/", "../cmd/...")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "tests: build the tools:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tool returns the path of a built ckpt tool.
func tool(name string) string { return filepath.Join(bin, name) }
