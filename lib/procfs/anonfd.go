package procfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// This file reads the state that fdinfo shows for the files of anon
// inodes whose state ckpt saves: eventfd, signalfd, timerfd and epoll.
// The lines look like this (Linux 6.x; the common pos, flags, mnt_id and
// ino lines come first):
//
//	eventfd-count:                5     hex
//	eventfd-id: 4
//	eventfd-semaphore: 0
//
//	sigmask:	0000000800000200        hex, bit N-1 = signal N
//
//	clockid: 1
//	ticks: 0
//	settime flags: 01                   octal
//	it_value: (1, 899557824)            time left: seconds, nanoseconds
//	it_interval: (0, 50000000)
//
//	tfd:        5 events: 80000019 data: deadbeef22222222  pos:0 ino:40f sdev:10

// Eventfd is the state of an eventfd.
type Eventfd struct {
	Count uint64 // the counter
	ID    int    // the kernel's number for the eventfd, unique while it lives; -1 if not shown
	// Semaphore is the EFD_SEMAPHORE flag. SemaphoreKnown is false when
	// the kernel does not show it (eventfd-semaphore, newer kernels only).
	Semaphore      bool
	SemaphoreKnown bool
}

// Signalfd is the state of a signalfd: the signals it reads.
type Signalfd struct {
	Mask uint64 // bit N-1 is signal N
}

// Timerfd is the state of a timerfd.
type Timerfd struct {
	Clock int    // clockid
	Ticks uint64 // expirations not read yet
	// Flags are the flags of the last timerfd_settime: TFD_TIMER_ABSTIME
	// (1), TFD_TIMER_CANCEL_ON_SET (2).
	Flags int
	// Value is the time left to the next expiry in nanoseconds, 0 when the
	// timer is disarmed or has expired and waits to be read.
	Value    int64
	Interval int64 // nanoseconds, 0 for a one-shot timer
}

// EpollTarget is one entry of an epoll's interest list.
type EpollTarget struct {
	Fd     int    // the descriptor number it was added with (EPOLL_CTL_ADD)
	Events uint32 // the event mask, EPOLLET and the other flags included
	Data   uint64 // the user data
	Pos    int64  // the target file's offset
	Ino    uint64 // the target file's inode
	Dev    uint64 // the device of the target file's filesystem, as stat(2) encodes it
}

// ReadEventfd reads the state of eventfd fd of task pid.
func ReadEventfd(pid, fd int) (*Eventfd, error) {
	return readState(pid, fd, ParseEventfd)
}

// ReadSignalfd reads the state of signalfd fd of task pid.
func ReadSignalfd(pid, fd int) (*Signalfd, error) {
	return readState(pid, fd, ParseSignalfd)
}

// ReadTimerfd reads the state of timerfd fd of task pid.
func ReadTimerfd(pid, fd int) (*Timerfd, error) {
	return readState(pid, fd, ParseTimerfd)
}

// ReadEpoll reads the interest list of epoll fd of task pid, in the order
// fdinfo lists it.
func ReadEpoll(pid, fd int) ([]EpollTarget, error) {
	return readState(pid, fd, ParseEpoll)
}

func readState[T any](pid, fd int, parse func([]byte) (T, error)) (T, error) {
	b, path, err := read(pid, "fdinfo/"+strconv.Itoa(fd))
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := parse(b)
	return v, withPath(err, path)
}

