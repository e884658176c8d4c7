package tests

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// capLines are the lines of /proc/PID/task/TID/status that restore must
// give back exactly.
var capLines = []string{"Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd",
	"CapAmb", "NoNewPrivs"}

// threadCreds returns the capLines of every thread of pid, by TID.
func threadCreds(t *testing.T, pid int) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	creds := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var kept []string
		for _, l := range strings.Split(string(b), "\n") {
			key, _, _ := strings.Cut(l, ":")
			for _, want := range capLines {
				if key == want {
					kept = append(kept, l)
				}
			}
		}
		if len(kept) != len(capLines) {
			t.Fatalf("tid %s: status has %d of the lines %v:\n%s", e.Name(), len(kept),
				capLines, b)
		}
		creds[e.Name()] = strings.Join(kept, "\n")
	}
	return creds
}

// TestCaps restores processes started with fewer capabilities than root
// has, as root and as uid 1000, with ambient capabilities, no_new_privs,
// an inheritable capability outside the bounding set, and threads: every
// thread comes back with exactly its ids, capability sets and
// no_new_privs (it used to come back with all of them).
func TestCaps(t *testing.T) {
	pyThreads := "import threading, time\n" +
		"for _ in range(2): threading.Thread(target=time.sleep, args=(1000,)).start()\n" +
		"time.sleep(1000)\n"
	cases := []struct {
		name    string
		threads int
		args    []string
	}{
		{"bounding and no_new_privs", 1, []string{"--inh-caps=-all",
			"--bounding-set=-net_raw", "--no-new-privs", "sleep", "1000"}},
		{"uid 1000 ambient", 1, []string{"--reuid=1000", "--regid=1000", "--clear-groups",
			"--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service",
			"sleep", "1000"}},
		// The inheritable set is set first, then the bounding set is
		// dropped: setpriv cannot do it in one go.
		{"inheritable outside bounding", 1, []string{"--inh-caps=+net_raw", "setpriv",
			"--bounding-set=-net_raw", "sleep", "1000"}},
		{"threads", 3, []string{"--reuid=1000", "--regid=1000", "--groups=4,27",
			"--inh-caps=+net_bind_service,+kill", "--ambient-caps=+kill",
			"--bounding-set=-sys_admin", "--no-new-privs", "/usr/bin/python3", "-c", pyThreads}},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			s := start(t, "", "setpriv", c.args...)
			waitFor(t, 10*time.Second, "the subject to sleep in all its threads", func() bool {
				ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", s.pid))
				return procState(s.pid) == "S" && len(ents) == c.threads
			})
			before := threadCreds(t, s.pid)
			img := dump(t, s.pid)
			select {
			case <-s.exited:
			case <-time.After(10 * time.Second):
				t.Fatalf("pid %d still runs 10s after the dump with --kill", s.pid)
			}
			restore(t, img, s.pid)
			after := threadCreds(t, s.pid)
			if len(after) != len(before) {
				t.Fatalf("%d threads after restore, %d before", len(after), len(before))
			}
			for tid, want := range before {
				if got := after[tid]; got != want {
					t.Errorf("tid %s after restore:\n%s\nbefore:\n%s", tid, got, want)
				}
			}
		})
	}
}

// TestCapsUnrestorable restores, from a restorer that has no_new_privs
// set, a process that did not have it: no_new_privs cannot be cleared,
// so restore fails naming the process, and kills what it made.
func TestCapsUnrestorable(t *testing.T) {
	s := start(t, "", "sleep", "1000")
	waitFor(t, 5*time.Second, "sleep to sleep", func() bool { return procState(s.pid) == "S" })
	img := dump(t, s.pid)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("pid %d still runs 10s after the dump with --kill", s.pid)
	}
	t.Cleanup(func() { killPID(s.pid) })
	stderr, err := run(t, 60*time.Second, "setpriv --no-new-privs ckpt-restore "+img)
	if err == nil {
		t.Fatalf("restore under no_new_privs of a process without it succeeded")
	}
	want := fmt.Sprintf("pid %d: capabilities not restored: NoNewPrivs true, saved false",
		s.pid)
	if !strings.Contains(stderr, want) {
		t.Fatalf("restore failed with %q, want it to say %q", stderr, want)
	}
	waitFor(t, 10*time.Second, "the half-restored process to be gone", func() bool {
		return !alive(s.pid)
	})
}
