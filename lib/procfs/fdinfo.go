package procfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Fdinfo holds the common lines of /proc/PID/fdinfo/N.
type Fdinfo struct {
	Pos   int64  // file offset
	Flags int    // open flags (O_*), O_CLOEXEC included
	MntID int    // id of the mount the file was opened through (Linux 3.15+)
	Ino   uint64 // inode number (Linux 5.14+; 0 when absent)
	// Locks are the "lock:" lines: the file locks (flock, POSIX, OFD,
	// leases) held through this descriptor's file, as /proc/locks says
	// them.
	Locks []string
}

// ReadFdinfo reads /proc/PID/fdinfo/FD.
func ReadFdinfo(pid, fd int) (*Fdinfo, error) {
	b, path, err := read(pid, "fdinfo/"+strconv.Itoa(fd))
	if err != nil {
		return nil, err
	}
	fi, err := ParseFdinfo(bytes.NewReader(b))
	return fi, withPath(err, path)
}

// ParseFdinfo parses an fdinfo file. It reads pos, flags (octal), mnt_id
// and ino, and skips the lines particular to a kind of file (eventfd,
// epoll, inotify, ...). pos and flags must be present.
func ParseFdinfo(r io.Reader) (*Fdinfo, error) {
	fi := &Fdinfo{}
	var havePos, haveFlags bool
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		key, val, _ := strings.Cut(sc.Text(), ":")
		val = strings.TrimSpace(val)
		var err error
		switch key {
		case "pos":
			fi.Pos, err = strconv.ParseInt(val, 10, 64)
			havePos = true
		case "flags":
			var v uint64
			v, err = strconv.ParseUint(val, 8, 32)
			fi.Flags = int(v)
			haveFlags = true
		case "mnt_id":
			fi.MntID, err = strconv.Atoi(val)
		case "ino":
			fi.Ino, err = strconv.ParseUint(val, 10, 64)
		case "lock":
			fi.Locks = append(fi.Locks, val)
		}
		if err != nil {
			return nil, &ParseError{File: "fdinfo", Line: line, Err: fmt.Errorf("%s: %w", key, err)}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{File: "fdinfo", Err: err}
	}
	if !havePos || !haveFlags {
		return nil, &ParseError{File: "fdinfo", Err: errors.New("no pos or flags line")}
	}
	return fi, nil
}
