package tests

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSignalsAndTimers restores a process with blocked pending signals
// (per process and per thread, with their values), two armed interval
// timers and POSIX timers whose IDs have a gap: after the restore the
// signals are still pending with their values, the timers have their
// time left and the same IDs, and the periodic one still ticks.
func TestSignalsAndTimers(t *testing.T) {
	prog := compileC(t, "signals.c")
	r := &filesRun{t: t, dir: t.TempDir(), out: filepath.Join(t.TempDir(), "out")}
	r.s = start(t, r.out, prog, r.dir)
	waitFor(t, 30*time.Second, "READY", func() bool {
		return slices.ContainsFunc(lines(t, r.out), func(l string) bool {
			return strings.HasPrefix(l, "READY")
		})
	})
	r.check("before the dump")
	r.dumpRestore(nil)
}
