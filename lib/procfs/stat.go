package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/ckpt/ckpt/lib/image"
)

// PFKthread is the PF_KTHREAD bit of the flags field of stat: the task is
// a kernel thread.
const PFKthread = 0x00200000

// Stat holds the fields of /proc/PID/stat that ckpt uses. Field numbers
// are those of proc(5), counted from 1.
type Stat struct {
	PID        int    // 1
	Comm       string // 2, as the kernel stores it (up to 15 bytes, any bytes)
	State      byte   // 3: R, S, D, T, t, Z, X, ...
	PPID       int    // 4
	PGRP       int    // 5
	Session    int    // 6
	TtyNr      int    // 7: the controlling terminal's device number, 0 for none
	Flags      uint32 // 9: PF_* bits
	NumThreads int    // 20
	StartTime  uint64 // 22: clock ticks after boot; with PID, names the task
	StartCode  uint64 // 26
	EndCode    uint64 // 27
	StartStack uint64 // 28
	StartData  uint64 // 45
	EndData    uint64 // 46
	StartBrk   uint64 // 47
	ArgStart   uint64 // 48
	ArgEnd     uint64 // 49
	EnvStart   uint64 // 50
	EnvEnd     uint64 // 51
	ExitCode   int    // 52: a zombie's wait status; 0 where the kernel has no field 52
}

// KernelThread reports whether the task is a kernel thread.
func (s *Stat) KernelThread() bool { return s.Flags&PFKthread != 0 }

// MM returns the memory descriptor fields found in stat. Brk and Auxv are
// not there: Brk comes from the task itself (brk(0)), Auxv from ParseAuxv.
// For a task the reader may not trace, the kernel shows them as 0.
func (s *Stat) MM() image.MM {
	return image.MM{
		StartCode:  s.StartCode,
		EndCode:    s.EndCode,
		StartData:  s.StartData,
		EndData:    s.EndData,
		StartBrk:   s.StartBrk,
		StartStack: s.StartStack,
		ArgStart:   s.ArgStart,
		ArgEnd:     s.ArgEnd,
		EnvStart:   s.EnvStart,
		EnvEnd:     s.EnvEnd,
	}
}

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (*Stat, error) {
	b, path, err := read(pid, "stat")
	if err != nil {
		return nil, err
	}
	s, err := ParseStat(b)
	return s, withPath(err, path)
}

// ReadTaskStat reads /proc/PID/task/TID/stat, the stat of one thread.
func ReadTaskStat(pid, tid int) (*Stat, error) {
	path := TaskPath(pid, tid, "stat")
	b, err := readPath(path)
	if err != nil {
		return nil, err
	}
	s, err := ParseStat(b)
	return s, withPath(err, path)
}

// ParseStat parses the contents of a stat file. The command name sits in
// parentheses and may itself hold spaces and parentheses, so it runs from
// the first "(" to the last ")".
func ParseStat(b []byte) (*Stat, error) {
	fail := func(err error) (*Stat, error) { return nil, &ParseError{File: "stat", Err: err} }
	open := bytes.IndexByte(b, '(')
	shut := bytes.LastIndexByte(b, ')')
	if open < 1 || shut < open {
		return fail(errors.New("no command name in parentheses"))
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return fail(fmt.Errorf("pid: %w", err))
	}
	// rest[0] is field 3 (state), so field n is rest[n-3].
	rest := bytes.Fields(b[shut+1:])
	if len(rest) < 51-2 {
		return fail(fmt.Errorf("%d fields, want at least 51", len(rest)+2))
	}
	if len(rest[0]) != 1 {
		return fail(fmt.Errorf("state %q is not one letter", rest[0]))
	}
	s := &Stat{PID: pid, Comm: string(b[open+1 : shut]), State: rest[0][0]}
	var p fieldParser
	s.PPID = p.int(rest, 4)
	s.PGRP = p.int(rest, 5)
	s.Session = p.int(rest, 6)
	s.TtyNr = p.int(rest, 7)
	s.Flags = uint32(p.uint(rest, 9))
	s.NumThreads = p.int(rest, 20)
	s.StartTime = p.uint(rest, 22)
	s.StartCode = p.uint(rest, 26)
	s.EndCode = p.uint(rest, 27)
	s.StartStack = p.uint(rest, 28)
	s.StartData = p.uint(rest, 45)
	s.EndData = p.uint(rest, 46)
	s.StartBrk = p.uint(rest, 47)
	s.ArgStart = p.uint(rest, 48)
	s.ArgEnd = p.uint(rest, 49)
	s.EnvStart = p.uint(rest, 50)
	s.EnvEnd = p.uint(rest, 51)
	if len(rest) >= 52-2 {
		s.ExitCode = p.int(rest, 52)
	}
	if p.err != nil {
		return fail(p.err)
	}
	return s, nil
}

// fieldParser converts numbered stat fields and keeps the first error.
type fieldParser struct{ err error }

func (p *fieldParser) uint(rest [][]byte, field int) uint64 {
	v, err := strconv.ParseUint(string(rest[field-3]), 10, 64)
	if err != nil && p.err == nil {
		p.err = fmt.Errorf("field %d: %w", field, err)
	}
	return v
}

func (p *fieldParser) int(rest [][]byte, field int) int {
	v, err := strconv.Atoi(string(rest[field-3]))
	if err != nil && p.err == nil {
		p.err = fmt.Errorf("field %d: %w", field, err)
	}
	return v
}
