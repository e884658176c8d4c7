package show

import (
	"fmt"
	"strconv"
)

// Words of x86_64 struct user_regs_struct, as image.Thread.Regs holds it.
const (
	regRax     = 10
	regOrigRax = 15
	regRip     = 16
)

// ThreadState says, from its registers, where a thread was stopped: in
// which system call, if any, with which result or restart code, and at
// which instruction. It reads only amd64 registers; for another arch it
// says how many words there are.
func ThreadState(arch string, regs []uint64) string {
	if arch != "amd64" {
		return fmt.Sprintf("%d register words (%s: not decoded)", len(regs), arch)
	}
	if len(regs) <= regRip {
		return fmt.Sprintf("%d register words: too few for x86_64", len(regs))
	}
	rip := regs[regRip]
	orig := int64(regs[regOrigRax])
	if orig < 0 {
		return fmt.Sprintf("in user space, rip %#x", rip)
	}
	rax := int64(regs[regRax])
	return fmt.Sprintf("in syscall %s (%d), rax %s, rip %#x",
		SyscallName(orig), orig, result(rax), rip)
}

// result writes a system call's rax: a restart code by name, other errors
// as negative numbers, anything else in hex.
func result(rax int64) string {
	if name, ok := restartCodes[rax]; ok {
		return fmt.Sprintf("%d %s", rax, name)
	}
	if rax < 0 && rax >= -4095 {
		return strconv.FormatInt(rax, 10)
	}
	return fmt.Sprintf("%#x", uint64(rax))
}

// restartCodes are the kernel's restart codes, which a thread interrupted
// in a system call holds in rax until it returns to user space; restore
// replays them (docs/FORMAT.md, Thread).
var restartCodes = map[int64]string{
	-512: "ERESTARTSYS",
	-513: "ERESTARTNOINTR",
	-514: "ERESTARTNOHAND",
	-516: "ERESTART_RESTARTBLOCK",
}

// SyscallName returns the name of x86_64 system call nr, or "unknown" for
// one this table does not list. The table holds the calls a frozen thread
// is commonly found in, and a few more.
func SyscallName(nr int64) string {
	if name, ok := syscalls[nr]; ok {
		return name
	}
	return "unknown"
}

// syscalls are x86_64 system call numbers (arch/x86/entry/syscalls/
// syscall_64.tbl); regs_amd64_test.go checks them against x/sys/unix.
var syscalls = map[int64]string{
	0: "read", 1: "write", 2: "open", 3: "close", 4: "stat", 5: "fstat", 6: "lstat",
	7: "poll", 8: "lseek", 9: "mmap", 10: "mprotect", 11: "munmap", 12: "brk",
	13: "rt_sigaction", 14: "rt_sigprocmask", 15: "rt_sigreturn", 16: "ioctl",
	17: "pread64", 18: "pwrite64", 19: "readv", 20: "writev", 21: "access", 22: "pipe",
	23: "select", 24: "sched_yield", 25: "mremap", 26: "msync", 28: "madvise",
	32: "dup", 33: "dup2", 34: "pause", 35: "nanosleep", 36: "getitimer", 37: "alarm",
	38: "setitimer", 39: "getpid", 40: "sendfile", 41: "socket", 42: "connect",
	43: "accept", 44: "sendto", 45: "recvfrom", 46: "sendmsg", 47: "recvmsg",
	48: "shutdown", 49: "bind", 50: "listen", 53: "socketpair", 54: "setsockopt",
	55: "getsockopt", 56: "clone", 57: "fork", 58: "vfork", 59: "execve", 60: "exit",
	61: "wait4", 62: "kill", 65: "semop", 69: "msgsnd", 70: "msgrcv", 72: "fcntl",
	73: "flock", 74: "fsync", 75: "fdatasync", 77: "ftruncate", 79: "getcwd",
	80: "chdir", 82: "rename", 83: "mkdir", 87: "unlink", 89: "readlink",
	96: "gettimeofday", 101: "ptrace", 128: "rt_sigtimedwait", 130: "rt_sigsuspend",
	131: "sigaltstack", 157: "prctl", 158: "arch_prctl", 162: "sync", 186: "gettid",
	200: "tkill", 202: "futex", 208: "io_getevents", 213: "epoll_create",
	217: "getdents64", 218: "set_tid_address", 220: "semtimedop", 228: "clock_gettime",
	230: "clock_nanosleep", 231: "exit_group", 232: "epoll_wait", 233: "epoll_ctl",
	234: "tgkill", 240: "mq_open", 242: "mq_timedsend", 243: "mq_timedreceive",
	247: "waitid", 257: "openat", 263: "unlinkat", 270: "pselect6", 271: "ppoll",
	273: "set_robust_list", 275: "splice", 276: "tee", 278: "vmsplice",
	281: "epoll_pwait", 285: "fallocate", 288: "accept4", 290: "eventfd2",
	291: "epoll_create1", 292: "dup3", 293: "pipe2", 295: "preadv", 296: "pwritev",
	299: "recvmmsg", 302: "prlimit64", 307: "sendmmsg", 316: "renameat2",
	318: "getrandom", 319: "memfd_create", 322: "execveat", 326: "copy_file_range",
	332: "statx", 334: "rseq", 424: "pidfd_send_signal", 426: "io_uring_enter",
	434: "pidfd_open", 435: "clone3", 437: "openat2", 438: "pidfd_getfd",
	441: "epoll_pwait2", 449: "futex_waitv",
}
