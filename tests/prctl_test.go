package tests

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// prctlPy sets the prctl state named by its arguments ("dumpable=0",
// "subreaper", "pdeathsig=12", "thp", "slack=N"; "thread-slack=N" and
// "thread-pdeathsig=N" in a second thread) and then logs, every 50 ms,
// what prctl says of it, as the process and its two threads see it: a
// line "MAIN dumpable subreaper pdeathsig thp slack" and a line "THREAD
// pdeathsig slack".
const prctlPy = `import ctypes, os, sys, threading, time
libc = ctypes.CDLL(None, use_errno=True)
args = dict(a.partition("=")[::2] for a in sys.argv[1:])

def call(*a):
    a = (a + (0,) * 5)[:5]
    r = libc.prctl(*[ctypes.c_ulong(x) for x in a])
    if r < 0:
        raise OSError(ctypes.get_errno(), "prctl %s" % (a,))
    return r

def out_int(op):
    v = ctypes.c_int(0)
    libc.prctl(op, ctypes.byref(v), 0, 0, 0)
    return v.value

def say(*words):
    os.write(1, (" ".join(map(str, words)) + "\n").encode())

def own(prefix):
    if prefix + "pdeathsig" in args:
        call(1, int(args[prefix + "pdeathsig"]))  # PR_SET_PDEATHSIG
    if prefix + "slack" in args:
        call(29, int(args[prefix + "slack"]))  # PR_SET_TIMERSLACK

def thread():
    own("thread-")
    while True:
        say("THREAD", out_int(2), call(30))
        time.sleep(0.05)

own("")
if "dumpable" in args:
    call(4, int(args["dumpable"]))  # PR_SET_DUMPABLE
if "subreaper" in args:
    call(36, 1)  # PR_SET_CHILD_SUBREAPER
if "thp" in args:
    call(41, 1)  # PR_SET_THP_DISABLE
threading.Thread(target=thread, daemon=True).start()
while True:
    say("MAIN", call(3), out_int(37), out_int(2), call(42), call(30))
    time.sleep(0.05)
`

// lastLines returns the last of lines that starts with each of prefixes,
// or "" for one not there.
func lastLines(lines []string, prefixes ...string) []string {
	last := make([]string, len(prefixes))
	for _, l := range lines {
		for i, p := range prefixes {
			if strings.HasPrefix(l, p+" ") {
				last[i] = l
			}
		}
	}
	return last
}

// TestPrctl restores processes with the prctl state they had: dumpable,
// child subreaper, parent-death signal and timer slack of each thread,
// transparent huge pages off. The process itself says so after the
// restore. One runs as root with the state changed, one as nobody with
// the defaults: its credentials change during the restore, which resets
// dumpable, and it must be dumpable again.
func TestPrctl(t *testing.T) {
	cases := []struct {
		name string
		attr *syscall.SysProcAttr
		args []string
		want []string // as the process logs it
	}{
		{"root", &syscall.SysProcAttr{Setpgid: true}, []string{"dumpable=0", "subreaper",
			"pdeathsig=12", "thp", "slack=123456", "thread-pdeathsig=10", "thread-slack=777"},
			[]string{"MAIN 0 1 12 1 123456", "THREAD 10 777"}},
		{"nobody", &syscall.SysProcAttr{Setpgid: true,
			Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}, nil,
			[]string{"MAIN 1 0 0 0 50000", "THREAD 0 50000"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			python := "/usr/bin/python3" // not a shim under /root, which nobody cannot read
			if _, err := os.Stat(python); err != nil {
				t.Skip("needs /usr/bin/python3")
			}
			out := filepath.Join(t.TempDir(), "out")
			s := startOut(t, out, c.attr, python, append([]string{"-c", prctlPy}, c.args...)...)
			var was []string
			waitFor(t, 20*time.Second, "both threads' state", func() bool {
				was = lastLines(lines(t, out), "MAIN", "THREAD")
				return !slices.Contains(was, "")
			})
			if want := c.want; !slices.Equal(was, want) {
				t.Fatalf("before the dump the process says %q, want %q", was, want)
			}
			img := dump(t, s.pid)
			<-s.exited
			n := len(lines(t, out))
			restore(t, img, s.pid)
			var got []string
			waitFor(t, 20*time.Second, "both threads to log after the restore", func() bool {
				got = lastLines(lines(t, out)[n:], "MAIN", "THREAD")
				return !slices.Contains(got, "")
			})
			if !slices.Equal(got, was) {
				t.Errorf("after the restore the process says %q, before it said %q", got, was)
			}
		})
	}
}
