package show

import (
	"strings"
	"testing"

	"github.com/ckpt/ckpt/lib/image"
)

func TestAnonDetails(t *testing.T) {
	tests := []struct {
		f    image.File
		want string
	}{
		{image.File{Eventfd: &image.Eventfd{Count: 3, Semaphore: true}}, "count 3, semaphore"},
		{image.File{Signalfd: &image.Signalfd{Mask: 1<<9 | 1<<35}}, "signals 10 36"},
		{image.File{Timerfd: &image.Timerfd{Clock: 1, Value: 1.5e9, Interval: 1e8}},
			"clock 1, next in 1.5s, every 100ms"},
		{image.File{Timerfd: &image.Timerfd{Clock: 7, Ticks: 1}}, "clock 7, expired, 1 unread"},
		{image.File{Timerfd: &image.Timerfd{Flags: 1, Expires: 1e18}},
			"clock 0, at 2001-09-09T01:46:40Z"},
		{image.File{Epoll: &image.Epoll{Targets: []image.EpollTarget{
			{Fd: 3, Events: 0x19, Data: 0x11}, {Fd: 5, Events: 0x80000019, Data: 2}}}},
			"2 targets: fd 3 events 0x19 data 0x11; fd 5 events 0x80000019 data 0x2"},
		{image.File{Kind: image.FileLinked}, ""},
	}
	for _, tt := range tests {
		if got := strings.Join(anonDetails(&tt.f), ", "); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}