// ParseEventfd parses the fdinfo of an eventfd. eventfd-count must be
// there; eventfd-id and eventfd-semaphore are taken when present.
func ParseEventfd(b []byte) (*Eventfd, error) {
	e := &Eventfd{ID: -1}
	var haveCount bool
	err := eachLine(b, func(key, val string) error {
		var err error
		switch key {
		case "eventfd-count":
			e.Count, err = strconv.ParseUint(val, 16, 64)
			haveCount = true
		case "eventfd-id":
			e.ID, err = strconv.Atoi(val)
		case "eventfd-semaphore":
			e.Semaphore, err = parseBool01(val)
			e.SemaphoreKnown = true
		}
		return err
	})
	if err == nil && !haveCount {
		err = &ParseError{File: "fdinfo", Err: errors.New("no eventfd-count line")}
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

// ParseSignalfd parses the fdinfo of a signalfd.
func ParseSignalfd(b []byte) (*Signalfd, error) {
	s := &Signalfd{}
	var haveMask bool
	err := eachLine(b, func(key, val string) error {
		if key != "sigmask" {
			return nil
		}
		var err error
		s.Mask, err = strconv.ParseUint(val, 16, 64)
		haveMask = true
		return err
	})
	if err == nil && !haveMask {
		err = &ParseError{File: "fdinfo", Err: errors.New("no sigmask line")}
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// ParseTimerfd parses the fdinfo of a timerfd. Every one of its five
// lines must be there.
func ParseTimerfd(b []byte) (*Timerfd, error) {
	t := &Timerfd{}
	seen := map[string]bool{}
	err := eachLine(b, func(key, val string) error {
		var err error
		switch key {
		case "clockid":
			t.Clock, err = strconv.Atoi(val)
		case "ticks":
			t.Ticks, err = strconv.ParseUint(val, 10, 64)
		case "settime flags":
			var v uint64
			v, err = strconv.ParseUint(val, 8, 32)
			t.Flags = int(v)
		case "it_value":
			t.Value, err = parseTimespec(val)
		case "it_interval":
			t.Interval, err = parseTimespec(val)
		default:
			return nil
		}
		seen[key] = true
		return err
	})
	if err == nil && len(seen) != 5 {
		err = &ParseError{File: "fdinfo", Err: fmt.Errorf(
			"want clockid, ticks, settime flags, it_value and it_interval lines, have %d of them",
			len(seen))}
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// ParseEpoll parses the fdinfo of an epoll: one EpollTarget per tfd line,
// in order. An epoll with an empty interest list has none.
func ParseEpoll(b []byte) ([]EpollTarget, error) {
	var out []EpollTarget
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		if !strings.HasPrefix(sc.Text(), "tfd:") {
			continue
		}
		t, err := parseEpollLine(sc.Text())
		if err != nil {
			return nil, &ParseError{File: "fdinfo", Line: line, Err: err}
		}
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{File: "fdinfo", Err: err}
	}
	return out, nil
}

// parseEpollLine parses one tfd line. Its fields are "key: value" (tfd,
// events, data) or "key:value" (pos, ino, sdev); all six must be there.
func parseEpollLine(s string) (EpollTarget, error) {
	var t EpollTarget
	fields := epollFields(s)
	var err error
	for _, k := range []string{"tfd", "events", "data", "pos", "ino", "sdev"} {
		v, ok := fields[k]
		if !ok {
			return t, fmt.Errorf("no %s in %q", k, s)
		}
		switch k {
		case "tfd":
			t.Fd, err = strconv.Atoi(v)
		case "events":
			var e uint64
			e, err = strconv.ParseUint(v, 16, 32)
			t.Events = uint32(e)
		case "data":
			t.Data, err = strconv.ParseUint(v, 16, 64)
		case "pos":
			t.Pos, err = strconv.ParseInt(v, 10, 64)
		case "ino":
			t.Ino, err = strconv.ParseUint(v, 16, 64)
		case "sdev":
			var d uint64
			d, err = strconv.ParseUint(v, 16, 32)
			t.Dev = kernelDev(d)
		}
		if err != nil {
			return t, fmt.Errorf("%s: %w", k, err)
		}
	}
	return t, nil
}

// epollFields splits a tfd line into its keys and values.
func epollFields(s string) map[string]string {
	out := map[string]string{}
	words := strings.Fields(s)
	for i := 0; i < len(words); i++ {
		key, val, _ := strings.Cut(words[i], ":")
		if val == "" && i+1 < len(words) {
			i++
			val = words[i]
		}
		out[key] = val
	}
	return out
}

// kernelDev turns a device number as the kernel keeps it inside (major
// above bit 20) into the encoding stat(2) gives.
func kernelDev(d uint64) uint64 {
	return unix.Mkdev(uint32(d>>20), uint32(d&0xfffff))
}

// parseTimespec parses "(SECONDS, NANOSECONDS)" into nanoseconds.
func parseTimespec(s string) (int64, error) {
	in, ok := strings.CutPrefix(s, "(")
	if ok {
		in, ok = strings.CutSuffix(in, ")")
	}
	sec, nsec, ok2 := strings.Cut(in, ",")
	if !ok || !ok2 {
		return 0, fmt.Errorf("%q: want (SECONDS, NANOSECONDS)", s)
	}
	a, err := strconv.ParseUint(strings.TrimSpace(sec), 10, 63)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(nsec), 10, 32)
	if err != nil {
		return 0, err
	}
	if n >= 1e9 || a > (1<<63-1-n)/1e9 {
		return 0, fmt.Errorf("%q: out of range", s)
	}
	return int64(a)*1e9 + int64(n), nil
}

func parseBool01(s string) (bool, error) {
	switch s {
	case "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, fmt.Errorf("%q: want 0 or 1", s)
}

// eachLine calls fn with the key and the trimmed value of every "key:
// value" line of an fdinfo file, and wraps its error with the line.
func eachLine(b []byte, fn func(key, val string) error) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		if err := fn(key, strings.TrimSpace(val)); err != nil {
			return &ParseError{File: "fdinfo", Line: line, Err: fmt.Errorf("%s: %w", key, err)}
		}
	}
	if err := sc.Err(); err != nil {
		return &ParseError{File: "fdinfo", Err: err}
	}
	return nil
}
