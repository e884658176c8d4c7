package files

import (
	"errors"
	"fmt"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/procfs"
	"golang.org/x/sys/unix"
)

// Eventfds, signalfds, timerfds and epolls all live on one inode of the
// kernel's anon inode filesystem, so they cannot be told apart by device
// and inode as other files are. Each of their open file descriptions
// becomes one File instead, with the state fdinfo shows for it; fds that
// share a description (kcmp KCMP_FILE, or the same eventfd-id) share the
// File.

// anonKinds are the /proc/PID/fd links of the anon inodes whose state is
// saved, and their File kinds. Other anon inodes are refused by classify.
var anonKinds = map[string]string{
	"anon_inode:[eventfd]":   image.FileEventfd,
	"anon_inode:[signalfd]":  image.FileSignalfd,
	"anon_inode:[timerfd]":   image.FileTimerfd,
	"anon_inode:[eventpoll]": image.FileEpoll,
}

// isAnon reports whether link names an anon inode whose state is saved.
func isAnon(link string) bool {
	_, ok := anonKinds[link]
	return ok
}

// anonDesc is one open file description of an anon inode.
type anonDesc struct {
	file      image.File
	uses      []*usage // the fds on it, the first one's fdinfo read
	eventfdID int      // the kernel's eventfd-id, -1 when not shown or not an eventfd
}

// anonFiles gathers the anon descriptions in order of first use.
type anonFiles struct {
	descs []*anonDesc
}

// addAnon is add for an fd on an anon inode: it stats and reads the fd
// through /proc and files it under its open file description, reading
// the state of a description seen for the first time.
func (r *resolver) addAnon(u Use, name string, want devIno, id *int) error {
	link := procPath(u)
	live, err := statFollow(link)
	if err != nil {
		return &Error{Use: u, Path: name, Err: err}
	}
	now, err := readlink(link)
	if err != nil {
		return &Error{Use: u, Path: name, Err: err}
	}
	if now != name || live.Dev != want.dev || live.Ino != want.ino {
		return &Error{Use: u, Path: name, Err: fmt.Errorf("the fd is %s (%s/%d) now: %w",
			now, devString(live.Dev), live.Ino, ErrChanged)}
	}
	us := &usage{Use: u, names: []string{now}, live: live, id: id}

	d := &anonDesc{uses: []*usage{us}, eventfdID: -1}
	d.file = image.File{Kind: anonKinds[now], Path: now, Dev: live.Dev, Ino: live.Ino,
		Mode: live.Mode}
	if d.file.Kind == image.FileEventfd {
		// Its id tells it from the others without kcmp.
		if err := readAnonState(d, u); err != nil {
			return &Error{Use: u, Path: name, Err: err}
		}
	}
	same, err := r.anon.find(d)
	if err != nil {
		return &Error{Use: u, Path: name, Err: err}
	}
	if same != nil {
		same.uses = append(same.uses, us)
		return nil
	}

	if d.file.Kind != image.FileEventfd {
		if err := readAnonState(d, u); err != nil {
			return &Error{Use: u, Path: name, Err: err}
		}
	}
	r.anon.descs = append(r.anon.descs, d)
	return nil
}

// find returns the description already seen that the one fd of d is on,
// or nil: the eventfd with the same eventfd-id, or the description kcmp
// finds the same.
func (a *anonFiles) find(d *anonDesc) (*anonDesc, error) {
	us := d.uses[0]
	for _, old := range a.descs {
		if old.file.Kind != d.file.Kind {
			continue
		}
		if d.eventfdID >= 0 {
			if old.eventfdID == d.eventfdID {
				return old, nil
			}
			continue
		}
		first := old.uses[0]
		same, err := sameFile(first.PID, first.Fd, us.PID, us.Fd)
		if err != nil {
			return nil, fmt.Errorf("compare with pid %d fd %d: %w", first.PID, first.Fd, err)
		}
		if same {
			return old, nil
		}
	}
	return nil, nil
}

// readAnonState reads the state of a description from the fdinfo of u.
func readAnonState(d *anonDesc, u Use) error {
	switch d.file.Kind {
	case image.FileEventfd:
		e, err := procfs.ReadEventfd(u.PID, u.Fd)
		if err != nil {
			return err
		}
		if !e.SemaphoreKnown {
			return fmt.Errorf("eventfds on a kernel whose fdinfo lacks eventfd-semaphore "+
				"(whether it is EFD_SEMAPHORE) are %w", ErrNotSupported)
		}
		d.eventfdID = e.ID
		d.file.Eventfd = &image.Eventfd{Count: e.Count, Semaphore: e.Semaphore}
	case image.FileSignalfd:
		s, err := procfs.ReadSignalfd(u.PID, u.Fd)
		if err != nil {
			return err
		}
		d.file.Signalfd = &image.Signalfd{Mask: s.Mask}
	case image.FileTimerfd:
		return readTimerfd(d, u)
	case image.FileEpoll:
		return readEpoll(d, u)
	}
	return nil
}

