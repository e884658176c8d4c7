package procfs

import (
	"errors"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

// The captures in testdata/anonfd come from a C program that made two
// eventfds (one EFD_SEMAPHORE), a signalfd on SIGUSR1, SIGRTMIN+2 and
// SIGRTMAX, four timerfds (armed with an interval, expired and not read,
// absolute with TFD_TIMER_CANCEL_ON_SET, disarmed) and an epoll watching
// some of them, one fd number twice: added, closed, reused, added again.

func TestParseEventfd(t *testing.T) {
	tests := []struct {
		file string
		want Eventfd
	}{
		{"anonfd/eventfd", Eventfd{Count: 0x123456789a, ID: 1, SemaphoreKnown: true}},
		{"anonfd/eventfd.semaphore", Eventfd{Count: 3, ID: 2, Semaphore: true,
			SemaphoreKnown: true}},
	}
	for _, tt := range tests {
		got, err := ParseEventfd(testdata(t, tt.file))
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if *got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.file, *got, tt.want)
		}
	}
}

func TestParseEventfdOldKernel(t *testing.T) {
	got, err := ParseEventfd([]byte("pos:\t0\nflags:\t02\neventfd-count:                f\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Eventfd{Count: 15, ID: -1}); *got != want {
		t.Errorf("got %+v, want %+v", *got, want)
	}
}

func TestParseSignalfd(t *testing.T) {
	got, err := ParseSignalfd(testdata(t, "anonfd/signalfd"))
	if err != nil {
		t.Fatal(err)
	}
	sigrtmax := 64
	want := uint64(1)<<(unix.SIGUSR1-1) | 1<<(34+2-1) | 1<<(sigrtmax-1)
	if got.Mask != want {
		t.Errorf("mask %#x, want %#x", got.Mask, want)
	}
}

func TestParseTimerfd(t *testing.T) {
	tests := []struct {
		file string
		want Timerfd
	}{
		{"anonfd/timerfd", Timerfd{Clock: unix.CLOCK_MONOTONIC, Value: 1_899_512_907,
			Interval: 50_000_000}},
		{"anonfd/timerfd.expired", Timerfd{Clock: unix.CLOCK_BOOTTIME, Ticks: 1,
			Interval: 10_000_000}},
		{"anonfd/timerfd.abstime", Timerfd{Clock: unix.CLOCK_REALTIME, Flags: 3,
			Value: 99_541_462_714}},
		{"anonfd/timerfd.disarmed", Timerfd{Clock: unix.CLOCK_MONOTONIC}},
	}
	for _, tt := range tests {
		got, err := ParseTimerfd(testdata(t, tt.file))
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if *got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.file, *got, tt.want)
		}
	}
}

func TestParseEpoll(t *testing.T) {
	anon := unix.Mkdev(0, 16)
	want := []EpollTarget{
		{Fd: 12, Events: 0x19, Data: 5, Ino: 1039, Dev: anon},
		{Fd: 12, Events: 0x19, Data: 6, Ino: 1039, Dev: anon},
		{Fd: 7, Events: unix.EPOLLONESHOT, Data: 3, Ino: 1039, Dev: anon},
		{Fd: 5, Events: unix.EPOLLET | 0x19, Data: 0xdeadbeef22222222, Ino: 1039, Dev: anon},
		{Fd: 3, Events: 0x19, Data: 0x1111, Ino: 1039, Dev: anon},
	}
	got, err := ParseEpoll(testdata(t, "anonfd/epoll"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	got, err = ParseEpoll(testdata(t, "anonfd/epoll.empty"))
	if err != nil || len(got) != 0 {
		t.Errorf("empty epoll: %+v, %v", got, err)
	}
}

// A target on a disk: the kernel prints its device with the minor in the
// low 20 bits, stat(2) splits it.
func TestParseEpollDevice(t *testing.T) {
	line := "tfd:       10 events:       1d data:      7f00aa551234  pos:12 ino:1a2b sdev:800001\n"
	got, err := ParseEpoll([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := []EpollTarget{{Fd: 10, Events: 0x1d, Data: 0x7f00aa551234, Pos: 12, Ino: 0x1a2b,
		Dev: unix.Mkdev(8, 1)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseAnonFdinfoErrors(t *testing.T) {
	tests := []struct {
		name  string
		parse func([]byte) error
		in    string
	}{
		{"eventfd without count", func(b []byte) error { _, err := ParseEventfd(b); return err },
			"pos:\t0\nflags:\t02\n"},
		{"eventfd count not hex", func(b []byte) error { _, err := ParseEventfd(b); return err },
			"eventfd-count: zz\n"},
		{"eventfd semaphore 2", func(b []byte) error { _, err := ParseEventfd(b); return err },
			"eventfd-count: 1\neventfd-semaphore: 2\n"},
		{"signalfd without mask", func(b []byte) error { _, err := ParseSignalfd(b); return err },
			"pos:\t0\n"},
		{"timerfd without interval", func(b []byte) error { _, err := ParseTimerfd(b); return err },
			"clockid: 1\nticks: 0\nsettime flags: 00\nit_value: (0, 0)\n"},
		{"timerfd nanoseconds too big", func(b []byte) error { _, err := ParseTimerfd(b); return err },
			"clockid: 1\nticks: 0\nsettime flags: 00\nit_value: (0, 1000000000)\nit_interval: (0, 0)\n"},
		{"timerfd seconds too big", func(b []byte) error { _, err := ParseTimerfd(b); return err },
			"clockid: 1\nticks: 0\nsettime flags: 00\nit_value: (9223372036, 999999999)\nit_interval: (0, 0)\n"},
		{"timerfd value not a pair", func(b []byte) error { _, err := ParseTimerfd(b); return err },
			"clockid: 1\nticks: 0\nsettime flags: 00\nit_value: 5\nit_interval: (0, 0)\n"},
		{"epoll without sdev", func(b []byte) error { _, err := ParseEpoll(b); return err },
			"tfd:        5 events:       19 data:                7  pos:0 ino:40f\n"},
		{"epoll events not hex", func(b []byte) error { _, err := ParseEpoll(b); return err },
			"tfd:        5 events: x data: 7  pos:0 ino:40f sdev:10\n"},
	}
	for _, tt := range tests {
		err := tt.parse([]byte(tt.in))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%s: got %v, want a ParseError", tt.name, err)
		}
	}
}
