package procfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ckpt/ckpt/lib/image"
)

// Status holds the fields of /proc/PID/status that ckpt uses.
type Status struct {
	Name      string // escaped by the kernel; Stat.Comm has the raw bytes
	Umask     uint32 // Linux 4.7+; 0 when absent
	State     byte
	Tgid      int
	PID       int
	PPID      int
	TracerPID int       // 0 when the task is not traced
	UID       [4]uint32 // real, effective, saved, filesystem
	GID       [4]uint32
	Groups    []uint32
	Threads   int
	Kthread   bool // Linux 6.x "Kthread:" line; see also Stat.KernelThread
	SigPnd    uint64
	ShdPnd    uint64
	SigBlk    uint64
	SigIgn    uint64
	SigCgt    uint64
	CapInh    uint64
	CapPrm    uint64
	CapEff    uint64
	CapBnd    uint64
	CapAmb    uint64
	// NoNewPrivs is the no_new_privs bit (Linux 4.10+).
	NoNewPrivs bool
	// Seccomp is the seccomp mode: 0 none, 1 strict, 2 filter.
	Seccomp int
}

// Creds returns the credentials part of the status.
func (s *Status) Creds() image.Creds {
	return image.Creds{
		UID:        s.UID,
		GID:        s.GID,
		Groups:     s.Groups,
		CapInh:     s.CapInh,
		CapPrm:     s.CapPrm,
		CapEff:     s.CapEff,
		CapBnd:     s.CapBnd,
		CapAmb:     s.CapAmb,
		NoNewPrivs: s.NoNewPrivs,
		Seccomp:    s.Seccomp,
	}
}

// ReadStatus reads /proc/PID/status.
func ReadStatus(pid int) (*Status, error) {
	b, path, err := read(pid, "status")
	if err != nil {
		return nil, err
	}
	s, err := ParseStatus(bytes.NewReader(b))
	return s, withPath(err, path)
}

// ParseStatus parses a status file: lines of "Key:<tab>value". Keys it
// does not use are skipped; Name, Tgid, Pid, Uid and Gid must be present.
func ParseStatus(r io.Reader) (*Status, error) {
	s := &Status{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			return nil, &ParseError{File: "status", Line: line, Err: errors.New("no colon")}
		}
		val = strings.TrimSpace(val)
		if err := s.set(key, val); err != nil {
			return nil, &ParseError{File: "status", Line: line, Err: fmt.Errorf("%s: %w", key, err)}
		}
		seen[key] = true
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{File: "status", Err: err}
	}
	for _, key := range []string{"Name", "Tgid", "Pid", "Uid", "Gid"} {
		if !seen[key] {
			return nil, &ParseError{File: "status", Err: fmt.Errorf("no %s line", key)}
		}
	}
	return s, nil
}

// set stores the value of one status line.
func (s *Status) set(key, val string) error {
	var err error
	switch key {
	case "Name":
		s.Name = val
	case "Umask":
		var v uint64
		v, err = strconv.ParseUint(val, 8, 32)
		s.Umask = uint32(v)
	case "State":
		if val == "" {
			return errors.New("empty")
		}
		s.State = val[0]
	case "Tgid":
		s.Tgid, err = strconv.Atoi(val)
	case "Pid":
		s.PID, err = strconv.Atoi(val)
	case "PPid":
		s.PPID, err = strconv.Atoi(val)
	case "TracerPid":
		s.TracerPID, err = strconv.Atoi(val)
	case "Threads":
		s.Threads, err = strconv.Atoi(val)
	case "Uid":
		err = parseIDs(val, s.UID[:])
	case "Gid":
		err = parseIDs(val, s.GID[:])
	case "Groups":
		s.Groups, err = parseGroups(val)
	case "Kthread":
		s.Kthread = val == "1"
	case "NoNewPrivs":
		s.NoNewPrivs = val == "1"
	case "Seccomp":
		s.Seccomp, err = strconv.Atoi(val)
	default:
		if p := s.hexField(key); p != nil {
			*p, err = strconv.ParseUint(val, 16, 64)
		}
	}
	return err
}

// hexField returns where a hexadecimal mask line is stored, or nil.
func (s *Status) hexField(key string) *uint64 {
	switch key {
	case "SigPnd":
		return &s.SigPnd
	case "ShdPnd":
		return &s.ShdPnd
	case "SigBlk":
		return &s.SigBlk
	case "SigIgn":
		return &s.SigIgn
	case "SigCgt":
		return &s.SigCgt
	case "CapInh":
		return &s.CapInh
	case "CapPrm":
		return &s.CapPrm
	case "CapEff":
		return &s.CapEff
	case "CapBnd":
		return &s.CapBnd
	case "CapAmb":
		return &s.CapAmb
	}
	return nil
}

// parseIDs parses the four ids of a Uid or Gid line.
func parseIDs(val string, ids []uint32) error {
	f := strings.Fields(val)
	if len(f) != len(ids) {
		return fmt.Errorf("%d ids, want %d", len(f), len(ids))
	}
	for i := range ids {
		v, err := strconv.ParseUint(f[i], 10, 32)
		if err != nil {
			return err
		}
		ids[i] = uint32(v)
	}
	return nil
}

// parseGroups parses the supplementary groups of a Groups line (maybe empty).
func parseGroups(val string) ([]uint32, error) {
	var groups []uint32
	for _, g := range strings.Fields(val) {
		v, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return nil, err
		}
		groups = append(groups, uint32(v))
	}
	return groups, nil
}
