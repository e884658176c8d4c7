package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ckpt/ckpt/lib/image"
)

// ReadTimers returns the POSIX timers (timer_create) of pid from
// /proc/PID/timers, in ID order, without their times (only the task can
// tell those: timer_gettime). The file needs CONFIG_CHECKPOINT_RESTORE.
func ReadTimers(pid int) ([]image.PosixTimer, error) {
	b, path, err := read(pid, "timers")
	if err != nil {
		return nil, err
	}
	t, err := ParseTimers(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// notifyKinds are the sigev_notify names /proc/PID/timers prints.
var notifyKinds = map[string]int{
	"signal": image.SigevSignal,
	"none":   image.SigevNone,
	"thread": image.SigevThread,
}

// ParseTimers parses the text of /proc/PID/timers: per timer, the lines
// "ID: N", "signal: SIGNO/VALUE" (VALUE in hex), "notify: KIND/pid.N" or
// "KIND/tid.N" (SIGEV_THREAD_ID), and "ClockID: N".
func ParseTimers(b []byte) ([]image.PosixTimer, error) {
	var out []image.PosixTimer
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		key, val, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			return nil, fmt.Errorf("timers line %d: %q: no key", n, sc.Text())
		}
		if key == "ID" {
			out = append(out, image.PosixTimer{})
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("timers line %d: %s before the first ID", n, key)
		}
		if err := timerField(&out[len(out)-1], key, val); err != nil {
			return nil, fmt.Errorf("timers line %d: %s: %w", n, key, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b image.PosixTimer) int { return a.ID - b.ID })
	return out, nil
}

func timerField(t *image.PosixTimer, key, val string) error {
	var err error
	switch key {
	case "ID":
		t.ID, err = strconv.Atoi(val)
	case "ClockID":
		t.Clock, err = strconv.Atoi(val)
	case "signal":
		signo, value, ok := strings.Cut(val, "/")
		if !ok {
			return fmt.Errorf("%q: want SIGNO/VALUE", val)
		}
		if t.Signo, err = strconv.Atoi(signo); err == nil {
			t.SigValue, err = strconv.ParseUint(value, 16, 64)
		}
	case "notify":
		return timerNotify(t, val)
	}
	return err
}

func timerNotify(t *image.PosixTimer, val string) error {
	kind, target, ok := strings.Cut(val, "/")
	notify, known := notifyKinds[kind]
	if !ok || !known {
		return fmt.Errorf("%q: unknown notification", val)
	}
	who, id, ok := strings.Cut(target, ".")
	n, err := strconv.Atoi(id)
	if !ok || err != nil || (who != "pid" && who != "tid") {
		return fmt.Errorf("%q: want pid.N or tid.N after the kind", val)
	}
	t.Notify = notify
	if who == "tid" {
		t.Notify |= image.SigevThreadID
		t.TID = n
	}
	return nil
}
