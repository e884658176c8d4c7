package image

// File kinds of anon inodes whose state is saved: files with no path,
// which /proc/PID/fd shows as "anon_inode:[eventfd]" and so on. They all
// share one inode of the kernel's anon inode filesystem, so each File of
// these kinds stands for one open file description (however many fds,
// of one task or several, share it), not for an inode. Restore creates
// each anew with its system call and gives it its state; Dev, Ino and
// Mode are the anon inode's, kept for reference. docs/files.md says what
// comes back and what does not.
const (
	// FileEventfd is an eventfd; its state is File.Eventfd.
	FileEventfd = "eventfd"
	// FileSignalfd is a signalfd; its state is File.Signalfd.
	FileSignalfd = "signalfd"
	// FileTimerfd is a timerfd; its state is File.Timerfd.
	FileTimerfd = "timerfd"
	// FileEpoll is an epoll instance; its interest list is File.Epoll.
	// Restore creates it after every other fd of its task is in place,
	// and adds the targets then.
	FileEpoll = "epoll"
)

// Eventfd is the state of an eventfd File.
type Eventfd struct {
	Count     uint64 `msgpack:"count"`               // the counter
	Semaphore bool   `msgpack:"semaphore,omitempty"` // made with EFD_SEMAPHORE
}

// Signalfd is the state of a signalfd File: the signals it reads.
type Signalfd struct {
	Mask uint64 `msgpack:"mask"` // bit N-1 is signal N
}

// Timer flags of timerfd_settime, as Timerfd.Flags keeps them.
const (
	TimerAbstime     = 1 // TFD_TIMER_ABSTIME
	TimerCancelOnSet = 2 // TFD_TIMER_CANCEL_ON_SET
)

// Timerfd is the state of a timerfd File.
type Timerfd struct {
	Clock int `msgpack:"clock"` // clockid
	// Flags are those of the last timerfd_settime: TimerAbstime,
	// TimerCancelOnSet.
	Flags int `msgpack:"flags"`
	// Ticks counts the expirations not read yet.
	Ticks uint64 `msgpack:"ticks"`
	// Value is the time left to the next expiry in nanoseconds, when the
	// timer was dumped; 0 when it is disarmed, or when it expired and
	// waits to be read (the kernel then rearms a periodic timer only at
	// the read).
	Value    int64 `msgpack:"value_ns"`
	Interval int64 `msgpack:"interval_ns"` // 0 for a one-shot timer
	// Expires is the absolute time of the next expiry on the timer's
	// clock, in nanoseconds, set only for a TimerAbstime timer on
	// CLOCK_REALTIME or CLOCK_REALTIME_ALARM, whose expiry is a date that
	// means the same after a restore elsewhere. Restore arms the others
	// Value after the restore (an absolute one on another clock still
	// absolute: that clock's time at restore plus Value).
	Expires int64 `msgpack:"expires_ns,omitempty"`
}

// Epoll is the interest list of an epoll File.
type Epoll struct {
	// PID is the task whose fd numbers the targets name: the one whose
	// fdinfo was read, and in which restore adds them.
	PID     int           `msgpack:"pid"`
	Targets []EpollTarget `msgpack:"targets"`
}

// EpollTarget is one entry of an epoll's interest list: the file added
// with EPOLL_CTL_ADD, named by the fd number it was added with, and the
// event mask and data it was given.
type EpollTarget struct {
	Fd     int    `msgpack:"fd"`
	Events uint32 `msgpack:"events"` // EPOLLIN..., EPOLLET, EPOLLONESHOT... as the kernel keeps them
	Data   uint64 `msgpack:"data"`   // epoll_data, returned by epoll_wait
	// Dev and Ino identify the target file when it was dumped (for an
	// anon inode, the shared anon inode).
	Dev uint64 `msgpack:"dev"`
	Ino uint64 `msgpack:"ino"`
	// FileID is the File open at Fd in the task, which ckpt-files checked
	// (kcmp KCMP_EPOLL_TFD) is the very file in the interest list. Restore
	// checks that the fd it made at Fd came from that File.
	FileID int `msgpack:"file_id"`
}
