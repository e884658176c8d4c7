package ptrace

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// The parasite is a few instructions and the state they return to, which
// NewParasite writes into the free tail of the task's vdso:
//
//	code:  syscall                     the injected call (rip = code)
//	back:  mov eax, 14                 rt_sigprocmask(SIG_SETMASK,
//	       mov edi, 2                    &mask, NULL, 8): the saved
//	       lea rsi, [rip+mask]           signal mask
//	       mov edx, 0
//	       mov r10d, 8
//	       syscall
//	       mov rax, [rip+rax_slot]     every general register, rsp
//	       ...                         included, from the data
//	       mov r15, [rip+r15_slot]
//	       jmp [rip+rip_slot]          the saved rip (the interrupted
//	                                   syscall, when it restarts)
//	data:  mask, then rax ... r15, rip (8 bytes each)
//
// A tracer that runs each injected call with PTRACE_SYSCALL takes the
// thread back to `code` before the next one, so `back` runs only if the
// tracer is gone: after whatever call it was making, the thread puts its
// own state back and goes on as if never stopped. Every instruction after
// the first syscall is a mov, lea or jmp, which leave the flags alone,
// and none touches the stack or the extended state.

// gprSlot is a register `back` loads: how `mov reg, [rip+disp32]` encodes
// it (REX prefix, ModRM byte) and where PtraceRegs holds it.
type gprSlot struct {
	rex, modrm byte
	reg        func(r *unix.PtraceRegs) *uint64
}

var gprSlots = []gprSlot{
	{0x48, 0x05, func(r *unix.PtraceRegs) *uint64 { return &r.Rax }},
	{0x48, 0x1d, func(r *unix.PtraceRegs) *uint64 { return &r.Rbx }},
	{0x48, 0x0d, func(r *unix.PtraceRegs) *uint64 { return &r.Rcx }},
	{0x48, 0x15, func(r *unix.PtraceRegs) *uint64 { return &r.Rdx }},
	{0x48, 0x35, func(r *unix.PtraceRegs) *uint64 { return &r.Rsi }},
	{0x48, 0x3d, func(r *unix.PtraceRegs) *uint64 { return &r.Rdi }},
	{0x48, 0x2d, func(r *unix.PtraceRegs) *uint64 { return &r.Rbp }},
	{0x48, 0x25, func(r *unix.PtraceRegs) *uint64 { return &r.Rsp }},
	{0x4c, 0x05, func(r *unix.PtraceRegs) *uint64 { return &r.R8 }},
	{0x4c, 0x0d, func(r *unix.PtraceRegs) *uint64 { return &r.R9 }},
	{0x4c, 0x15, func(r *unix.PtraceRegs) *uint64 { return &r.R10 }},
	{0x4c, 0x1d, func(r *unix.PtraceRegs) *uint64 { return &r.R11 }},
	{0x4c, 0x25, func(r *unix.PtraceRegs) *uint64 { return &r.R12 }},
	{0x4c, 0x2d, func(r *unix.PtraceRegs) *uint64 { return &r.R13 }},
	{0x4c, 0x35, func(r *unix.PtraceRegs) *uint64 { return &r.R14 }},
	{0x4c, 0x3d, func(r *unix.PtraceRegs) *uint64 { return &r.R15 }},
}

// Layout of the parasite, in bytes from its start.
const (
	codeLen = 32 + 7*16 + 6      // the instructions above
	dataOff = (codeLen + 7) &^ 7 // the mask, then the registers
	ripSlot = dataOff + 8 + 8*16 // the saved rip
	// MinParasite is the room the parasite needs.
	MinParasite = ripSlot + 8
)

// parasiteImage returns the parasite's code and data: it puts back mask
// and regs, and jumps to regs.Rip.
func parasiteImage(regs *unix.PtraceRegs, mask uint64) []byte {
	b := make([]byte, 0, MinParasite)
	// rel returns the rip-relative displacement of data offset off from
	// the end of an instruction that ends n bytes after what is emitted.
	rel := func(off, n int) []byte {
		return binary.LittleEndian.AppendUint32(nil, uint32(int32(off-(len(b)+n))))
	}
	b = append(b, 0x0f, 0x05)                      // syscall
	b = append(b, 0xb8, 14, 0, 0, 0)               // mov eax, SYS_rt_sigprocmask
	b = append(b, 0xbf, unix.SIG_SETMASK, 0, 0, 0) // mov edi, SIG_SETMASK
	b = append(b, 0x48, 0x8d, 0x35)                // lea rsi, [rip+mask]
	b = append(b, rel(dataOff, 4)...)
	b = append(b, 0xba, 0, 0, 0, 0)       // mov edx, 0
	b = append(b, 0x41, 0xba, 8, 0, 0, 0) // mov r10d, 8
	b = append(b, 0x0f, 0x05)             // syscall
	for i, g := range gprSlots {
		b = append(b, g.rex, 0x8b, g.modrm) // mov reg, [rip+slot]
		b = append(b, rel(dataOff+8+8*i, 4)...)
	}
	b = append(b, 0xff, 0x25) // jmp [rip+rip_slot]
	b = append(b, rel(ripSlot, 4)...)
	b = append(b, make([]byte, dataOff-len(b))...)

	b = binary.LittleEndian.AppendUint64(b, mask)
	r := *regs
	for _, g := range gprSlots {
		b = binary.LittleEndian.AppendUint64(b, *g.reg(&r))
	}
	return binary.LittleEndian.AppendUint64(b, regs.Rip)
}
