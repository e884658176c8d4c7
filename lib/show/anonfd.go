package show

import (
	"fmt"
	"strings"
	"time"

	"github.com/ckpt/ckpt/lib/image"
)

// anonDetails says what the state of an eventfd, signalfd, timerfd or
// epoll File is.
func anonDetails(f *image.File) []string {
	switch {
	case f.Eventfd != nil:
		d := []string{fmt.Sprintf("count %d", f.Eventfd.Count)}
		if f.Eventfd.Semaphore {
			d = append(d, "semaphore")
		}
		return d
	case f.Signalfd != nil:
		var sigs []string
		for sig := 1; sig <= 64; sig++ {
			if f.Signalfd.Mask&(1<<(sig-1)) != 0 {
				sigs = append(sigs, fmt.Sprint(sig))
			}
		}
		return []string{"signals " + strings.Join(sigs, " ")}
	case f.Timerfd != nil:
		return timerDetails(f.Timerfd)
	case f.Epoll != nil:
		var ts []string
		for _, t := range f.Epoll.Targets {
			ts = append(ts, fmt.Sprintf("fd %d events %#x data %#x", t.Fd, t.Events, t.Data))
		}
		return []string{fmt.Sprintf("%d targets: %s", len(ts), strings.Join(ts, "; "))}
	}
	return nil
}

func timerDetails(t *image.Timerfd) []string {
	d := []string{fmt.Sprintf("clock %d", t.Clock)}
	switch {
	case t.Expires != 0:
		d = append(d, "at "+time.Unix(0, t.Expires).UTC().Format(time.RFC3339Nano))
	case t.Value != 0:
		d = append(d, "next in "+time.Duration(t.Value).String())
	case t.Interval == 0 && t.Ticks != 0:
		d = append(d, "expired")
	case t.Interval == 0:
		d = append(d, "disarmed")
	}
	if t.Interval != 0 {
		d = append(d, "every "+time.Duration(t.Interval).String())
	}
	if t.Ticks != 0 {
		d = append(d, fmt.Sprintf("%d unread", t.Ticks))
	}
	return d
}
