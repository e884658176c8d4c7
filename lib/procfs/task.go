package procfs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Tasks lists the threads of process pid (/proc/PID/task), the thread
// group leader first, then the others in increasing TID order.
func Tasks(pid int) ([]int, error) {
	tids, err := listNumbers(Path(pid, "task"))
	if err != nil {
		return nil, err
	}
	if i := slices.Index(tids, pid); i > 0 {
		tids = append(append([]int{pid}, tids[:i]...), tids[i+1:]...)
	}
	return tids, nil
}

// Pids lists every process of the machine (/proc), in increasing order.
func Pids() ([]int, error) {
	return listNumbers(Root)
}

// Fds lists the open descriptors of process pid (/proc/PID/fd), in
// increasing order.
func Fds(pid int) ([]int, error) {
	return listNumbers(Path(pid, "fd"))
}

// listNumbers returns the numeric names in directory dir, sorted.
func listNumbers(dir string) ([]int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var nums []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		nums = append(nums, n)
	}
	slices.Sort(nums)
	return nums, nil
}

// Children returns the children of process pid: the union of
// /proc/PID/task/TID/children over its threads (each thread lists the
// children it created), sorted. It needs CONFIG_PROC_CHILDREN; without it
// the files are missing and Children returns the error.
func Children(pid int) ([]int, error) {
	tids, err := Tasks(pid)
	if err != nil {
		return nil, err
	}
	var all []int
	for _, tid := range tids {
		path := TaskPath(pid, tid, "children")
		b, err := readPath(path)
		if errors.Is(err, fs.ErrNotExist) && tid != pid {
			continue // the thread exited since Tasks listed it
		}
		if err != nil {
			return nil, err
		}
		kids, err := ParseChildren(b)
		if err != nil {
			return nil, withPath(err, path)
		}
		all = append(all, kids...)
	}
	slices.Sort(all)
	return slices.Compact(all), nil
}

// ParseChildren parses a children file: PIDs separated by spaces.
func ParseChildren(b []byte) ([]int, error) {
	var pids []int
	for _, f := range bytes.Fields(b) {
		pid, err := strconv.Atoi(string(f))
		if err != nil {
			return nil, &ParseError{File: "children", Err: err}
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// ReadPersonality reads /proc/PID/personality.
func ReadPersonality(pid int) (uint32, error) {
	b, path, err := read(pid, "personality")
	if err != nil {
		return 0, err
	}
	p, err := ParsePersonality(b)
	return p, withPath(err, path)
}

// ParsePersonality parses a personality file: one hexadecimal number.
func ParsePersonality(b []byte) (uint32, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 16, 32)
	if err != nil {
		return 0, &ParseError{File: "personality", Err: err}
	}
	return uint32(v), nil
}

// Readlink reads the symbolic link /proc/PID/name (exe, cwd, root, fd/N)
// exactly as the kernel says it, " (deleted)" suffix included.
func Readlink(pid int, name string) (string, error) {
	return os.Readlink(Path(pid, name))
}
