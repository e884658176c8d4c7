// Package procfs reads the files of /proc that describe a process: stat,
// status, maps and smaps, auxv, limits, personality, fdinfo, the task list
// and the children.
//
// Every file has a Parse function that takes its contents, so the parsers
// are tested on captures (testdata/) without root, and a Read function
// that reads the live file of a PID. Errors name the file they concern.
// The package never writes to /proc and never traces a process.
package procfs

import (
	"fmt"
	"os"
	"strconv"
)

// Root is the mount point of proc.
const Root = "/proc"

// Path returns the path of the file name of process pid: /proc/PID/name.
func Path(pid int, name string) string {
	return Root + "/" + strconv.Itoa(pid) + "/" + name
}

// TaskPath returns the path of the file name of thread tid of process pid:
// /proc/PID/task/TID/name.
func TaskPath(pid, tid int, name string) string {
	return Path(pid, "task/"+strconv.Itoa(tid)+"/"+name)
}

// ParseError is a file of /proc whose contents this package cannot read.
type ParseError struct {
	File string // the path, or the file's base name when parsing bytes
	Line int    // 1-based line number, 0 when not about one line
	Err  error
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("parse %s line %d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("parse %s: %v", e.File, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// withPath puts the path of the file read into a ParseError that only knew
// its base name; other errors are returned as they are.
func withPath(err error, path string) error {
	if pe, ok := err.(*ParseError); ok {
		pe.File = path
	}
	return err
}

// read reads /proc/PID/name. A process that is gone gives an error
// matching fs.ErrNotExist (or ESRCH for some files).
func read(pid int, name string) ([]byte, string, error) {
	path := Path(pid, name)
	b, err := readPath(path)
	return b, path, err
}

// readPath reads a whole file of proc; os.ReadFile's error names the path.
func readPath(path string) ([]byte, error) {
	return os.ReadFile(path)
}