// readTimerfd reads a timerfd. For an absolute timer on the real-time
// clock it also notes the date of its next expiry: the clock is read
// first, so that date is at most the time it takes to read fdinfo early.
func readTimerfd(d *anonDesc, u Use) error {
	now, err := clockNow(unix.CLOCK_REALTIME)
	if err != nil {
		return err
	}
	t, err := procfs.ReadTimerfd(u.PID, u.Fd)
	if err != nil {
		return err
	}
	tf := &image.Timerfd{Clock: t.Clock, Flags: t.Flags, Ticks: t.Ticks, Value: t.Value,
		Interval: t.Interval}
	realtime := t.Clock == unix.CLOCK_REALTIME || t.Clock == unix.CLOCK_REALTIME_ALARM
	if t.Flags&image.TimerAbstime != 0 && realtime && t.Value > 0 {
		tf.Expires = now + t.Value
	}
	d.file.Timerfd = tf
	return nil
}

// readEpoll reads an epoll's interest list and checks that each target
// is the file now open at its fd number in the task: an entry outlives
// the fd it was added with when that fd is closed while another one
// keeps the file open, and nothing could add it again at restore.
func readEpoll(d *anonDesc, u Use) error {
	targets, err := procfs.ReadEpoll(u.PID, u.Fd)
	if err != nil {
		return err
	}
	ep := &image.Epoll{PID: u.PID}
	seen := map[int]int{} // entries per fd number so far: kcmp's toff
	for _, t := range targets {
		if err := checkTarget(u, t, seen[t.Fd]); err != nil {
			return err
		}
		seen[t.Fd]++
		ep.Targets = append(ep.Targets, image.EpollTarget{Fd: t.Fd, Events: t.Events,
			Data: t.Data, Dev: t.Dev, Ino: t.Ino})
	}
	d.file.Epoll = ep
	return nil
}

// checkTarget checks that the target of epoll u added with fd number
// t.Fd, the toff-th entry with that number, is the file at t.Fd.
func checkTarget(u Use, t procfs.EpollTarget, toff int) error {
	gone := fmt.Errorf("epoll target fd %d (inode %s/%d, data %#x) is no longer open in "+
		"the task: it was closed after EPOLL_CTL_ADD while another fd keeps its file open; "+
		"such targets are %w", t.Fd, devString(t.Dev), t.Ino, t.Data, ErrNotSupported)
	st, err := statFollow(procPath(Use{Kind: UseFd, PID: u.PID, Fd: t.Fd}))
	if errors.Is(err, unix.ENOENT) {
		return gone
	}
	if err != nil {
		return fmt.Errorf("epoll target fd %d: %w", t.Fd, err)
	}
	// Only the inode is compared: on btrfs and overlayfs stat gives another
	// device than the superblock's, which fdinfo shows.
	if st.Ino != t.Ino {
		return gone
	}
	same, err := sameEpollTarget(u.PID, u.Fd, t.Fd, toff)
	if err != nil {
		return fmt.Errorf("epoll target fd %d: %w", t.Fd, err)
	}
	if !same {
		return gone
	}
	return nil
}

// resolveAnon gives every anon description its File ID, after those of
// files, sets the ID in the records that use it, and then points each
// epoll target at the File open at its fd number.
func (r *resolver) resolveAnon(files []image.File, fds []*image.Fd) ([]image.File, error) {
	first := len(files)
	for _, d := range r.anon.descs {
		d.file.ID = len(files) + 1
		for _, us := range d.uses {
			*us.id = d.file.ID
		}
		files = append(files, d.file)
		r.sum.Files[d.file.Kind]++
	}

	byFd := map[[2]int]int{}
	for _, fd := range fds {
		byFd[[2]int{fd.PID, fd.Fd}] = fd.FileID
	}
	for i, d := range r.anon.descs {
		ep := files[first+i].Epoll
		if ep == nil {
			continue
		}
		for j := range ep.Targets {
			t := &ep.Targets[j]
			t.FileID = byFd[[2]int{ep.PID, t.Fd}]
			if t.FileID == 0 {
				u := d.uses[0].Use
				return nil, &Error{Use: u, Path: d.file.Path, Err: fmt.Errorf(
					"epoll target fd %d has no fd record", t.Fd)}
			}
		}
	}
	return files, nil
}
