package ptrace

import (
	"slices"
	"unsafe"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

func ptrace(req, tid int, addr, data uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func ptracePtr(req, tid int, addr uintptr, data unsafe.Pointer) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr,
		uintptr(data), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func ptrOf[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }

// GetXstate returns the thread's extended register state (x87, SSE, AVX,
// AVX-512 ...) as PTRACE_GETREGSET NT_X86_XSTATE gives it.
func GetXstate(tid int) ([]byte, error) {
	buf := make([]byte, 16384)
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	err := ptracePtr(unix.PTRACE_GETREGSET, tid, unix.NT_X86_XSTATE, unsafe.Pointer(&iov))
	if err != nil {
		return nil, wrap("getregset xstate", tid, err)
	}
	return buf[:iov.Len], nil
}

// SetXstate loads the thread's extended register state.
func SetXstate(tid int, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	iov := unix.Iovec{Base: &b[0]}
	iov.SetLen(len(b))
	err := ptracePtr(unix.PTRACE_SETREGSET, tid, unix.NT_X86_XSTATE, unsafe.Pointer(&iov))
	return wrap("setregset xstate", tid, err)
}

// RegsWords returns the registers as the 27 words of user_regs_struct.
func RegsWords(r *unix.PtraceRegs) []uint64 {
	n := unsafe.Sizeof(*r) / 8
	return append([]uint64(nil), unsafe.Slice((*uint64)(unsafe.Pointer(r)), n)...)
}

// WordsRegs is the inverse of RegsWords.
func WordsRegs(w []uint64) (*unix.PtraceRegs, bool) {
	var r unix.PtraceRegs
	n := int(unsafe.Sizeof(r) / 8)
	if len(w) != n {
		return nil, false
	}
	copy(unsafe.Slice((*uint64)(unsafe.Pointer(&r)), n), w)
	return &r, true
}

// PeekSigInfo returns the signals pending for the thread (shared false)
// or for its whole process (shared true), oldest first, each as the
// kernel's 128-byte siginfo_t (PTRACE_PEEKSIGINFO, Linux 3.10+). Nothing
// is dequeued.
func PeekSigInfo(tid int, shared bool) ([][]byte, error) {
	const batch = 32
	args := struct {
		Off   uint64
		Flags uint32
		Nr    int32
	}{Nr: batch}
	if shared {
		args.Flags = unix.PTRACE_PEEKSIGINFO_SHARED
	}
	var out [][]byte
	buf := make([]byte, batch*image.SigInfoSize)
	for {
		n, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_PEEKSIGINFO, uintptr(tid),
			uintptr(unsafe.Pointer(&args)), uintptr(unsafe.Pointer(&buf[0])), 0, 0)
		if e != 0 {
			return nil, wrap("peeksiginfo", tid, e)
		}
		for i := range int(n) {
			out = append(out, slices.Clone(buf[i*image.SigInfoSize:(i+1)*image.SigInfoSize]))
		}
		if n < batch {
			return out, nil
		}
		args.Off += uint64(n)
	}
}
