package ptrace

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestImageEndVdso finds the end of this process's own vdso image, which
// lies past its code and before the end of the mapping, with only zeros
// (or a parasite a test left) after it.
func TestImageEndVdso(t *testing.T) {
	s, e := vdso(t, os.Getpid())
	b := make([]byte, e-s)
	if err := ReadMem(os.Getpid(), s, b); err != nil {
		t.Fatal(err)
	}
	end, err := imageEnd(b)
	if err != nil {
		t.Fatal(err)
	}
	if end <= 64 || end > len(b) {
		t.Fatalf("image end %d of %d bytes", end, len(b))
	}
	if n := len(bytes.TrimRight(b, "\x00")); n > end {
		t.Errorf("non-zero bytes up to %d, past the image end %d", n, end)
	}
	t.Logf("vdso: %d bytes, image ends at %d: %d free", len(b), end, len(b)-end)
}

func TestImageEndRefuses(t *testing.T) {
	good := make([]byte, 4096)
	copy(good, "\x7fELF\x02\x01")
	if end, err := imageEnd(good); err != nil || end != 64 {
		t.Fatalf("bare header: %d, %v", end, err)
	}
	le := binary.LittleEndian
	cases := map[string]func(b []byte){
		"short":       nil,
		"not elf":     func(b []byte) { b[0] = 0 },
		"32-bit":      func(b []byte) { b[4] = 1 },
		"big-endian":  func(b []byte) { b[5] = 2 },
		"phent":       func(b []byte) { le.PutUint16(b[54:], 32); le.PutUint16(b[56:], 1) },
		"shoff past":  func(b []byte) { le.PutUint64(b[40:], 4090); le.PutUint16(b[58:], 64); le.PutUint16(b[60:], 1) },
		"shoff wraps": func(b []byte) { le.PutUint64(b[40:], ^uint64(0)-10); le.PutUint16(b[58:], 64); le.PutUint16(b[60:], 1) },
		"section past": func(b []byte) {
			le.PutUint64(b[40:], 64)
			le.PutUint16(b[58:], 64)
			le.PutUint16(b[60:], 1)
			le.PutUint64(b[64+24:], 100)
			le.PutUint64(b[64+32:], ^uint64(0)-50)
		},
	}
	for name, mutate := range cases {
		b := bytes.Clone(good)
		if mutate == nil {
			b = b[:40]
		} else {
			mutate(b)
		}
		if end, err := imageEnd(b); !errors.Is(err, errNotELF) {
			t.Errorf("%s: %d, %v; want errNotELF", name, end, err)
		}
	}
}

func FuzzImageEnd(f *testing.F) {
	b := make([]byte, 512)
	copy(b, "\x7fELF\x02\x01")
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		end, err := imageEnd(b)
		if err == nil && (end < 64 || end > len(b)) {
			t.Fatalf("image end %d of %d bytes", end, len(b))
		}
	})
}

// TestParasiteImage checks that every rip-relative operand of the code
// points at its slot and the slots hold the registers.
func TestParasiteImage(t *testing.T) {
	r := unix.PtraceRegs{Rax: 1, Rbx: 2, Rcx: 3, Rdx: 4, Rsi: 5, Rdi: 6, Rbp: 7, Rsp: 8,
		R8: 9, R9: 10, R10: 11, R11: 12, R12: 13, R13: 14, R14: 15, R15: 16, Rip: 0xdead}
	b := parasiteImage(&r, 0xabc)
	le := binary.LittleEndian
	if len(b) != MinParasite || !bytes.Equal(b[:2], []byte{0x0f, 0x05}) {
		t.Fatalf("%d bytes, starting % x", len(b), b[:2])
	}
	// slot returns the word that the disp32 at off (ending its instruction)
	// addresses.
	slot := func(off int) uint64 {
		target := off + 4 + int(int32(le.Uint32(b[off:])))
		return le.Uint64(b[target:])
	}
	if got := slot(0xc + 3); got != 0xabc {
		t.Errorf("lea rsi addresses %#x, want the mask", got)
	}
	for i := range gprSlots {
		if got := slot(32 + 7*i + 3); got != uint64(i+1) {
			t.Errorf("mov %d loads %d", i, got)
		}
	}
	if got := slot(32 + 7*16 + 2); got != 0xdead {
		t.Errorf("jmp goes to %#x", got)
	}
}

