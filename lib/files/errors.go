package files

import (
	"errors"
	"fmt"
)

// ErrNotSupported is wrapped by every error about a file that ckpt cannot
// dump yet; the message names what, e.g. "pipes are not supported yet".
var ErrNotSupported = errors.New("not supported yet")

// ErrChanged is wrapped by errors about a task or file that is not what
// the scan recorded: the stream is older than the live tree it is
// resolved against.
var ErrChanged = errors.New("changed since the scan")

func notSupported(what string) error {
	return fmt.Errorf("%s are %w", what, ErrNotSupported)
}

// UseKind says how a task uses a file.
type UseKind int

// The ways a task uses a file. The zero UseKind means the task itself.
const (
	UseFd      UseKind = iota + 1 // an open descriptor
	UseMapping                    // a file mapping
	UseExe                        // the task's executable (/proc/PID/exe)
)

// Use is one place where a task uses a file.
type Use struct {
	Kind  UseKind
	PID   int
	Fd    int    // for UseFd
	Start uint64 // for UseMapping: the mapping's range
	End   uint64
}

// String names the use as errors do: "pid 12 fd 3", "pid 12 mapping
// 7f00-7f10", "pid 12 exe", or "pid 12" for the task itself.
func (u Use) String() string {
	switch u.Kind {
	case UseFd:
		return fmt.Sprintf("pid %d fd %d", u.PID, u.Fd)
	case UseMapping:
		return fmt.Sprintf("pid %d mapping %s", u.PID, mapRange(u.Start, u.End))
	case UseExe:
		return fmt.Sprintf("pid %d exe", u.PID)
	}
	return fmt.Sprintf("pid %d", u.PID)
}

// Error is a file that could not be resolved. It names the task and the
// use the file was reached through, and the name the kernel gives it.
type Error struct {
	Use  Use
	Path string // link or maps name, as the kernel shows it; may be empty
	Err  error
}

func (e *Error) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%v: %v", e.Use, e.Err)
	}
	return fmt.Sprintf("%v: %s: %v", e.Use, e.Path, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// mapRange spells a mapping's range as /proc/PID/maps and map_files do.
func mapRange(start, end uint64) string {
	return fmt.Sprintf("%x-%x", start, end)
}
