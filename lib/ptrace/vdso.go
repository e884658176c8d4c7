package ptrace

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Area is the free tail of a task's vdso, past everything its ELF image
// describes, up to the end of the mapping: executable memory that no code
// refers to, where the parasite lives.
type Area struct {
	Addr uint64
	Size int
}

// Holds reports whether rip lies in the parasite's code.
func (a Area) Holds(rip uint64) bool { return rip >= a.Addr && rip < a.Addr+codeLen }

// FindArea finds the free tail of the vdso mapped at start-end in task pid.
func FindArea(pid int, start, end uint64) (Area, error) {
	b := make([]byte, end-start)
	if err := ReadMem(pid, start, b); err != nil {
		return Area{}, fmt.Errorf("read the vdso: %w", err)
	}
	used, err := imageEnd(b)
	if err != nil {
		return Area{}, fmt.Errorf("pid %d: vdso at %#x: %w", pid, start, err)
	}
	used = (used + 15) &^ 15
	if len(b)-used < MinParasite {
		return Area{}, fmt.Errorf("pid %d: vdso at %#x has %d bytes free past its image, "+
			"the parasite needs %d: injecting system calls into this kernel's tasks "+
			"is not supported yet", pid, start, max(len(b)-used, 0), MinParasite)
	}
	return Area{Addr: start + uint64(used), Size: len(b) - used}, nil
}

// errNotELF is a vdso that does not read as a 64-bit little-endian ELF image.
var errNotELF = errors.New("not a 64-bit little-endian ELF image")

// imageEnd returns the offset in b past the last byte that the ELF image
// in b describes: headers, program segments, sections and the section
// header table.
func imageEnd(b []byte) (int, error) {
	const ehdrSize, phdrSize, shdrSize = 64, 56, 64
	if len(b) < ehdrSize || string(b[:4]) != "\x7fELF" || b[4] != 2 || b[5] != 1 {
		return 0, errNotELF
	}
	le := binary.LittleEndian
	phoff, shoff := le.Uint64(b[32:]), le.Uint64(b[40:])
	phent, phnum := uint64(le.Uint16(b[54:])), uint64(le.Uint16(b[56:]))
	shent, shnum := uint64(le.Uint16(b[58:])), uint64(le.Uint16(b[60:]))
	if (phnum > 0 && phent != phdrSize) || (shnum > 0 && shent != shdrSize) {
		return 0, errNotELF
	}
	size := uint64(len(b))
	end := uint64(ehdrSize)
	// extend takes [off, off+n) into the image; it must lie within b.
	extend := func(off, n uint64) error {
		if off > size || n > size-off {
			return fmt.Errorf("%w: %d bytes at %#x lie past its %d bytes", errNotELF, n, off, size)
		}
		end = max(end, off+n)
		return nil
	}
	if err := extend(phoff, phnum*phdrSize); err != nil {
		return 0, err
	}
	if err := extend(shoff, shnum*shdrSize); err != nil {
		return 0, err
	}
	for i := range phnum {
		p := b[phoff+i*phdrSize:]
		filesz, memsz := le.Uint64(p[32:]), le.Uint64(p[40:])
		if err := extend(le.Uint64(p[8:]), max(filesz, memsz)); err != nil {
			return 0, err
		}
	}
	const shtNobits = 8
	for i := range shnum {
		s := b[shoff+i*shdrSize:]
		if le.Uint32(s[4:]) == shtNobits {
			continue
		}
		if err := extend(le.Uint64(s[24:]), le.Uint64(s[32:])); err != nil {
			return 0, err
		}
	}
	return int(end), nil
}
