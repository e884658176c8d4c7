package files

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// These tests resolve eventfds, signalfds, timerfds and epolls that the
// test process itself holds.

// anonFds makes fd records of the test process for fds, as ckpt-scan
// would.
func anonFds(t *testing.T, fds ...int) []*image.Fd {
	t.Helper()
	var out []*image.Fd
	for _, n := range fds {
		u := Use{Kind: UseFd, PID: os.Getpid(), Fd: n}
		st, err := statFollow(procPath(u))
		if err != nil {
			t.Fatal(err)
		}
		link, err := readlink(procPath(u))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &image.Fd{PID: u.PID, Fd: n, Link: link, Dev: st.Dev, Ino: st.Ino,
			Mode: st.Mode})
	}
	return out
}

func closeAll(t *testing.T, fds ...int) {
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
}

func epollAdd(t *testing.T, ep, fd int, events uint32, data uint64) {
	t.Helper()
	// x/sys/unix splits the 8 bytes of data into Fd and Pad.
	ev := unix.EpollEvent{Events: events, Fd: int32(data), Pad: int32(data >> 32)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		t.Fatal(err)
	}
}

func TestResolveAnon(t *testing.T) {
	ev, err := unix.Eventfd(7, unix.EFD_SEMAPHORE|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	evDup, err := unix.Dup(ev)
	if err != nil {
		t.Fatal(err)
	}
	ev2, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	var mask unix.Sigset_t
	mask.Val[0] = 1<<(unix.SIGUSR2-1) | 1<<(unix.SIGWINCH-1)
	sfd, err := unix.Signalfd(-1, &mask, unix.SFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, 0)
	if err != nil {
		t.Fatal(err)
	}
	spec := unix.ItimerSpec{Value: unix.Timespec{Sec: 100}, Interval: unix.Timespec{Nsec: 5e6}}
	if err := unix.TimerfdSettime(tfd, 0, &spec, nil); err != nil {
		t.Fatal(err)
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	closeAll(t, ev, evDup, ev2, sfd, tfd, ep)
	epollAdd(t, ep, ev, unix.EPOLLIN, 11)
	epollAdd(t, ep, sfd, unix.EPOLLIN|unix.EPOLLET, 0xfeedface00000022)
	epollAdd(t, ep, tfd, unix.EPOLLIN, 33)

	fds := anonFds(t, ev, evDup, ev2, sfd, tfd, ep)
	res, err := Resolve(context.Background(), []*image.Task{self(t)}, fds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	files := map[int]image.File{}
	for _, f := range res.Files {
		files[f.ID] = f
	}
	file := func(i int) image.File { return files[fds[i].FileID] }

	if e := file(0).Eventfd; file(0).Kind != image.FileEventfd || e == nil ||
		*e != (image.Eventfd{Count: 7, Semaphore: true}) {
		t.Errorf("eventfd: %+v %+v", file(0), e)
	}
	if fds[1].FileID != fds[0].FileID || !fds[1].Shared || fds[1].Shares != ev {
		t.Errorf("dup of the eventfd: %+v, want it on file %d sharing fd %d", fds[1],
			fds[0].FileID, ev)
	}
	if e := file(2).Eventfd; fds[2].FileID == fds[0].FileID || e == nil || *e != (image.Eventfd{}) {
		t.Errorf("second eventfd: %+v %+v", file(2), e)
	}
	if s := file(3).Signalfd; file(3).Kind != image.FileSignalfd || s == nil ||
		s.Mask != mask.Val[0] {
		t.Errorf("signalfd: %+v %+v, want mask %#x", file(3), s, mask.Val[0])
	}
	tf := file(4).Timerfd
	if file(4).Kind != image.FileTimerfd || tf == nil || tf.Clock != unix.CLOCK_MONOTONIC ||
		tf.Interval != 5e6 || tf.Value <= 90e9 || tf.Value > 100e9 || tf.Ticks != 0 ||
		tf.Expires != 0 {
		t.Errorf("timerfd: %+v %+v", file(4), tf)
	}
	want := map[int]image.EpollTarget{
		ev:  {Fd: ev, Events: unix.EPOLLIN | unix.EPOLLERR | unix.EPOLLHUP, Data: 11},
		sfd: {Fd: sfd, Events: unix.EPOLLIN | unix.EPOLLERR | unix.EPOLLHUP | unix.EPOLLET, Data: 0xfeedface00000022},
		tfd: {Fd: tfd, Events: unix.EPOLLIN | unix.EPOLLERR | unix.EPOLLHUP, Data: 33},
	}
	epf := file(5)
	if epf.Kind != image.FileEpoll || epf.Epoll == nil || epf.Epoll.PID != os.Getpid() ||
		len(epf.Epoll.Targets) != len(want) {
		t.Fatalf("epoll: %+v %+v", epf, epf.Epoll)
	}
	fileOf := map[int]int{ev: fds[0].FileID, sfd: fds[3].FileID, tfd: fds[4].FileID}
	for _, got := range epf.Epoll.Targets {
		w := want[got.Fd]
		w.FileID, w.Dev, w.Ino = fileOf[got.Fd], fds[0].Dev, fds[0].Ino
		if got != w {
			t.Errorf("epoll target: got %+v, want %+v", got, w)
		}
	}
	if n := res.Summary.Files; n[image.FileEventfd] != 2 || n[image.FileSignalfd] != 1 ||
		n[image.FileTimerfd] != 1 || n[image.FileEpoll] != 1 {
		t.Errorf("summary: %v", n)
	}
}

func TestResolveTimerfdAbsolute(t *testing.T) {
	tfd, err := unix.TimerfdCreate(unix.CLOCK_REALTIME, 0)
	if err != nil {
		t.Fatal(err)
	}
	closeAll(t, tfd)
	now, err := clockNow(unix.CLOCK_REALTIME)
	if err != nil {
		t.Fatal(err)
	}
	at := now + 500e9
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(at)}
	if err := unix.TimerfdSettime(tfd, unix.TFD_TIMER_ABSTIME, &spec, nil); err != nil {
		t.Fatal(err)
	}
	fds := anonFds(t, tfd)
	res, err := Resolve(context.Background(), []*image.Task{self(t)}, fds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tf := res.Files[0].Timerfd
	if tf.Flags != image.TimerAbstime || tf.Expires < at-1e8 || tf.Expires > at+1e8 {
		t.Errorf("timerfd %+v: want expiry %d", tf, at)
	}
}

// An epoll target whose fd was closed after EPOLL_CTL_ADD, while a dup
// keeps the file open, is refused by name; so is one whose number was
// reused for another file of the same kind.
func TestResolveEpollTargetGone(t *testing.T) {
	for _, reuse := range []bool{false, true} {
		ev, _ := unix.Eventfd(0, 0)
		keep, _ := unix.Dup(ev)
		ep, err := unix.EpollCreate1(0)
		if err != nil {
			t.Fatal(err)
		}
		closeAll(t, keep, ep)
		epollAdd(t, ep, ev, unix.EPOLLIN, 5)
		unix.Close(ev)
		fds := []int{keep, ep}
		if reuse {
			other, _ := unix.Eventfd(0, 0)
			if other != ev {
				t.Fatalf("eventfd got fd %d, want the closed %d again", other, ev)
			}
			closeAll(t, other)
			fds = append(fds, other)
		}
		_, err = Resolve(context.Background(), []*image.Task{self(t)}, anonFds(t, fds...),
			Options{})
		var fe *Error
		if !errors.As(err, &fe) || !errors.Is(err, ErrNotSupported) || fe.Use.Fd != ep ||
			!strings.Contains(err.Error(), "is no longer open") {
			t.Errorf("reuse %v: got %v, want epoll fd %d refused for its target", reuse, err, ep)
		}
	}
}
