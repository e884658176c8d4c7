package files

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procRoot is where procfs is mounted.
const procRoot = "/proc"

// procPath is the /proc link through which u reaches its file:
// fd/N, map_files/START-END or exe.
func procPath(u Use) string {
	dir := filepath.Join(procRoot, strconv.Itoa(u.PID))
	switch u.Kind {
	case UseFd:
		return filepath.Join(dir, "fd", strconv.Itoa(u.Fd))
	case UseMapping:
		return filepath.Join(dir, "map_files", mapRange(u.Start, u.End))
	case UseExe:
		return filepath.Join(dir, "exe")
	}
	return dir
}

// startTime reads the start time of task pid (clock ticks after boot).
func startTime(pid int) (uint64, error) {
	path := filepath.Join(procRoot, strconv.Itoa(pid), "stat")
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	t, err := parseStartTime(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// parseStartTime returns field 22 (starttime) of a /proc/PID/stat line.
// The command name, field 2, is in parentheses and may hold spaces and
// parentheses itself, so fields are counted after the last ')'.
func parseStartTime(b []byte) (uint64, error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("no command name in stat")
	}
	fields := strings.Fields(s[i+1:])
	const idx = 22 - 3 // fields after the name start at field 3
	if len(fields) <= idx {
		return 0, fmt.Errorf("stat has %d fields, want at least 22", len(fields)+2)
	}
	t, err := strconv.ParseUint(fields[idx], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad start time in stat: %w", err)
	}
	return t, nil
}
