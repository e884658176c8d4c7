package restore

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/procfs"
	"github.com/ckpt/ckpt/lib/ptrace"
	"golang.org/x/sys/unix"
)

// NSInitName is the argv[0] of the stub that becomes the init of a new
// PID namespace (Options.PIDNS). A program that restores with PIDNS calls
// NSInit first thing in main when os.Args[0] is NSInitName.
const NSInitName = "ckpt-ns-init"

// NSInit is the init of a PID namespace made by a restore: it reaps every
// process that ends in the namespace and exits once none is left, which
// ends the namespace. It never returns.
func NSInit() {
	// Named so in ps, not after the restorer's binary.
	_ = os.WriteFile("/proc/self/comm", []byte(NSInitName), 0)
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(-1, &ws, unix.WALL, nil)
		if err == unix.ECHILD {
			os.Exit(0)
		}
	}
}

// hostChild returns the PID here of the child of t that is vpid in its
// own PID namespace. Outside a namespace of its own, they are the same.
func (t *task) hostChild(vpid int) (int, error) {
	if !t.inNS {
		return vpid, nil
	}
	kids, err := procfs.Children(t.pid)
	if err != nil {
		return 0, fmt.Errorf("%s: list children: %w", t.who, err)
	}
	for _, k := range kids {
		if v, err := nsPID(k); err == nil && v == vpid {
			return k, nil
		}
	}
	return 0, fmt.Errorf("%s: no child is pid %d in the new namespace", t.who, vpid)
}

// hostThread returns the TID here of the thread of t that is vtid in its
// PID namespace.
func (t *task) hostThread(vtid int) (int, error) {
	if !t.inNS {
		return vtid, nil
	}
	tids, err := procfs.Tasks(t.pid)
	if err != nil {
		return 0, fmt.Errorf("%s: list threads: %w", t.who, err)
	}
	for _, tid := range tids {
		if v, err := nsPID(tid); err == nil && v == vtid {
			return tid, nil
		}
	}
	return 0, fmt.Errorf("%s: no thread is tid %d in the new namespace", t.who, vtid)
}

// nsPID returns what task pid is in its innermost PID namespace: the
// last field of NSpid in /proc/PID/status (Linux 4.1+).
func nsPID(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "NSpid:"); ok {
			fields := strings.Fields(v)
			if len(fields) == 0 {
				break
			}
			return strconv.Atoi(fields[len(fields)-1])
		}
	}
	return 0, fmt.Errorf("pid %d: no NSpid in status", pid)
}

// letGo lets the stub that is a namespace's init run as such: its
// injection area goes, it gets back the registers it had at exec, and
// it is detached, to run this program's main as NSInitName.
func (t *task) letGo(cpus *unix.CPUSet) error {
	if _, err := t.call("munmap injection area", unix.SYS_MUNMAP, t.area, areaSize); err != nil {
		return err
	}
	if err := ptrace.SetRegs(t.pid, t.j.Saved()); err != nil {
		return fmt.Errorf("%s: %w", t.who, err)
	}
	if err := ptrace.SetSigmask(t.pid, 0); err != nil {
		return fmt.Errorf("%s: %w", t.who, err)
	}
	if err := t.setCPUs(&image.Thread{}, cpus); err != nil {
		return err
	}
	if err := ptrace.Detach(t.pid); err != nil {
		return fmt.Errorf("%s: %w", t.who, err)
	}
	return nil
}
