package procfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// Infinity is the value of an "unlimited" limit (RLIM_INFINITY).
const Infinity = ^uint64(0)

// limitNames maps the names in the first column of /proc/PID/limits to
// the RLIMIT_* numbers.
var limitNames = map[string]int{
	"Max cpu time":          unix.RLIMIT_CPU,
	"Max file size":         unix.RLIMIT_FSIZE,
	"Max data size":         unix.RLIMIT_DATA,
	"Max stack size":        unix.RLIMIT_STACK,
	"Max core file size":    unix.RLIMIT_CORE,
	"Max resident set":      unix.RLIMIT_RSS,
	"Max processes":         unix.RLIMIT_NPROC,
	"Max open files":        unix.RLIMIT_NOFILE,
	"Max locked memory":     unix.RLIMIT_MEMLOCK,
	"Max address space":     unix.RLIMIT_AS,
	"Max file locks":        unix.RLIMIT_LOCKS,
	"Max pending signals":   unix.RLIMIT_SIGPENDING,
	"Max msgqueue size":     unix.RLIMIT_MSGQUEUE,
	"Max nice priority":     unix.RLIMIT_NICE,
	"Max realtime priority": unix.RLIMIT_RTPRIO,
	"Max realtime timeout":  unix.RLIMIT_RTTIME,
}

// ReadLimits reads /proc/PID/limits. Unlike prlimit, it needs no
// CAP_SYS_RESOURCE for a process of another user.
func ReadLimits(pid int) ([]image.Rlimit, error) {
	b, path, err := read(pid, "limits")
	if err != nil {
		return nil, err
	}
	l, err := ParseLimits(bytes.NewReader(b))
	return l, withPath(err, path)
}

// ParseLimits parses a limits file: a heading line, then one line per
// limit with its name, soft and hard values ("unlimited" or a number in
// the kernel's own unit) and a unit. The limits come back in RLIMIT_*
// order. A line with a name this package does not know is skipped.
func ParseLimits(r io.Reader) ([]image.Rlimit, error) {
	var limits []image.Rlimit
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if line == 1 {
			if !strings.HasPrefix(text, "Limit ") {
				return nil, &ParseError{File: "limits", Line: line, Err: errors.New("no heading")}
			}
			continue
		}
		l, ok, err := parseLimit(text)
		if err != nil {
			return nil, &ParseError{File: "limits", Line: line, Err: err}
		}
		if ok {
			limits = append(limits, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{File: "limits", Err: err}
	}
	slices.SortFunc(limits, func(a, b image.Rlimit) int { return a.Resource - b.Resource })
	return limits, nil
}

// parseLimit parses one limit line; ok is false for an unknown name.
func parseLimit(text string) (l image.Rlimit, ok bool, err error) {
	f := strings.Fields(text)
	// The name is all the words before the first value.
	for i := 1; i < len(f); i++ {
		res, known := limitNames[strings.Join(f[:i], " ")]
		if !known {
			continue
		}
		if len(f) < i+2 {
			return l, false, fmt.Errorf("%s: no soft and hard values", strings.Join(f[:i], " "))
		}
		l.Resource = res
		if l.Cur, err = parseLimitValue(f[i]); err != nil {
			return l, false, err
		}
		if l.Max, err = parseLimitValue(f[i+1]); err != nil {
			return l, false, err
		}
		return l, true, nil
	}
	return l, false, nil
}

func parseLimitValue(s string) (uint64, error) {
	if s == "unlimited" {
		return Infinity, nil
	}
	return strconv.ParseUint(s, 10, 64)
}
