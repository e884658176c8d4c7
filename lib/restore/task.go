package restore

import (
	"encoding/binary"
	"fmt"

	"github.com/ckpt/ckpt/lib/ptrace"
)

// areaSize is the size of the injection area mapped in every task being
// restored: a `syscall` instruction at its start, scratch memory after.
const areaSize = 64 << 10

// task is a process or thread under construction, driven by injected
// system calls.
type task struct {
	pid int // the thread's TID here: a process's PID, or a thread's own TID
	// vpid is its TID as it sees itself, in its own PID namespace: the
	// saved one. It differs from pid only with Options.PIDNS.
	vpid int
	// inNS is true for a task in a PID namespace of its own
	// (Options.PIDNS), where its PID here is not its saved one.
	inNS bool
	who  string // names it in errors: "pid 10" or "pid 10 thread 12"
	j    *ptrace.Injector
	area uint64 // start of the injection area in the task
	free int    // first unused scratch byte of the area
}

// scratchStart is where scratch memory begins in the injection area,
// past the instructions at its start.
const scratchStart = 16

func newTask(pid int, j *ptrace.Injector, area uint64) *task {
	return &task{pid: pid, vpid: pid, who: fmt.Sprintf("pid %d", pid), j: j, area: area,
		free: scratchStart}
}

// call runs one system call in the task. The scratch memory written for
// it is reused by the next call.
func (t *task) call(name string, nr uintptr, args ...uint64) (uint64, error) {
	t.free = scratchStart
	ret, err := t.j.Syscall(nr, args...)
	if err != nil {
		return 0, fmt.Errorf("%s: %s: %w", t.who, name, err)
	}
	return ret, nil
}

// put copies b into the task's scratch memory and returns its address.
// What put writes stays valid until the next call.
func (t *task) put(b []byte) (uint64, error) {
	if t.free+len(b) > areaSize {
		return 0, fmt.Errorf("%s: %d bytes do not fit in scratch memory", t.who, len(b))
	}
	addr := t.area + uint64(t.free)
	if err := ptrace.WriteMem(t.pid, addr, b); err != nil {
		return 0, err
	}
	t.free += (len(b) + 15) &^ 15
	return addr, nil
}

// cstring puts s with a terminating NUL.
func (t *task) cstring(s string) (uint64, error) {
	return t.put(append([]byte(s), 0))
}

// words puts little-endian 64-bit words.
func (t *task) words(w ...uint64) (uint64, error) {
	b := make([]byte, 0, 8*len(w))
	for _, x := range w {
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	return t.put(b)
}
