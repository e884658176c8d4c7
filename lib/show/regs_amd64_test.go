package show

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestSyscallNumbers checks the x86_64 table against x/sys/unix, whose
// numbers are those of the machine the test runs on (amd64 here).
func TestSyscallNumbers(t *testing.T) {
	want := map[string]int64{
		"read": unix.SYS_READ, "write": unix.SYS_WRITE, "open": unix.SYS_OPEN,
		"close": unix.SYS_CLOSE, "stat": unix.SYS_STAT, "fstat": unix.SYS_FSTAT,
		"lstat": unix.SYS_LSTAT, "poll": unix.SYS_POLL, "lseek": unix.SYS_LSEEK,
		"mmap": unix.SYS_MMAP, "mprotect": unix.SYS_MPROTECT, "munmap": unix.SYS_MUNMAP,
		"brk": unix.SYS_BRK, "rt_sigaction": unix.SYS_RT_SIGACTION,
		"rt_sigprocmask": unix.SYS_RT_SIGPROCMASK, "rt_sigreturn": unix.SYS_RT_SIGRETURN,
		"ioctl": unix.SYS_IOCTL, "pread64": unix.SYS_PREAD64, "pwrite64": unix.SYS_PWRITE64,
		"readv": unix.SYS_READV, "writev": unix.SYS_WRITEV, "access": unix.SYS_ACCESS,
		"pipe": unix.SYS_PIPE, "select": unix.SYS_SELECT, "sched_yield": unix.SYS_SCHED_YIELD,
		"mremap": unix.SYS_MREMAP, "msync": unix.SYS_MSYNC, "madvise": unix.SYS_MADVISE,
		"dup": unix.SYS_DUP, "dup2": unix.SYS_DUP2, "pause": unix.SYS_PAUSE,
		"nanosleep": unix.SYS_NANOSLEEP, "getitimer": unix.SYS_GETITIMER, "alarm": unix.SYS_ALARM,
		"setitimer": unix.SYS_SETITIMER, "getpid": unix.SYS_GETPID, "sendfile": unix.SYS_SENDFILE,
		"socket": unix.SYS_SOCKET, "connect": unix.SYS_CONNECT, "accept": unix.SYS_ACCEPT,
		"sendto": unix.SYS_SENDTO, "recvfrom": unix.SYS_RECVFROM, "sendmsg": unix.SYS_SENDMSG,
		"recvmsg": unix.SYS_RECVMSG, "shutdown": unix.SYS_SHUTDOWN, "bind": unix.SYS_BIND,
		"listen": unix.SYS_LISTEN, "socketpair": unix.SYS_SOCKETPAIR,
		"setsockopt": unix.SYS_SETSOCKOPT, "getsockopt": unix.SYS_GETSOCKOPT,
		"clone": unix.SYS_CLONE, "fork": unix.SYS_FORK, "vfork": unix.SYS_VFORK,
		"execve": unix.SYS_EXECVE, "exit": unix.SYS_EXIT, "wait4": unix.SYS_WAIT4,
		"kill": unix.SYS_KILL, "semop": unix.SYS_SEMOP, "msgsnd": unix.SYS_MSGSND,
		"msgrcv": unix.SYS_MSGRCV, "fcntl": unix.SYS_FCNTL, "flock": unix.SYS_FLOCK,
		"fsync": unix.SYS_FSYNC, "fdatasync": unix.SYS_FDATASYNC, "ftruncate": unix.SYS_FTRUNCATE,
		"getcwd": unix.SYS_GETCWD, "chdir": unix.SYS_CHDIR, "rename": unix.SYS_RENAME,
		"mkdir": unix.SYS_MKDIR, "unlink": unix.SYS_UNLINK, "readlink": unix.SYS_READLINK,
		"gettimeofday": unix.SYS_GETTIMEOFDAY, "ptrace": unix.SYS_PTRACE,
		"rt_sigtimedwait": unix.SYS_RT_SIGTIMEDWAIT, "rt_sigsuspend": unix.SYS_RT_SIGSUSPEND,
		"sigaltstack": unix.SYS_SIGALTSTACK, "prctl": unix.SYS_PRCTL,
		"arch_prctl": unix.SYS_ARCH_PRCTL, "sync": unix.SYS_SYNC, "gettid": unix.SYS_GETTID,
		"tkill": unix.SYS_TKILL, "futex": unix.SYS_FUTEX, "io_getevents": unix.SYS_IO_GETEVENTS,
		"epoll_create": unix.SYS_EPOLL_CREATE, "getdents64": unix.SYS_GETDENTS64,
		"set_tid_address": unix.SYS_SET_TID_ADDRESS, "semtimedop": unix.SYS_SEMTIMEDOP,
		"clock_gettime": unix.SYS_CLOCK_GETTIME, "clock_nanosleep": unix.SYS_CLOCK_NANOSLEEP,
		"exit_group": unix.SYS_EXIT_GROUP, "epoll_wait": unix.SYS_EPOLL_WAIT,
		"epoll_ctl": unix.SYS_EPOLL_CTL, "tgkill": unix.SYS_TGKILL, "mq_open": unix.SYS_MQ_OPEN,
		"mq_timedsend": unix.SYS_MQ_TIMEDSEND, "mq_timedreceive": unix.SYS_MQ_TIMEDRECEIVE,
		"waitid": unix.SYS_WAITID, "openat": unix.SYS_OPENAT, "unlinkat": unix.SYS_UNLINKAT,
		"pselect6": unix.SYS_PSELECT6, "ppoll": unix.SYS_PPOLL,
		"set_robust_list": unix.SYS_SET_ROBUST_LIST, "splice": unix.SYS_SPLICE,
		"tee": unix.SYS_TEE, "vmsplice": unix.SYS_VMSPLICE, "epoll_pwait": unix.SYS_EPOLL_PWAIT,
		"fallocate": unix.SYS_FALLOCATE, "accept4": unix.SYS_ACCEPT4,
		"eventfd2": unix.SYS_EVENTFD2, "epoll_create1": unix.SYS_EPOLL_CREATE1,
		"dup3": unix.SYS_DUP3, "pipe2": unix.SYS_PIPE2, "preadv": unix.SYS_PREADV,
		"pwritev": unix.SYS_PWRITEV, "recvmmsg": unix.SYS_RECVMMSG,
		"prlimit64": unix.SYS_PRLIMIT64, "sendmmsg": unix.SYS_SENDMMSG,
		"renameat2": unix.SYS_RENAMEAT2, "getrandom": unix.SYS_GETRANDOM,
		"memfd_create": unix.SYS_MEMFD_CREATE, "execveat": unix.SYS_EXECVEAT,
		"copy_file_range": unix.SYS_COPY_FILE_RANGE, "statx": unix.SYS_STATX,
		"rseq": unix.SYS_RSEQ, "pidfd_send_signal": unix.SYS_PIDFD_SEND_SIGNAL,
		"io_uring_enter": unix.SYS_IO_URING_ENTER, "pidfd_open": unix.SYS_PIDFD_OPEN,
		"clone3": unix.SYS_CLONE3, "openat2": unix.SYS_OPENAT2,
		"pidfd_getfd": unix.SYS_PIDFD_GETFD, "epoll_pwait2": unix.SYS_EPOLL_PWAIT2,
		"futex_waitv": unix.SYS_FUTEX_WAITV,
	}
	if len(want) != len(syscalls) {
		t.Errorf("the test lists %d calls, the table %d", len(want), len(syscalls))
	}
	for name, nr := range want {
		if got := SyscallName(nr); got != name {
			t.Errorf("syscall %d is %s, the table says %s", nr, name, got)
		}
	}
}