// TestParasiteDetached injects calls into sleep with a parasite and, at
// every step, lets the thread go without putting it back, as a dead
// tracer would: it must find its way back alone into its sleep, with its
// extended state and signal mask as they were.
func TestParasiteDetached(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to trace")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for k := 0; ; k++ {
		if done := parasiteDetachAt(t, k); done {
			if k < 10 {
				t.Fatalf("only %d steps", k)
			}
			return
		}
	}
}

// errDetach stops a parasite at a step.
var errDetach = errors.New("detach here")

// parasiteDetachAt runs the injection in a new sleep and detaches after
// step k; it reports whether the injection had fewer steps.
func parasiteDetachAt(t *testing.T, k int) bool {
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	waitState(t, pid, "S")
	before := stopSeized(t, pid)
	xsBefore, err := GetXstate(pid)
	if err != nil {
		t.Fatal(err)
	}
	s, e := vdso(t, pid)
	area, err := FindArea(pid, s, e)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewParasite(pid, area)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	p.Step = func(string) {
		if n == k {
			panic(errDetach)
		}
		n++
	}
	detached := func() (stopped bool) {
		defer func() {
			if r := recover(); r != nil {
				if r != errDetach {
					panic(r)
				}
				stopped = true
			}
		}()
		for _, nr := range []uintptr{unix.SYS_GETPID, unix.SYS_GETPPID} {
			if _, err := p.Syscall(nr); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Cure(); err != nil {
			t.Fatal(err)
		}
		return false
	}()
	if err := Detach(pid); err != nil {
		t.Fatal(err)
	}
	why := fmt.Sprintf("detached after step %d", k)
	if !detached {
		why = "cured"
	}
	// Back in its sleep, restarted with the time left: in restart_syscall.
	waitState(t, pid, "S")
	after := stopSeized(t, pid)
	xsAfter, err := GetXstate(pid)
	if err != nil {
		t.Fatal(err)
	}
	mask, err := GetSigmask(pid)
	if err != nil {
		t.Fatal(err)
	}
	if after.Rip != before.Rip || after.Rsp != before.Rsp || after.Rdi != before.Rdi ||
		after.Rsi != before.Rsi || after.Rdx != before.Rdx || after.R10 != before.R10 ||
		after.Rbx != before.Rbx || after.Rbp != before.Rbp || after.R12 != before.R12 ||
		after.Eflags != before.Eflags || int64(after.Rax) != -errRestartRestartBlock ||
		after.Orig_rax != unix.SYS_RESTART_SYSCALL {
		t.Errorf("%s: registers\n%+v\nwere\n%+v", why, after, before)
	}
	if !bytes.Equal(xsAfter, xsBefore) {
		t.Errorf("%s: the extended state changed", why)
	}
	if mask != 0 {
		t.Errorf("%s: signal mask %#x", why, mask)
	}
	if err := Detach(pid); err != nil {
		t.Fatal(err)
	}
	return !detached
}

// stopSeized seizes and interrupts pid and returns its registers.
func stopSeized(t *testing.T, pid int) *unix.PtraceRegs {
	t.Helper()
	if err := Seize(pid); err != nil {
		t.Fatal(err)
	}
	if err := Interrupt(pid); err != nil {
		t.Fatal(err)
	}
	if _, err := WaitStop(pid); err != nil {
		t.Fatal(err)
	}
	r, err := GetRegs(pid)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitState waits until pid is in state st and untraced.
func waitState(t *testing.T, pid int, st string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		s := string(b)
		if strings.Contains(s, "State:\t"+st) && strings.Contains(s, "TracerPid:\t0\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d not in state %s: %s", pid, st, s)
		}
		time.Sleep(time.Millisecond)
	}
}
